"""``load_model``: one entry point above the per-format readers (groupseg's own in ``checkpoint.py``, NVlabs and
Hugging Face in ``convert.py``), which also follows a training run's ``latest`` pointer and work dir."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CONFIG_NAME, LATEST_NAME, CheckpointError
from .convert import read_checkpoint
from .groupvit import GroupViT


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint ``path`` stands for: a ``latest`` pointer file → the step directory it names; a training work
    dir (or its ``checkpoints/``) → its latest checkpoint; anything else → itself."""
    path = Path(path)
    if path.is_dir() and not (path / CONFIG_NAME).exists():
        for pointer in (path / LATEST_NAME, path / "checkpoints" / LATEST_NAME):
            if pointer.is_file():
                path = pointer
                break
        else:
            if (path / "checkpoints").is_dir():
                raise CheckpointError(f"{path} looks like a training work dir but has no checkpoints/{LATEST_NAME} "
                                      "(no checkpoint was completed yet)")  # fmt: skip
    if path.name == LATEST_NAME and path.is_file() and path.stat().st_size < 4096:
        name = path.read_text(errors="replace").strip()
        target = path.parent / name
        if not name or "\n" in name or not target.is_dir():
            raise CheckpointError(f"{path} names {name!r}, which is not a checkpoint directory beside it")
        return target
    return path


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``, or a ``ValueError`` saying why not (an unknown name, or CUDA that torch
    does not see), before any weights are read."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not one torch knows (e.g. 'cpu', 'cuda', 'cuda:1')") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: torch sees no GPU here (use 'cpu')")
    return device


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", **config_overrides: Any) -> GroupViT:
    """A GroupViT in eval mode from any supported weights format (see ``groupseg.models.convert``).

    ``path``: a groupseg checkpoint (directory or its ``model.safetensors``; a training run's ``checkpoints/latest``
    or the work dir itself stand for its latest checkpoint), an official NVlabs ``.pth`` (only its weights are read;
    no pickled code runs), or a Hugging Face ``GroupViTModel`` directory.
    ``config_overrides``: ``GroupViTConfig`` fields to replace. Official ``.pth`` files carry no usable architecture
    description, so it is read off the weight shapes, except the head counts: those default to width // 64 (the
    official head dim, right for the released models); pass e.g. ``vision_heads=4`` for other models.
    Raises ``CheckpointError`` naming the detected format and any missing / unexpected / mis-shaped keys.
    """
    device = check_device(device)
    return read_checkpoint(resolve_checkpoint(path), **config_overrides).build_model().to(device).eval()
