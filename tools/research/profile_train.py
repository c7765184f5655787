#!/usr/bin/env python
"""Where an fp32 training step goes on a CPU, by kind of work, and what compile / the fused optimizer buy.

    python tools/research/profile_train.py [--preset groupvit-s] [--batch 8] [--threads 2] [--variants compiled]

One random GroupViT (a fixed seed), the contrastive loss, ``engine.train_step`` (forward, backward, gradient
clipping, AdamW) on random images and real captions, in fp32. The torch profiler's self CPU time of ``--steps``
steps is summed by kind (matmuls, attention, norms, activations, optimizer, copies, ...) with its share of the
step and the matmul FLOP rate; then the step is timed, interleaved, against the variants: ``foreach`` (AdamW's
multi-tensor loop instead of its fused kernel), ``compiled`` (``torch.compile`` of the model, as
``train.compile=True`` does; compiling takes minutes on a CPU).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import groupseg  # noqa: E402

CAPTIONS = ["a photo of a dog on a sofa", "two cats", "a red car parked by a tree", "boats in a harbour at dusk"]
KINDS = [  # (kind, substrings of aten op names), first match wins
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::_addmm", "mkldnn_matmul", "aten::baddbmm")),
    ("attention (SDPA)", ("scaled_dot_product", "flash_attention")),
    ("convolution", ("convolution",)),
    ("layer/batch norm", ("layer_norm", "batch_norm")),
    ("GELU / ReLU", ("gelu", "relu", "threshold_backward")),
    ("softmax", ("softmax",)),
    ("optimizer (AdamW)", ("adam",)),
    ("gradient clipping", ("foreach_norm", "clip_grad", "_foreach_mul", "linalg_vector_norm")),
    ("copies / layout", ("copy_", "clone", "contiguous", "cat", "index", "scatter", "gather", "embedding", "fill_",
                         "zero_", "empty", "as_strided")),
    ("elementwise", ("aten::add", "aten::mul", "aten::div", "aten::sub", "aten::exp", "aten::log", "aten::sum",
                     "aten::mean", "aten::where", "aten::pow", "aten::sqrt", "aten::rsqrt", "aten::max", "aten::neg")),
]  # fmt: skip


def kind_of(name: str) -> str:
    return next((kind for kind, keys in KINDS if any(key in name for key in keys)), "other")


def make_step(model, batch, optimizer_kind: str = "fused", compiled: bool = False):
    import torch

    from groupseg.engine.optim import build_optimizer
    from groupseg.engine.trainer import train_step
    from groupseg.losses import GroupViTLoss

    model = copy.deepcopy(model).train()
    optimizer = build_optimizer(model, lr=1e-5)
    if optimizer_kind == "foreach":
        optimizer = torch.optim.AdamW(optimizer.param_groups, lr=1e-5, foreach=True)
    net = torch.compile(model) if compiled else model
    loss = GroupViTLoss(0.0)
    return lambda: train_step(net, loss, optimizer, batch, torch.device("cpu"), "fp32")


def profile(step, steps: int) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    by_kind: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        by_kind[kind_of(event.key)] += event.self_cpu_time_total / 1e3 / steps  # ms per step
    total = sum(by_kind.values())
    print(f"fp32 train step under the profiler: {total:.0f} ms, {flops / 1e9:.1f} GFLOP "
          f"({flops / 1e9 / (total / 1e3):.1f} GFLOP/s over the whole step)")  # fmt: skip
    for kind, ms in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<22} {ms:8.1f} ms  {100 * ms / total:5.1f} %")
    matmul = by_kind.get("matmul", 0.0)
    if matmul:
        print(f"  matmuls run at {flops / 1e9 / (matmul / 1e3):.1f} GFLOP/s (nearly all the FLOPs are theirs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="groupvit-s")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int)  # default: torch's
    parser.add_argument("--steps", type=int, default=2, help="profiled steps (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of the comparison (default 5)")
    parser.add_argument("--variants", nargs="*", default=["foreach"], choices=["foreach", "compiled"])
    args = parser.parse_args(argv)
    import torch

    if args.threads is None:
        args.threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    from torch._inductor import config as inductor_config

    inductor_config.compile_threads = 1
    torch.manual_seed(0)
    model = groupseg.GroupViT(groupseg.build_config(args.preset, drop_path_rate=0.0))
    size, context = model.config.image_size, model.config.context_length
    tokens = groupseg.tokenize([CAPTIONS[i % len(CAPTIONS)] for i in range(args.batch)], context)
    batch = dict(images=torch.randn(args.batch, 3, size, size), tokens=tokens)
    print(f"{args.preset}, batch {args.batch} at {size}, fp32, {args.threads} threads, torch {torch.__version__}")

    steps = {"fused AdamW (default)": make_step(model, batch)}
    steps["fused AdamW (default)"]()  # warm-up
    profile(steps["fused AdamW (default)"], args.steps)
    for variant in args.variants:
        name = {"foreach": "foreach AdamW", "compiled": "compiled model"}[variant]
        steps[name] = make_step(model, batch, "foreach" if variant == "foreach" else "fused", variant == "compiled")
        start = time.perf_counter()
        steps[name]()  # warm-up (and, compiled, the compile)
        print(f"{name}: first step {time.perf_counter() - start:.0f} s", flush=True)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(args.repeats):
        for name in steps if round_ % 2 == 0 else list(steps)[::-1]:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["fused AdamW (default)"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<24} {1e3 * median:8.0f} ms/step  {args.batch / median:6.2f} img/s  {base / median:.2f}× default")
    return 0


if __name__ == "__main__":
    sys.exit(main())
