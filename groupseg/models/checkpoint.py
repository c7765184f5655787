"""groupseg's own weights format (``load.py`` reads every format; the others are in ``convert.py``).

A groupseg checkpoint is a directory (or the ``.safetensors`` file inside one) holding ``model.safetensors`` and
``config.json`` (``{"format": "groupseg", "model": {GroupViTConfig fields}}``). Loading it needs no pickle.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .groupvit import GroupViT, GroupViTConfig

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_TAG = "groupseg"
LATEST_NAME = "latest"  # in a training run's checkpoints/: a one-line file naming the newest complete step directory


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as asked: unknown format, missing file, or weights that do not fit."""


def save_checkpoint(model: GroupViT, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a groupseg checkpoint directory (atomically: a temp dir renamed into place).

    ``path`` may be new, an empty directory or an earlier groupseg checkpoint (replaced); anything else (a file, a
    folder with other files) is refused with CheckpointError, so that saving never deletes what it did not write.
    An OSError while writing (e.g. no space left on device) removes the partial files."""
    from safetensors.torch import save as safetensors_bytes

    path = Path(path)
    if path.suffix == ".safetensors":
        path = path.parent
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        _rmtree(tmp)
        tmp.mkdir(parents=True)
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        write_synced(tmp / WEIGHTS_NAME, safetensors_bytes(state))  # our own write: a full disk is an OSError saying so
        meta = {"format": FORMAT_TAG, "model": model.config.to_dict(), **(extra or {})}
        write_synced(tmp / CONFIG_NAME, json.dumps(meta, indent=2).encode())
    except BaseException:
        _rmtree(tmp)
        raise
    _replace_dir(tmp, path)
    return path


CHECKPOINT_FILES = frozenset({WEIGHTS_NAME, CONFIG_NAME})


def is_groupseg_checkpoint_dir(path: Path) -> bool:
    """A directory holding a groupseg checkpoint and nothing else (what :func:`save_checkpoint` may replace)."""
    if not path.is_dir() or (path / CONFIG_NAME).is_symlink():
        return False
    names = {p.name for p in path.iterdir()}
    if not names or not names <= CHECKPOINT_FILES or CONFIG_NAME not in names:
        return False
    try:
        return json.loads((path / CONFIG_NAME).read_text()).get("format") == FORMAT_TAG
    except (OSError, ValueError, AttributeError):
        return False


def check_replaceable(path: str | os.PathLike, overwrite: bool = True) -> None:
    """CheckpointError unless writing a checkpoint at ``path`` loses nothing but an earlier groupseg checkpoint (and
    that one only with ``overwrite``). ``path`` may name the ``.safetensors`` file: its directory is checked."""
    path = Path(path)
    if path.suffix == ".safetensors":
        path = path.parent
    if not path.exists() and not path.is_symlink():
        blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise CheckpointError(f"{blocking} is a file, so the checkpoint directory {path} cannot be made under it")
        return
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return
    if is_groupseg_checkpoint_dir(path):
        if not overwrite:
            raise CheckpointError(f"{path} already holds a groupseg checkpoint; pass --overwrite to replace it")
        return
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir())
        shown = ", ".join(found[:5]) + (f" ... (+{len(found) - 5})" if len(found) > 5 else "")
        raise CheckpointError(f"{path} already exists and is not a groupseg checkpoint (it holds {shown}); "
                              "refusing to replace it: choose a new or empty output directory")  # fmt: skip
    raise CheckpointError(f"{path} already exists and is a file, not a checkpoint directory; refusing to replace it")


def write_synced(path: Path, data: bytes | memoryview) -> None:
    """Write and fsync: a failure (ENOSPC, EROFS, EFBIG) is an OSError here, not a library's message or a later loss."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, replacing it; the old copy disappears only once the new one is complete."""
    if dst.exists():
        old = dst.with_name(dst.name + ".old")
        if old.exists():
            _rmtree(old)
        os.replace(dst, old)
        os.replace(src, dst)
        _rmtree(old)
    else:
        os.replace(src, dst)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def read_groupseg_checkpoint(path: Path) -> tuple[GroupViTConfig, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    directory = path.parent if path.is_file() else path
    config_file, weights_file = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not config_file.is_file() or not weights_file.is_file():
        raise CheckpointError(f"{directory} is not a groupseg checkpoint: it needs {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        meta = json.loads(config_file.read_text())
        if meta.get("format") != FORMAT_TAG:
            raise CheckpointError(f"{config_file} does not say format={FORMAT_TAG!r}")
        return GroupViTConfig.from_dict(meta["model"]), load_file(str(weights_file))
    except CheckpointError:
        raise
    except Exception as err:  # bad JSON, unknown config keys, a truncated safetensors file
        raise CheckpointError(f"{directory} is a broken groupseg checkpoint: {type(err).__name__}: {err}") from err


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load weights, failing with the lists of missing / unexpected / mis-shaped keys and the detected format."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mis_shaped = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if own[k].shape != state[k].shape
    )
    if missing or unexpected or mis_shaped:

        def show(items: list[str]) -> str:
            return ", ".join(items[:12]) + (f" ... (+{len(items) - 12} more)" if len(items) > 12 else "")

        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys: {show(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys: {show(unexpected)}")
        if mis_shaped:
            problems.append(f"{len(mis_shaped)} keys of the wrong shape: {show(mis_shaped)}")
        raise CheckpointError(f"weights from {source} do not fit the model; " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
