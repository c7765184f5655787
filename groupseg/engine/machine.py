"""Which CPU a run ran on, and how many torch threads it should use there.

Timings mean little without the machine: a training summary names the CPU (``/proc/cpuinfo``'s model name), its
cores, and whether it has native bf16 (``avx512_bf16`` / ``amx_bf16``: bf16 matmuls at full speed; without them
PyTorch emulates bf16 and fp32 is faster).

Threads: torch's intra-op pool defaults to one thread per core, and every DataLoader worker is another busy
process. On a 2-core machine with one loader worker that is three busy threads on two cores, and torch's OpenMP
threads wait for each other at every op: one descheduled thread stalls the step (steps ran ~4x slower than with one
thread on a busy 2-core machine). ``cpu_threads`` leaves a core to each worker.
"""
from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, object]:
    """``{"cpu": model name, "cores": n, "native_bf16": bool, "flags": [the bf16 flags present]}``."""
    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name" and not name:
                name = " ".join(value.split())
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:  # not Linux
        pass
    name = name or platform.processor() or platform.machine()
    present = [f for f in BF16_FLAGS if f in flags]
    return {"cpu": name or "unknown CPU", "cores": available_cores(), "native_bf16": bool(present), "flags": present}


def describe_cpu() -> str:
    """One line, e.g. 'AMD EPYC 7B13, 2 cores, no native bf16'."""
    info = cpu_info()
    bf16 = f"native bf16 ({', '.join(info['flags'])})" if info["native_bf16"] else "no native bf16"
    return f"{info['cpu']}, {info['cores']} cores, {bf16}"


def cpu_threads(num_workers: int, ranks_on_machine: int = 1) -> int:
    """Torch threads for one training process on CPU: its share of the cores, less one per loader worker."""
    return max(1, available_cores() // max(1, ranks_on_machine) - max(0, num_workers))


__all__ = ["available_cores", "cpu_info", "cpu_threads", "describe_cpu"]
