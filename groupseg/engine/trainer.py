"""The training loop, top to bottom: set up ranks, model, optimiser and data; step; log; checkpoint; resume."""
from __future__ import annotations

import os
import random
import shutil
import signal
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..losses import GroupViTLoss
from ..models import GroupViT, build_config
from ..models.load import resolve_checkpoint
from ..models.precision import resolve_precision
from . import distributed as D
from .checkpointing import (
    LATEST_NAME,
    UnhealthyWeights,
    check_weights,
    find_latest,
    last_good_checkpoint,
    list_checkpoints,
    load_training_checkpoint,
    rng_state,
    save_training_checkpoint,
    set_rng_state,
)
from .config import ConfigError, TrainingConfig, as_training_config, load_config
from .logging import TrainLogger
from .machine import cpu_info, cpu_threads, describe_cpu
from .optim import build_optimizer, lr_at, set_lr

REFERENCE_BATCH = 4096  # the reference lr is given for a global batch of 4096 and scaled linearly


class TrainingDiverged(RuntimeError):
    """The loss became non-finite, or the weights did: the step was not applied / the weights were not saved."""


class WeightsDiverged(TrainingDiverged):
    """The weights after a step are not finite or absurdly large (the loss may still be finite): not saved."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM / SIGINT: training stopped after saving a checkpoint that ``--resume`` continues from exactly."""

    def __init__(self, signum: int, checkpoint: Path | None):
        self.signum, self.checkpoint = signum, checkpoint
        super().__init__(f"{signal.Signals(signum).name} received: saved {checkpoint}; continue with --resume")


class WorkDirInUse(ValueError):
    """The work dir holds another run's checkpoints or log, and neither resume nor overwrite was asked for."""


# What a run writes into its work dir: all that --overwrite deletes (nothing else there is touched).
RUN_OUTPUTS = ("checkpoints", "metrics.jsonl", "tb", "config.py", "train_summary.json")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast_context(precision: str, device: torch.device):
    """bf16 autocast on CPU and GPU; fp16 only on GPUs (with a grad scaler); fp32 = no autocast."""
    if precision == "fp32":
        return nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs a GPU; use 'bf16' on CPU")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def schedule(cfg: TrainingConfig, world_size: int) -> dict[str, Any]:
    """Steps per epoch, total steps, warm-up steps and the batch-scaled learning rates."""
    global_batch = cfg.data.batch_size * world_size
    samples = cfg.data.samples_per_epoch
    if samples is None:
        from ..data.pairs import count_samples

        samples = count_samples(cfg.data.train)
    if samples == 0:
        raise ConfigError(
            "data.train holds no sample with both an image (.jpg/.jpeg/.png/.webp) and a caption (a .txt/.text "
            "member, or a \"caption\" in KEY.json): check the shards' contents and format (plain .tar; "
            "data/README.md, 'Training data')"
        )
    if samples < global_batch:
        raise ConfigError(
            f"the global batch ({cfg.data.batch_size} x {world_size} rank(s) = {global_batch}) is larger than the "
            f"{samples} samples of an epoch, so every batch would repeat samples: lower data.batch_size"
        )
    steps_per_epoch = samples // global_batch
    total = cfg.train.max_steps or cfg.train.epochs * steps_per_epoch
    opt = cfg.optimizer
    scale = global_batch / REFERENCE_BATCH if opt.scale_lr else 1.0
    return dict(
        global_batch=global_batch,
        steps_per_epoch=steps_per_epoch,
        total_steps=int(total),
        warmup_steps=int(round(opt.warmup_epochs * steps_per_epoch + opt.warmup_steps)),
        base_lr=opt.lr * scale,
        warmup_lr=opt.warmup_lr * scale,
        min_lr=opt.min_lr * scale,
    )


def build_loader(cfg: TrainingConfig, info: D.DistInfo, epoch: int, start_batch: int, context_length: int,
                 steps_per_epoch: int):  # fmt: skip
    from ..data.nouns import NounExtractor, default_noun_extractor
    from ..data.pairs import build_pair_loader

    d = cfg.data
    num_prompts = d.num_prompts if cfg.loss.multi_label_weight > 0 else 0
    return build_pair_loader(
        shards=d.train,
        batch_size=d.batch_size,
        image_size=d.image_size,
        context_length=context_length,
        num_prompts=num_prompts,
        augment=d.augment,
        seed=cfg.train.seed,
        epoch=epoch,
        rank=info.rank,
        world_size=info.world_size,
        num_workers=d.num_workers,
        start_batch=start_batch,
        # prompts wrap nouns ("circle") or, with data.noun_phrases, adjective–noun phrases ("red circle")
        # data.nouns: "spacy" = en_core_web_sm where installed, else the rule (warned); "rule" = the rule everywhere
        noun_extractor=None if not num_prompts else (NounExtractor(phrases=d.noun_phrases) if d.nouns == "rule"
                                                     else default_noun_extractor(d.noun_phrases)),
        num_batches=steps_per_epoch,  # every rank yields the same number of batches (DDP needs it)
    )


