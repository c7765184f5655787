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


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as asked: unknown format, missing file, or weights that do not fit."""


def save_checkpoint(model: GroupViT, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a groupseg checkpoint directory (atomically: a temp dir renamed into place)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix == ".safetensors":
        path = path.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS_NAME))
    meta = {"format": FORMAT_TAG, "model": model.config.to_dict(), **(extra or {})}
    (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
    _replace_dir(tmp, path)
    return path


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
