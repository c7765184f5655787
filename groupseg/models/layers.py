"""Small transformer blocks of the vision tower (MLPs, fused-qkv self-attention, cross-attention) and the attention
function both towers use.

Parameter names follow the official NVlabs code (``qkv``, ``q_proj``, ``fc1`` ...) so its checkpoints load by name.
Attention runs through ``F.scaled_dot_product_attention`` (fused kernels), except in bf16 on CPU: see ``attention``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth


class Mlp(nn.Module):
    """Linear → GELU → Linear, applied to the last axis."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MixerMlp(Mlp):
    """The same MLP over the token axis: maps ``[B, G_in, C]`` to ``[B, G_out, C]`` (MLP-Mixer style)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    batch, length, dim = x.shape
    return x.view(batch, length, num_heads, dim // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


# bf16 on CPU, sequences longer than BF16_CPU_CHUNK_FROM query rows (inference at 448 px: 848 tokens; 896 px: 3200)
# are attended in chunks of BF16_CPU_CHUNK_ROWS rows, so that a chunk's scores stay in cache (2× faster at 848).
BF16_CPU_CHUNK_FROM = 512
BF16_CPU_CHUNK_ROWS = 64


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q·kᵀ/√d + mask)·v over ``[B, heads, L, d]``.

    ``F.scaled_dot_product_attention``, except in bf16 on CPU, where PyTorch's fused kernel runs far below the bf16
    matmul speed: there three plain bf16 ops (row-chunked for long sequences) are 2× faster at inference (260-3200
    tokens) and 2.5-5× faster forward+backward in training, measured on an AVX512-BF16 CPU with torch 2.14. That is
    the arithmetic of eager attention under autocast (scores rounded to bf16: about twice the fused kernel's error);
    the fp32-vs-bf16 agreement of zero-shot labels is measured by ``tools/benchmark.py``. fp32 always takes SDPA, so
    fp32 results do not depend on this switch.
    """
    if q.dtype != torch.bfloat16 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    # one contiguous copy each: batched matmuls would otherwise copy the strided head views on every call
    q, keys, v = (q * q.shape[-1] ** -0.5).contiguous(), k.contiguous().transpose(-2, -1), v.contiguous()
    if mask is not None or q.shape[-2] <= BF16_CPU_CHUNK_FROM:
        scores = q @ keys
        if mask is not None:
            scores = scores + mask.to(scores.dtype)
        return scores.softmax(dim=-1) @ v
    return torch.cat([(rows @ keys).softmax(dim=-1) @ v for rows in q.split(BF16_CPU_CHUNK_ROWS, dim=-2)], dim=-2)


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused qkv projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        return self.proj(merge_heads(attention(qkv[0], qkv[1], qkv[2])))


class CrossAttention(nn.Module):
    """Multi-head attention of ``query`` tokens over ``key`` tokens (separate q/k/v projections)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.k_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.v_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        queries, dim = query.shape[1:]
        heads, keys = self.num_heads, key.shape[1]
        q = _split_heads(self.q_proj(query), heads)
        if 2 * (heads * queries * keys + queries * dim) > keys * dim + queries * keys:  # see _attend_unprojected
            k = _split_heads(self.k_proj(key), heads)
            v = _split_heads(self.v_proj(key), heads)
            return self.proj(merge_heads(attention(q, k, v)))
        return self.proj(merge_heads(self._attend_unprojected(q, key)))

    def _attend_unprojected(self, q: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """The same attention with k_proj folded into the queries and v_proj applied after pooling, so that no
        D × D projection runs over the keys: a few group tokens over many image tokens costs ~H·G·N·D instead of
        ~N·D² (the synthetic recipe's 4 groups over 256 patches: ~7× fewer FLOPs). Exact: the key bias adds a
        constant per query row (it cancels in the softmax but is kept, so that every parameter stays in the graph, as
        DistributedDataParallel requires) and attention rows sum to 1 (the value bias passes through).
        Used where it at least halves the cost."""
        batch, heads, queries, head_dim = q.shape
        dim = key.shape[-1]
        q_in = (q @ self.k_proj.weight.view(heads, head_dim, dim)).reshape(batch, heads * queries, dim)
        scores = q_in @ key.transpose(-2, -1)
        if self.k_proj.bias is not None:
            scores = scores + (q @ self.k_proj.bias.view(heads, head_dim, 1)).reshape(batch, heads * queries, 1)
        weights = (scores * head_dim**-0.5).softmax(dim=-1)  # [B, H·G, N]
        pooled = (weights @ key).view(batch, heads, queries, dim)
        v_weight = self.v_proj.weight.view(heads, head_dim, dim).transpose(-2, -1)  # [H, D, dh]
        out = pooled @ v_weight
        if self.v_proj.bias is not None:
            out = out + self.v_proj.bias.view(heads, 1, head_dim)
        return out


class AttnBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0, eps: float = 1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = SelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CrossAttnBlock(nn.Module):
    """Group tokens attend to image tokens; post-norm, as in GroupViT's grouping block (``post_norm=True``).

    Post-norm means no LayerNorm on the queries or keys (the official ``norm_q``/``norm_k`` are ``Identity`` there;
    the grouping block has already normalised both), only one after the residual MLP.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, eps: float = 1e-5):
        super().__init__()
        self.attn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_post = nn.LayerNorm(dim, eps=eps)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        x = query + self.attn(query, key)
        x = x + self.mlp(self.norm2(x))
        return self.norm_post(x)
