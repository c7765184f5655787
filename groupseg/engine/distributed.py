"""How ranks cooperate: process-group setup from torchrun's environment, BatchNorm synchronised across ranks
(on CPU too), and averaging of logged numbers."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes (NCCL on GPUs, gloo on CPU); a plain run is rank 0 of 1."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: torch sees no GPU here (use 'cpu' or 'auto')")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class CrossRankBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics cover the global batch, on any device.

    ``torch.nn.SyncBatchNorm`` refuses CPU tensors ("expected input tensor to be on GPU or XPU"); this computes the
    same two-pass statistics with ``torch.distributed.nn.functional.all_reduce``, which carries gradients, so CPU
    (gloo) ranks train exactly like one process on the global batch. Same parameters and buffers as BatchNorm1d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        x32 = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # statistics in >= fp32
        count = all_reduce(torch.tensor([float(x.shape[0])], device=x.device))
        mean = all_reduce(x32.sum(0)) / count
        var = all_reduce(((x32 - mean) ** 2).sum(0)) / count
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean.detach().to(self.running_mean.dtype))
            unbiased = var.detach() * count / (count - 1).clamp(min=1)
            self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var.dtype))
            self.num_batches_tracked.add_(1)
        out = (x32 - mean) / torch.sqrt(var + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        return out.to(x.dtype)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Make every BatchNorm use global-batch statistics: torch's SyncBatchNorm on GPUs, ours elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm1d:
            synced = CrossRankBatchNorm1d(child.num_features, child.eps, child.momentum, child.affine)
            synced.load_state_dict(child.state_dict())
            setattr(model, name, synced.to(device=child.weight.device, dtype=child.weight.dtype))
        else:
            sync_batchnorm(child, device)
    return model


def all_reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average logged scalars over ranks (for one log line that speaks for the global batch)."""
    if not is_distributed() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


__all__ = [
    "CrossRankBatchNorm1d",
    "DistInfo",
    "all_reduce_mean",
    "barrier",
    "cleanup",
    "init_distributed",
    "is_distributed",
    "sync_batchnorm",
]
