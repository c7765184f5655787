"""Precision: which one to run (``resolve_precision``: bf16 only where the hardware runs it natively), and bf16
inference without per-call weight casts.

Under ``torch.autocast`` every matmul casts its fp32 weight to bf16, and the cast is cached only until the autocast
context exits: an inference call per image re-casts the ~29M image-tower weights each time (a third of a bf16
forward on CPU). Storing the matmul weights in bf16 once removes those casts; autocast then only casts activations.
LayerNorm/BatchNorm parameters, position embeddings and group tokens stay fp32, and so do the layers a module names
in ``fp32_layers`` (the grouping assignment's q/k projections, whose logits are computed in fp32).
"""
from __future__ import annotations

import functools
import time
import warnings
from typing import Literal, get_args

import torch
from torch import nn

MATMUL_LAYERS = (nn.Linear, nn.Conv2d)


@torch.no_grad()
def cast_matmul_weights_(module: nn.Module, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Store the weights and biases of ``module``'s Linear/Conv2d layers in ``dtype``, in place; run it under
    ``torch.autocast(dtype=dtype)`` afterwards (inputs stay fp32). Returns ``module``."""
    keep = {
        id(getattr(parent, name)) for parent in module.modules() for name in getattr(parent, "fp32_layers", ())
    }
    for layer in module.modules():
        if isinstance(layer, MATMUL_LAYERS) and id(layer) not in keep:
            for param in layer.parameters(recurse=False):
                param.data = param.data.to(dtype)
    return module


Precision = Literal["auto", "fp32", "bf16", "fp16"]


@functools.lru_cache(maxsize=None)
def native_bf16(device_type: str = "cpu") -> bool:
    """Whether bf16 matmuls run natively fast here: on a GPU, what CUDA reports; on a CPU, the AVX512-BF16 or AMX-BF16
    instructions (without them torch emulates bf16 and a bf16 matmul runs ~3-4× slower than fp32)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith("flags")), "").split()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:  # not Linux: time it once (a 512³ matmul, best of 3)
        return _bf16_matmul_is_faster()


def _bf16_matmul_is_faster() -> bool:
    def best(dtype: torch.dtype) -> float:
        a = torch.randn(512, 512).to(dtype)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - start)
        return min(times)

    return best(torch.bfloat16) < best(torch.float32)


def resolve_precision(precision: Precision, device: torch.device | str = "cpu", what: str = "") -> str:
    """``"auto"`` → bf16 where it runs natively fast (see :func:`native_bf16`), fp32 elsewhere; an explicit choice
    wins, with a warning when it is bf16 on a CPU that emulates it. ``what`` names the caller in the warning."""
    device_type = torch.device(device).type
    if precision not in get_args(Precision):
        raise ValueError(f"precision must be one of {get_args(Precision)}, not {precision!r}")
    fast = native_bf16(device_type)
    if precision == "auto":
        return "bf16" if fast else "fp32"
    if precision == "bf16" and device_type == "cpu" and not fast:
        warnings.warn(f"{what + ': ' if what else ''}precision='bf16' on a CPU without native bf16 runs ~3× slower "
                      "than fp32 here; precision='auto' picks the fast one", stacklevel=2)  # fmt: skip
    return precision