def train_step(
    model: torch.nn.Module,
    loss_fn: GroupViTLoss,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Any],
    device: torch.device,
    precision: str = "fp32",
    clip_grad: float | None = 5.0,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One optimisation step on this rank's share of the global batch. Raises TrainingDiverged *before* touching
    the weights when the loss is NaN/inf on any rank."""
    images = batch["images"].to(device, non_blocking=True)
    tokens = batch["tokens"].to(device, non_blocking=True)
    with autocast_context(precision, device):
        losses = loss_fn(model(images, tokens, with_groups=loss_fn.with_groups))
    finite = torch.isfinite(losses["loss"].detach()).float()
    if D.is_distributed():
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
    if finite.item() < 1:
        raise TrainingDiverged(
            f"non-finite loss {losses['loss'].item()} ({ {k: v.item() for k, v in losses.items()} })"
        )
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(losses["loss"]).backward()
        scaler.unscale_(optimizer)
    else:
        losses["loss"].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad or float("inf"))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return {**{k: v.item() for k, v in losses.items()}, "grad_norm": grad_norm.item()}


def train(cfg: TrainingConfig | Any, work_dir: str | Path, resume: str | None = None, overwrite: bool = False
          ) -> Path | None:  # fmt: skip
    """Run ``cfg`` to completion (or resume it). Returns the last checkpoint directory (rank 0).

    ``resume``: a checkpoint directory (or a ``latest`` pointer, or a work dir: its latest), or ``"auto"`` for the
    work dir's latest. A work dir that already holds a run is refused (WorkDirInUse) unless it is resumed, or
    ``overwrite`` deletes that run's outputs first. SIGTERM / SIGINT save a checkpoint at the end of the current
    step, then raise TrainingInterrupted."""
    cfg = as_training_config(cfg)
    work_dir = Path(work_dir)
    ckpt_dir = work_dir / "checkpoints"
    t = cfg.train
    info = D.init_distributed(t.device)
    precision = resolve_precision(t.precision, info.device, what="train.precision")
    plan = schedule(cfg, info.world_size)  # the shards and batch checked before --overwrite deletes a run
    _claim_work_dir(work_dir, resume, overwrite, info)
    if info.device.type == "cpu":  # one core per loader worker (groupseg/engine/machine.py: why)
        ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        torch.set_num_threads(t.threads or cpu_threads(cfg.data.num_workers, ranks_here))
    seed_everything(t.seed + info.rank)  # ranks draw independent Gumbel / drop-path noise, as in the reference
    if t.deterministic:
        torch.use_deterministic_algorithms(True)

    model = GroupViT(build_config(**cfg.model)).to(info.device)
    if info.world_size > 1:
        model = D.sync_batchnorm(model, info.device)
    optimizer = build_optimizer(model, plan["base_lr"], cfg.optimizer.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    loss_fn = GroupViTLoss(cfg.loss.multi_label_weight, cfg.loss.multi_label_on)

    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "skipped": {}}
    if resume is not None:
        path = find_latest(ckpt_dir) if resume == "auto" else resolve_checkpoint(resume)  # also `latest`, a work dir
        if path is None:
            raise FileNotFoundError(f"--resume: no complete checkpoint under {ckpt_dir}")
        saved = load_training_checkpoint(path, model)
        optimizer.load_state_dict(saved["optimizer"])
        if scaler is not None and saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        state = {k: saved[k] for k in state}
        rngs = saved["rngs"]
        if len(rngs) != info.world_size:
            raise ValueError(f"checkpoint {path} was written by {len(rngs)} rank(s); resume it with as many")
        set_rng_state(rngs[info.rank])
    net = model
    if info.world_size > 1:
        device_ids = [info.local_rank] if info.device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if t.compile:
        net = torch.compile(net)

    logger = TrainLogger(work_dir, plan["total_steps"], state["step"], enabled=info.is_main)
    if info.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
        _dump_config(cfg, work_dir / "config.py")
        params = sum(p.numel() for p in model.parameters()) / 1e6
        logger.message(
            f"groupseg train: {params:.2f}M params, {info.world_size} rank(s) on {info.device}, global batch "
            f"{plan['global_batch']}, {plan['steps_per_epoch']} steps/epoch, {plan['total_steps']} steps, "
            f"lr {plan['base_lr']:.3g}, precision {precision}"
            + (f", resumed at step {state['step']}" if resume else "")
            + (f"; {torch.get_num_threads()} thread(s) on {describe_cpu()}" if info.device.type == "cpu" else "")
        )
    last_ckpt = None
    model.train()
    window_start, window_images = time.perf_counter(), 0
    budget_s = 60 * t.time_budget_minutes if t.time_budget_minutes else float("inf")
    loop_start = time.perf_counter()  # the optional time budget counts wall time of this invocation's loop
    start_step, out_of_time = state["step"], False
    context_length = model.config.context_length
    stop = StopSignals()
    try:
        while state["step"] < plan["total_steps"]:
            loader = build_loader(cfg, info, state["epoch"], state["batch_in_epoch"], context_length,
                                  plan["steps_per_epoch"])  # fmt: skip
            with torch.random.fork_rng(devices=[]):  # DataLoader draws a seed from the global RNG: keep it out
                batches = iter(loader)
            fresh_epoch, got_batch = state["batch_in_epoch"] == 0, False
            for batch in batches:
                got_batch = True
                for reason, n in batch.get("skipped", {}).items():
                    state["skipped"][reason] = state["skipped"].get(reason, 0) + n
                lr = lr_at(state["step"], **{k: plan[k] for k in ("base_lr", "total_steps", "warmup_steps",
                                                                   "warmup_lr", "min_lr")})  # fmt: skip
                set_lr(optimizer, lr)
                metrics = train_step(net, loss_fn, optimizer, batch, info.device, precision,
                                     cfg.optimizer.clip_grad, scaler)  # fmt: skip
                state["step"] += 1
                state["batch_in_epoch"] += 1
                # averaged over ranks, so that every rank stops at the same step (a signal reaches any one of them)
                shared = D.all_reduce_mean({"t": time.perf_counter() - loop_start, "stop": float(stop.received > 0)},
                                           info.device)  # fmt: skip
                out_of_time = shared["t"] >= budget_s
                interrupted = shared["stop"] > 0
                window_images += batch["images"].shape[0] * info.world_size
                metrics = D.all_reduce_mean(metrics, info.device)
                logger.step(loss=metrics["loss"])
                last = state["step"] == plan["total_steps"] or out_of_time or interrupted
                if state["step"] % t.log_interval == 0 or last:
                    elapsed = time.perf_counter() - window_start
                    metrics.update(lr=lr, img_per_s=window_images / max(elapsed, 1e-9), epoch=state["epoch"],
                                   scale=model.scale().item(),
                                   **{f"skipped/{k}": v
                                      for k, v in _global_skips(state["skipped"], info).items()})  # fmt: skip
                    logger.log(state["step"], metrics)
                    logger.step(0, loss=metrics["loss"], img_s=metrics["img_per_s"])
                    window_start, window_images = time.perf_counter(), 0
                if state["step"] % t.ckpt_interval == 0 or last:
                    last_ckpt = _save(ckpt_dir, model, optimizer, scaler, state, info, t.keep_last)
                if out_of_time:
                    logger.message(f"time budget of {t.time_budget_minutes} min reached at step {state['step']}")
                if interrupted:
                    raise TrainingInterrupted(stop.received or signal.SIGTERM, last_ckpt)
                if last:
                    break
            else:  # the epoch's data ran out
                if fresh_epoch and not got_batch:  # every epoch would be empty too: never a silent endless loop
                    raise ValueError(
                        f"epoch {state['epoch']} of data.train yielded no batch: no image of its samples decodes "
                        "(PIL cannot read them; see the warnings above); check the shards as data/README.md "
                        "('Training data') shows"
                    )
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
                continue
            break
    except TrainingDiverged as err:
        good = last_good_checkpoint(ckpt_dir, state["step"])
        if isinstance(err, WeightsDiverged):
            what = f"stopping after step {state['step']}: {err}; they were not saved"
        else:
            what = f"stopping at step {state['step'] + 1}: {err}. Weights were not updated by this step"
        none = "none before this step" if list_checkpoints(ckpt_dir) else "none (no checkpoint was written yet)"
        logger.message(
            f"{what}; the last good checkpoint is {good or none}"
            + ("; resume from it with a lower learning rate or fp32 precision." if good else
               ": start again with a lower learning rate or fp32 precision.")
        )  # fmt: skip
        raise
    finally:
        stop.restore()
        logger.close()
    skipped = _global_skips(state["skipped"], info)
    if info.is_main and skipped:
        print(f"skipped samples: {skipped}", flush=True)
    seconds, steps = time.perf_counter() - loop_start, state["step"] - start_step
    logger.summary({
        "steps": state["step"], "planned_steps": plan["total_steps"], "steps_this_run": steps,
        "minutes": round(seconds / 60, 2), "steps_per_s": round(steps / max(seconds, 1e-9), 3),
        "img_per_s": round(steps * plan["global_batch"] / max(seconds, 1e-9), 1),
        "stopped_by_time_budget": out_of_time and state["step"] < plan["total_steps"],
        "time_budget_minutes": t.time_budget_minutes, "device": str(info.device), "ranks": info.world_size,
        "threads": torch.get_num_threads(), "loader_workers": cfg.data.num_workers,
        **(cpu_info() if info.device.type == "cpu" else {}),
    })  # fmt: skip
    D.barrier()
    D.cleanup()
    return last_ckpt


class StopSignals:
    """Turns SIGTERM / SIGINT (what schedulers send before preemption, and Ctrl-C) into a request to stop after the
    current step with a checkpoint. A second signal acts as usual (the previous handlers are back by then)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received = 0
        self._previous: dict[int, Any] = {}
        try:
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread: signals stay as they are
            self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        self.restore()

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def _claim_work_dir(work_dir: Path, resume: str | None, overwrite: bool, info: D.DistInfo) -> None:
    """Refuse a work dir holding another run unless it is resumed; with ``overwrite``, delete that run's outputs."""
    if resume is not None and overwrite:
        raise ValueError("--resume continues the run in the work dir and --overwrite deletes it: pass one of them")
    previous = previous_run(work_dir)
    if previous is None or resume is not None:
        return
    if not overwrite:
        raise WorkDirInUse(
            f"work dir {work_dir} already holds a training run ({previous}): continue it with --resume, train into "
            "a new --work-dir, or pass --overwrite to delete that run's checkpoints and logs first"
        )
    D.barrier()  # every rank has looked before rank 0 deletes
    if info.is_main:
        for name in RUN_OUTPUTS:
            path = work_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    D.barrier()


