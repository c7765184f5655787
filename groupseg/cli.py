"""What the command-line tools share, kept light so that a tool's ``--help`` answers before torch or mmengine load."""
from __future__ import annotations

import argparse
import os
from pathlib import Path


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
