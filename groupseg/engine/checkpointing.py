"""Training checkpoints that survive a kill mid-save and resume a run exactly.

Layout under ``WORK_DIR/checkpoints/``: ``step_00001234/`` holding the weights as a groupseg checkpoint
(``model.safetensors`` + ``config.json``, loadable by ``groupseg.load_model``) and ``trainer_state.pt`` (optimiser,
grad scaler, step/epoch/data position, every rank's RNG states: plain tensors and numbers, loaded with ``weights_only=True``);
``latest`` is a one-line file naming the newest complete one, replaced atomically after the directory is complete.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models.checkpoint import load_state_strict, read_groupseg_checkpoint, save_checkpoint

STATE_NAME = "trainer_state.pt"
LATEST_NAME = "latest"


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": _numpy_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> tuple:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def save_training_checkpoint(
    ckpt_dir: Path, step: int, model: nn.Module, trainer_state: dict[str, Any], keep_last: int = 3
) -> Path:
    """Write ``step_N`` completely, then point ``latest`` at it, then drop all but the newest ``keep_last``."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    target = ckpt_dir / f"step_{step:08d}"
    tmp = ckpt_dir / f".tmp_step_{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(model, tmp, extra={"step": step})
    torch.save(trainer_state, tmp / STATE_NAME)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    _write_atomic(ckpt_dir / LATEST_NAME, target.name)
    complete = sorted(p for p in ckpt_dir.glob("step_*") if p.is_dir())
    for old in complete[: max(0, len(complete) - keep_last)]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def find_latest(ckpt_dir: Path) -> Path | None:
    latest = ckpt_dir / LATEST_NAME
    if not latest.is_file():
        return None
    path = ckpt_dir / latest.read_text().strip()
    return path if (path / STATE_NAME).is_file() else None


def load_training_checkpoint(path: Path, model: nn.Module) -> dict[str, Any]:
    """Load weights into ``model`` and return the trainer state (RNG restored by the caller when it is ready)."""
    if not (path / STATE_NAME).is_file():
        raise FileNotFoundError(f"{path} is not a groupseg training checkpoint (no {STATE_NAME})")
    _, weights = read_groupseg_checkpoint(path)
    load_state_strict(model, weights, f"{path} (groupseg training checkpoint)")
    return torch.load(path / STATE_NAME, map_location="cpu", weights_only=True)