def previous_run(work_dir: Path) -> str | None:
    """What an earlier run left in ``work_dir`` (checkpoints, a metrics log), or None."""
    ckpt_dir = work_dir / "checkpoints"
    complete = list_checkpoints(ckpt_dir)
    if complete:
        return f"checkpoints up to step {complete[-1][0]} in {ckpt_dir}"
    if ckpt_dir.is_dir() and any(p.name == LATEST_NAME or p.name.startswith(("step_", ".tmp_step_"))
                                 for p in ckpt_dir.iterdir()):  # fmt: skip
        return f"partial checkpoints in {ckpt_dir}"
    metrics = work_dir / "metrics.jsonl"
    if metrics.is_file() and metrics.stat().st_size > 0:
        return f"a training log {metrics}"
    return None


def _dump_config(cfg: TrainingConfig, path: Path) -> None:
    """The checked config with every default filled in: what this run used, loadable by load_config."""
    from mmengine.config import Config

    Config(cfg.to_dict()).dump(str(path))


def _global_skips(skipped: dict[str, int], info: D.DistInfo) -> dict[str, int]:
    """Skip counts summed over ranks (each rank reads different shards, so each has its own reasons)."""
    if not D.is_distributed():
        return dict(skipped)
    parts: list = [None] * info.world_size
    torch.distributed.all_gather_object(parts, dict(skipped))
    return dict(sum((Counter(p) for p in parts), Counter()))


def _save(ckpt_dir, model, optimizer, scaler, state, info: D.DistInfo, keep_last: int) -> Path | None:
    """Every rank contributes its RNG state; rank 0 writes (weights that are not finite and sane are never saved)."""
    try:
        check_weights(model)
    except UnhealthyWeights as err:
        raise WeightsDiverged(f"the weights are unusable: {err}") from None
    rngs = [rng_state()]
    if D.is_distributed():
        rngs = [None] * info.world_size
        torch.distributed.all_gather_object(rngs, rng_state())
    path = None
    if info.is_main:
        trainer_state = {
            **state,
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
        }
        path = save_training_checkpoint(ckpt_dir, state["step"], model, {**trainer_state, "rngs": rngs}, keep_last)
    D.barrier()
    return path


__all__ = ["TrainingDiverged", "TrainingInterrupted", "WorkDirInUse", "load_config", "schedule", "train",
           "train_step"]
