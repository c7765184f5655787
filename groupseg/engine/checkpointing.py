"""Training checkpoints that survive a kill mid-save and resume a run exactly.

Layout under ``WORK_DIR/checkpoints/``: ``step_00001234/`` holding the weights as a groupseg checkpoint
(``model.safetensors`` + ``config.json``, loadable by ``groupseg.load_model``) and ``trainer_state.pt`` (optimiser,
grad scaler, step/epoch/data position, every rank's RNG states: plain tensors and numbers, loaded with
``weights_only=True``);
``latest`` is a one-line file naming the newest complete one, replaced atomically after the directory is complete.
A write that fails (disk full, read-only) removes its partial directory and leaves ``latest`` as it was; only
weights that are finite and of sane size are ever written (:func:`check_weights`).
"""
from __future__ import annotations

import io
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models.checkpoint import (
    LATEST_NAME,
    load_state_strict,
    read_groupseg_checkpoint,
    save_checkpoint,
    write_synced,
)

STATE_NAME = "trainer_state.pt"
STEP_DIR = re.compile(r"step_(\d+)")
# Trained GroupViT parameters are O(1)-O(10) in magnitude; far beyond this, training has already diverged even when the
# loss is still finite (LayerNorm hides the scale of the weights before it): such weights are never checkpointed.
HEALTHY_WEIGHT_LIMIT = 1e4


class UnhealthyWeights(ValueError):
    """Weights that are not finite, or so large that the run has diverged: not worth a checkpoint."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (its partial files are removed; ``latest`` still names the previous one)."""

    def __str__(self) -> str:
        return str(self.strerror)


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


def check_weights(model: nn.Module, limit: float = HEALTHY_WEIGHT_LIMIT) -> None:
    """UnhealthyWeights unless every parameter is finite and at most ``limit`` in magnitude, and no buffer is NaN
    (buffers may hold infinities by design, e.g. the text tower's causal attention mask)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not param.numel():
                continue
            if not bool(torch.isfinite(param).all()):
                raise UnhealthyWeights(f"{name} holds non-finite values")
            largest = float(param.abs().max())
            if largest > limit:
                raise UnhealthyWeights(f"{name} reaches {largest:.3g} (healthy weights stay below {limit:g})")
        for name, buffer in model.named_buffers():
            if buffer.is_floating_point() and bool(torch.isnan(buffer).any()):
                raise UnhealthyWeights(f"{name} holds NaN")


def step_of(path: Path) -> int | None:
    match = STEP_DIR.fullmatch(path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """Complete training checkpoints ``(step, dir)``, by step number (not by name: a step may outgrow the padding)."""
    if not ckpt_dir.is_dir():
        return []
    found = [(step_of(p), p) for p in ckpt_dir.iterdir() if p.is_dir() and (p / STATE_NAME).is_file()]
    return sorted((step, p) for step, p in found if step is not None)


def save_training_checkpoint(
    ckpt_dir: Path, step: int, model: nn.Module, trainer_state: dict[str, Any], keep_last: int = 3
) -> Path:
    """Write ``step_N`` completely, then point ``latest`` at it, then drop all but the newest ``keep_last`` (by step).

    CheckpointWriteError (naming the cause, e.g. no space left on device) if it cannot be written: the partial
    directory is removed and ``latest`` still names the previous checkpoint."""
    target = ckpt_dir / f"step_{step:08d}"
    tmp = ckpt_dir / f".tmp_step_{step:08d}"
    try:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        save_checkpoint(model, tmp, extra={"step": step})
        buffer = io.BytesIO()  # serialised in memory, written by Python: a full disk is an OSError saying so
        torch.save(trainer_state, buffer)
        write_synced(tmp / STATE_NAME, buffer.getbuffer())
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        latest = find_latest(ckpt_dir)
        raise CheckpointWriteError(
            err.errno, f"could not write checkpoint {target}: {err.strerror or err}; the partial write was removed "
            f"and the latest checkpoint is still {latest or 'none'}"
        ) from err
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    _write_atomic(ckpt_dir / LATEST_NAME, target.name)
    complete = list_checkpoints(ckpt_dir)
    for _, old in complete[: max(0, len(complete) - keep_last)]:
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


def last_good_checkpoint(ckpt_dir: Path, before_step: int) -> Path | None:
    """The newest checkpoint written before ``before_step``: the weights of ``step_N`` are those step N + 1 ran
    with, so when step N + 1 fails, ``step_N`` holds the weights that failed (every one was checked when written)."""
    earlier = [path for step, path in list_checkpoints(ckpt_dir) if step < before_step]
    return earlier[-1] if earlier else None


def load_training_checkpoint(path: Path, model: nn.Module) -> dict[str, Any]:
    """Load weights into ``model`` and return the trainer state (RNG restored by the caller when it is ready)."""
    if not (path / STATE_NAME).is_file():
        raise FileNotFoundError(f"{path} is not a groupseg training checkpoint (no {STATE_NAME})")
    _, weights = read_groupseg_checkpoint(path)
    load_state_strict(model, weights, f"{path} (groupseg training checkpoint)")
    return torch.load(path / STATE_NAME, map_location="cpu", weights_only=True)
