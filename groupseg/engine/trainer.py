"""The training loop, top to bottom: set up ranks, model, optimiser and data; step; log; checkpoint; resume."""
from __future__ import annotations

import os
import random
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.config import Config, ConfigDict

from ..losses import GroupViTLoss
from ..models import GroupViT, build_config
from ..models.precision import resolve_precision
from . import distributed as D
from .checkpointing import (
    find_latest,
    load_training_checkpoint,
    rng_state,
    save_training_checkpoint,
    set_rng_state,
)
from .logging import TrainLogger
from .machine import cpu_info, cpu_threads, describe_cpu
from .optim import build_optimizer, lr_at, set_lr

REFERENCE_BATCH = 4096  # the reference lr is given for a global batch of 4096 and scaled linearly


class TrainingDiverged(RuntimeError):
    pass


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


def schedule(cfg: Config, world_size: int) -> dict[str, Any]:
    """Steps per epoch, total steps, warm-up steps and the batch-scaled learning rates."""
    global_batch = cfg.data.batch_size * world_size
    samples = cfg.data.get("samples_per_epoch")
    if samples is None:
        from ..data.pairs import count_samples

        samples = count_samples(cfg.data.train)
    steps_per_epoch = max(1, samples // global_batch)
    total = cfg.train.get("max_steps") or cfg.train.epochs * steps_per_epoch
    opt = cfg.optimizer
    scale = global_batch / REFERENCE_BATCH if opt.get("scale_lr", True) else 1.0
    return dict(
        global_batch=global_batch,
        steps_per_epoch=steps_per_epoch,
        total_steps=int(total),
        warmup_steps=int(round(opt.get("warmup_epochs", 0) * steps_per_epoch + opt.get("warmup_steps", 0))),
        base_lr=opt.lr * scale,
        warmup_lr=opt.get("warmup_lr", 4e-6) * scale,
        min_lr=opt.get("min_lr", 4e-5) * scale,
    )


def build_loader(cfg: Config, info: D.DistInfo, epoch: int, start_batch: int, context_length: int, steps_per_epoch: int):
    from ..data.nouns import NounExtractor, default_noun_extractor
    from ..data.pairs import build_pair_loader

    d = cfg.data
    num_prompts = d.get("num_prompts", 3) if cfg.loss.get("multi_label_weight", 1.0) > 0 else 0
    phrases = bool(d.get("noun_phrases", False))
    if d.get("nouns", "spacy") not in ("spacy", "rule"):
        raise ValueError(f"data.nouns must be 'spacy' or 'rule', got {d.nouns!r}")
    return build_pair_loader(
        shards=d.train,
        batch_size=d.batch_size,
        image_size=d.image_size,
        context_length=context_length,
        num_prompts=num_prompts,
        augment=d.get("augment", "reference"),
        seed=cfg.train.seed,
        epoch=epoch,
        rank=info.rank,
        world_size=info.world_size,
        num_workers=d.get("num_workers", 2),
        start_batch=start_batch,
        # prompts wrap nouns ("circle") or, with data.noun_phrases, adjective–noun phrases ("red circle")
        # data.nouns: "spacy" = en_core_web_sm where installed, else the rule (warned); "rule" = the rule everywhere
        noun_extractor=None if not num_prompts else (NounExtractor(phrases=phrases) if d.get("nouns", "spacy") == "rule"
                                                     else default_noun_extractor(phrases)),
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
        raise TrainingDiverged(f"non-finite loss {losses['loss'].item()} ({ {k: v.item() for k, v in losses.items()} })")
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


def train(cfg: Config, work_dir: str | Path, resume: str | None = None) -> Path | None:
    """Run ``cfg`` to completion (or resume it). Returns the last checkpoint directory (rank 0)."""
    work_dir = Path(work_dir)
    ckpt_dir = work_dir / "checkpoints"
    info = D.init_distributed(cfg.train.get("device", "auto"))
    t = cfg.train
    precision = resolve_precision(t.get("precision", "auto"), info.device, what="train.precision")
    if info.device.type == "cpu":  # one core per loader worker (groupseg/engine/machine.py: why)
        ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        torch.set_num_threads(t.get("threads") or cpu_threads(cfg.data.get("num_workers", 2), ranks_here))
    seed_everything(t.seed + info.rank)  # ranks draw independent Gumbel / drop-path noise, as in the reference
    if t.get("deterministic", False):
        torch.use_deterministic_algorithms(True)

    model = GroupViT(build_config(**cfg.model)).to(info.device)
    if info.world_size > 1:
        model = D.sync_batchnorm(model, info.device)
    plan = schedule(cfg, info.world_size)
    optimizer = build_optimizer(model, plan["base_lr"], cfg.optimizer.get("weight_decay", 0.05))
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    loss_fn = GroupViTLoss(cfg.loss.get("multi_label_weight", 1.0), cfg.loss.get("multi_label_on", "image"))

    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "skipped": {}}
    if resume is not None:
        path = find_latest(ckpt_dir) if resume == "auto" else Path(resume)
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
    if t.get("compile", False):
        net = torch.compile(net)

    logger = TrainLogger(work_dir, plan["total_steps"], state["step"], enabled=info.is_main)
    if info.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
        cfg.dump(str(work_dir / "config.py"))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        logger.message(
            f"groupseg train: {params:.2f}M params, {info.world_size} rank(s) on {info.device}, global batch "
            f"{plan['global_batch']}, {plan['steps_per_epoch']} steps/epoch, {plan['total_steps']} steps, "
            f"lr {plan['base_lr']:.3g}, precision {precision}" + (f", resumed at step {state['step']}" if resume else "")
            + (f"; {torch.get_num_threads()} thread(s) on {describe_cpu()}" if info.device.type == "cpu" else "")
        )
    last_ckpt = None
    model.train()
    window_start, window_images = time.perf_counter(), 0
    budget_s = 60 * t.time_budget_minutes if t.get("time_budget_minutes") else float("inf")
    loop_start = time.perf_counter()  # the optional time budget counts wall time of this invocation's loop
    start_step, out_of_time = state["step"], False
    context_length = model.config.context_length
    try:
        while state["step"] < plan["total_steps"]:
            loader = build_loader(cfg, info, state["epoch"], state["batch_in_epoch"], context_length,
                                  plan["steps_per_epoch"])  # fmt: skip
            with torch.random.fork_rng(devices=[]):  # DataLoader draws a seed from the global RNG: keep it out
                batches = iter(loader)
            for batch in batches:
                for reason, n in batch.get("skipped", {}).items():
                    state["skipped"][reason] = state["skipped"].get(reason, 0) + n
                lr = lr_at(state["step"], **{k: plan[k] for k in ("base_lr", "total_steps", "warmup_steps",
                                                                   "warmup_lr", "min_lr")})  # fmt: skip
                set_lr(optimizer, lr)
                metrics = train_step(net, loss_fn, optimizer, batch, info.device, precision,
                                     cfg.optimizer.get("clip_grad", 5.0), scaler)  # fmt: skip
                state["step"] += 1
                state["batch_in_epoch"] += 1
                run_seconds = D.all_reduce_mean({"t": time.perf_counter() - loop_start}, info.device)["t"]
                out_of_time = run_seconds >= budget_s  # averaged over ranks, so every rank stops at the same step
                window_images += batch["images"].shape[0] * info.world_size
                metrics = D.all_reduce_mean(metrics, info.device)
                logger.step(loss=metrics["loss"])
                last = state["step"] == plan["total_steps"] or out_of_time
                if state["step"] % t.get("log_interval", 10) == 0 or last:
                    elapsed = time.perf_counter() - window_start
                    metrics.update(lr=lr, img_per_s=window_images / max(elapsed, 1e-9), epoch=state["epoch"],
                                   scale=model.scale().item(), **{f"skipped/{k}": v for k, v in
                                                                  _global_skips(state["skipped"], info).items()})  # fmt: skip
                    logger.log(state["step"], metrics)
                    logger.step(0, loss=metrics["loss"], img_s=metrics["img_per_s"])
                    window_start, window_images = time.perf_counter(), 0
                if state["step"] % t.get("ckpt_interval", 1000) == 0 or last:
                    last_ckpt = _save(ckpt_dir, model, optimizer, scaler, state, info, t.get("keep_last", 3))
                if last:
                    break
            else:  # the epoch's data ran out
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
                continue
            break
    except TrainingDiverged as err:
        latest = find_latest(ckpt_dir)
        logger.message(
            f"stopping at step {state['step'] + 1}: {err}. Weights were not updated by this step; the last good "
            f"checkpoint is {latest or 'none (no checkpoint was written yet)'}; resume from it with a lower "
            "learning rate or fp32 precision."
        )
        raise
    finally:
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
        "time_budget_minutes": t.get("time_budget_minutes"), "device": str(info.device), "ranks": info.world_size,
        "threads": torch.get_num_threads(), "loader_workers": cfg.data.get("num_workers", 2), **(cpu_info() if info.device.type == "cpu" else {}),
    })  # fmt: skip
    D.barrier()
    D.cleanup()
    return last_ckpt


def _global_skips(skipped: dict[str, int], info: D.DistInfo) -> dict[str, int]:
    """Skip counts summed over ranks (each rank reads different shards, so each has its own reasons)."""
    if not D.is_distributed():
        return dict(skipped)
    parts: list = [None] * info.world_size
    torch.distributed.all_gather_object(parts, dict(skipped))
    return dict(sum((Counter(p) for p in parts), Counter()))


def _save(ckpt_dir, model, optimizer, scaler, state, info: D.DistInfo, keep_last: int) -> Path | None:
    """Every rank contributes its RNG state; rank 0 writes."""
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


def load_config(path: str, options: dict | None = None) -> Config:
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    for section in ("model", "data", "optimizer", "train", "loss"):
        cfg.setdefault(section, ConfigDict())
    return cfg


__all__ = ["TrainingDiverged", "load_config", "schedule", "train", "train_step"]
