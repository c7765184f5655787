"""The grouping block: how GroupViT merges image tokens into a few segment tokens.

Each image token is assigned to exactly one group. In training the assignment is a hard Gumbel-softmax with a
straight-through gradient; at eval it is a plain argmax one-hot. The soft assignment (softmax over groups) is kept
too: the zero-shot head chains it across stages to label pixels.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import CrossAttnBlock, MixerMlp, Mlp


def _one_hot_straight_through(soft: torch.Tensor, dim: int) -> torch.Tensor:
    """One-hot of ``soft``'s argmax; with autograd on, carrying ``soft``'s gradient (straight-through)."""
    # max(dim).indices: argmax's first maximum, ~10x faster over a short middle axis of a CPU tensor (4 groups)
    hard = torch.zeros_like(soft).scatter_(dim, soft.max(dim, keepdim=True).indices, 1.0)
    return hard - soft.detach() + soft if soft.requires_grad else hard


def gumbel_hard_softmax(logits: torch.Tensor, dim: int, tau: float = 1.0) -> torch.Tensor:
    """Hard Gumbel-softmax sample with a straight-through gradient (``F.gumbel_softmax(hard=True)`` on any axis)."""
    gumbels = -torch.empty_like(logits).exponential_().log()
    return _one_hot_straight_through(((logits + gumbels) / tau).softmax(dim), dim)


def _linear_fp32(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` in at least fp32 (a float64 model stays float64)."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    bias = layer.bias.to(dtype) if layer.bias is not None else None
    return F.linear(x.to(dtype), layer.weight.to(dtype), bias)


class Assignment(NamedTuple):
    """One stage's assignment of input tokens to groups, each ``[B, groups, tokens]``."""

    hard: torch.Tensor  # one-hot over groups (Gumbel sample in training, argmax at eval)
    soft: torch.Tensor  # softmax over groups, no noise


class AssignAttention(nn.Module):
    """Single-head attention whose softmax runs over the *group* (query) axis, made hard."""

    fp32_layers = ("q_proj", "k_proj")  # kept fp32 by ``precision.cast_matmul_weights_``: they make the logits

    def __init__(self, dim: int, assign_eps: float = 1.0, gumbel_tau: float = 1.0, gumbel: bool = True):
        super().__init__()
        self.gumbel = gumbel  # False: noiseless argmax in training too (the reference's gumbel=False)
        self.scale = dim**-0.5
        self.assign_eps = assign_eps
        self.gumbel_tau = gumbel_tau
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, groups: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, Assignment]:
        # The logits decide which group each token joins: under bf16 autocast they stay fp32 (q/k are ~1% of the
        # FLOPs), so argmax near-ties break as in fp32 and the soft assignments the zero-shot head chains stay fp32.
        # k_proj is folded into the group queries and v_proj applied after pooling, so no D × D projection runs over
        # the N tokens (G ≪ N: ~N/G fewer FLOPs there); exact up to rounding, the biases included.
        with torch.autocast(tokens.device.type, enabled=False):
            q = _linear_fp32(self.q_proj, groups)
            k_weight = self.k_proj.weight.to(q.dtype)
            logits = (q @ k_weight) @ tokens.to(q.dtype).transpose(-2, -1)
            if self.k_proj.bias is not None:
                logits = logits + (q @ self.k_proj.bias.to(q.dtype)).unsqueeze(-1)
            logits = logits * self.scale  # [B, G, N]
        soft = logits.softmax(dim=-2)
        if self.training and self.gumbel:
            hard = gumbel_hard_softmax(logits, dim=-2, tau=self.gumbel_tau)
        else:
            hard = _one_hot_straight_through(soft, dim=-2)
        weights = hard / (hard.sum(dim=-1, keepdim=True) + self.assign_eps)  # mean over assigned tokens, damped
        out = F.linear(weights @ tokens, self.v_proj.weight)
        if self.v_proj.bias is not None:
            out = out + weights.sum(dim=-1, keepdim=True) * self.v_proj.bias
        out = self.proj(out)
        return out, Assignment(hard=hard, soft=soft)


class GroupingBlock(nn.Module):
    """Merge ``N`` image tokens into ``num_output_group`` segment tokens, guided by ``num_group_token`` group tokens."""

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        num_group_token: int,
        num_output_group: int,
        mlp_ratio: tuple[float, float] = (0.5, 4.0),
        assign_eps: float = 1.0,
        eps: float = 1e-5,
        gumbel: bool = True,
        group_token_residual: bool = True,
    ):
        super().__init__()
        # True (the reference): each segment token = mean of its assigned tokens + its group token, which has
        # cross-attended to the whole image. False: a segment holds only its own tokens, so a background segment
        # cannot carry a summary of the objects (see the synthetic recipe in the README).
        self.group_token_residual = group_token_residual
        tokens_dim, channels_dim = (int(r * dim) for r in mlp_ratio)
        self.norm_tokens = nn.LayerNorm(dim, eps=eps)
        self.mlp_inter = MixerMlp(num_group_token, tokens_dim, num_output_group)
        self.norm_post_tokens = nn.LayerNorm(dim, eps=eps)
        self.norm_x = nn.LayerNorm(dim, eps=eps)
        self.pre_assign_attn = CrossAttnBlock(dim, num_heads, eps=eps)
        self.assign = AssignAttention(dim, assign_eps=assign_eps, gumbel=gumbel)
        self.norm_new_x = nn.LayerNorm(dim, eps=eps)
        self.mlp_channels = Mlp(dim, channels_dim, dim)

    def forward(self, x: torch.Tensor, group_tokens: torch.Tensor) -> tuple[torch.Tensor, Assignment]:
        x = self.norm_x(x)
        groups = self.norm_post_tokens(self.mlp_inter(self.norm_tokens(group_tokens)))
        groups = self.pre_assign_attn(groups, x)
        new_x, assignment = self.assign(groups, x)
        if self.group_token_residual:
            new_x = new_x + groups
        return new_x + self.mlp_channels(self.norm_new_x(new_x)), assignment
