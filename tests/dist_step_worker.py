"""Run by test_distributed.py, once plainly and once under torchrun: one training step on a fixed global batch.

Each rank takes its contiguous share of the global batch; rank 0 saves the global loss, gradients and updated
weights so the test can compare 1 process with N.
"""
import sys

import torch

from groupseg.engine import distributed as D
from groupseg.engine.optim import build_optimizer
from groupseg.engine.trainer import train_step
from groupseg.losses import GroupViTLoss
from groupseg.models import GroupViT, build_config
from groupseg.tokenizer import tokenize

GLOBAL_BATCH = 8


def global_batch():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=g, dtype=torch.float64)
    words = ["circle", "square", "star", "triangle", "heart", "cross", "ring", "moon"]
    tokens = torch.stack(
        [tokenize([f"a {w} and a {words[i - 1]}", f"a photo of a {w}.", f"a photo of a {words[i - 1]}."], 16)
         for i, w in enumerate(words)]
    )  # fmt: skip
    return images, tokens


def main(out_path: str) -> None:
    torch.set_num_threads(1)
    info = D.init_distributed("cpu")
    torch.manual_seed(0)
    # No Gumbel noise (ranks draw their own) and float64, so that 1 vs N ranks differ only by reduction order.
    model = GroupViT(build_config("groupvit-tiny", gumbel=False)).double().train()
    with torch.no_grad():  # make BatchNorm and temperatures matter
        model.img_projector.linear_hidden[1].running_var.fill_(2.0)
    if info.world_size > 1:
        model = D.sync_batchnorm(model, info.device)
        net = torch.nn.parallel.DistributedDataParallel(model)
    else:
        net = model
    images, tokens = global_batch()
    share = GLOBAL_BATCH // info.world_size
    sl = slice(info.rank * share, (info.rank + 1) * share)
    optimizer = build_optimizer(model, lr=1e-3)
    metrics = train_step(net, GroupViTLoss(1.0), optimizer, {"images": images[sl], "tokens": tokens[sl]}, info.device)
    metrics = D.all_reduce_mean(metrics, info.device)
    if info.is_main:
        torch.save(
            {
                "loss": metrics["loss"],
                "grads": {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
                "state": {k: v.clone() for k, v in model.state_dict().items()},
            },
            out_path,
        )
    D.cleanup()


if __name__ == "__main__":
    main(sys.argv[1])
