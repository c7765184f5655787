"""What the command-line tools share, kept light so that a tool's ``--help`` answers before torch or mmengine load."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence


class DictAction(argparse.Action):
    """mmengine's ``DictAction`` (``key=value ...`` into a dict, as ``--cfg-options`` takes it), imported only when
    the option is given."""

    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction

        DictAction(self.option_strings, self.dest, nargs=self.nargs)(parser, namespace, values, option_string)


def output_file(path: str | os.PathLike, option: str) -> Path:
    """An output file's path, checked before a long run rather than when it is written at the end: a folder is an
    error (a ``ValueError`` naming ``option``), and the file's folder is created now."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def output_dir(path: str | os.PathLike, option: str) -> Path:
    """An output folder, made now; where a file is in the way, a ``ValueError`` naming ``option``."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise ValueError(f"cannot make the folder {path} ({option}): {err.strerror}") from err
    return path


def background_threshold(bg_thresh: float | None, no_background: bool, default: float = 0.95) -> float:
    """``--bg-thresh`` as given, or ``default`` (the official 0.95); refused with ``--no-background``, which leaves
    no background label to threshold."""
    if no_background and bg_thresh is not None:
        raise ValueError("--bg-thresh has no effect with --no-background: there is no background label to threshold")
    return default if bg_thresh is None else bg_thresh


def check_no_background(classes: Sequence[str], no_background: bool) -> None:
    """``--no-background`` says there is no background label: a vocabulary that starts with one contradicts it."""
    if no_background and classes[0] == "background":
        raise ValueError("--no-background, but the vocabulary starts with 'background': remove it or drop the option")
