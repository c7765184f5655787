"""``load_model``: one entry point above the per-format readers (groupseg's own in ``checkpoint.py``, NVlabs and
Hugging Face in ``convert.py``)."""
from __future__ import annotations

import os
from typing import Any

import torch

from .convert import read_checkpoint
from .groupvit import GroupViT


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", **config_overrides: Any) -> GroupViT:
    """A GroupViT in eval mode from any supported weights format (see ``groupseg.models.convert``).

    ``path``: a groupseg checkpoint (directory or its ``model.safetensors``), an official NVlabs ``.pth`` (only its
    weights are read; no pickled code runs), or a Hugging Face ``GroupViTModel`` directory.
    ``config_overrides``: ``GroupViTConfig`` fields to replace. Official ``.pth`` files carry no usable architecture
    description, so it is read off the weight shapes, except the head counts: those default to width // 64 (the
    official head dim, right for the released models); pass e.g. ``vision_heads=4`` for other models.
    Raises ``CheckpointError`` naming the detected format and any missing / unexpected / mis-shaped keys.
    """
    return read_checkpoint(path, **config_overrides).build_model().to(device).eval()
