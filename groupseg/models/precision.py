"""bf16 inference without per-call weight casts.

Under ``torch.autocast`` every matmul casts its fp32 weight to bf16, and the cast is cached only until the autocast
context exits: an inference call per image re-casts the ~29M image-tower weights each time (a third of a bf16
forward on CPU). Storing the matmul weights in bf16 once removes those casts; autocast then only casts activations.
LayerNorm/BatchNorm parameters, position embeddings and group tokens stay fp32, and so do the layers a module names
in ``fp32_layers`` (the grouping assignment's q/k projections, whose logits are computed in fp32).
"""
from __future__ import annotations

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
