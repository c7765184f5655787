"""GroupViT's text tower: open_clip's CLIP text transformer (causal, QuickGELU, pooled at end-of-text, no projection).

open_clip's ``TextTransformer`` already has exactly the official ``text_encoder`` parameter names
(``token_embedding``, ``positional_embedding``, ``transformer.resblocks.k.{ln_1, attn.in_proj_*, ...}``, ``ln_final``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..compat import check_torchvision
from .layers import attention, merge_heads

check_torchvision()  # open_clip imports torchvision: a mismatched pair fails here with the fix, not deep inside it
from open_clip.transformer import QuickGELU, TextTransformer  # noqa: E402


class TextSelfAttention(nn.Module):
    """Stands in for the ``nn.MultiheadAttention`` of open_clip's text blocks: it takes over that module's parameters
    (same names, same initialisation) and call, and attends through :func:`groupseg.models.layers.attention`, whose
    bf16 CPU path trains ~2.5× faster than the fused kernel ``nn.MultiheadAttention`` calls. Self-attention only."""

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        if not mha.batch_first or mha.bias_k is not None or not mha._qkv_same_embed_dim:
            raise ValueError("TextSelfAttention replaces batch-first self-attention with one packed qkv projection")
        self.num_heads = mha.num_heads
        self.in_proj_weight, self.in_proj_bias, self.out_proj = mha.in_proj_weight, mha.in_proj_bias, mha.out_proj

    def forward(self, query: torch.Tensor, key=None, value=None, need_weights: bool = False, attn_mask=None):
        batch, length, dim = query.shape
        if attn_mask is not None and attn_mask.shape[-1] > length:  # the tower's causal mask is for full context
            attn_mask = attn_mask[..., :length, :length]
        qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.view(batch, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        return self.out_proj(merge_heads(attention(qkv[0], qkv[1], qkv[2], attn_mask))), None


def build_text_tower(
    width: int = 256, layers: int = 12, heads: int = 4, context_length: int = 77, vocab_size: int = 49408
) -> TextTransformer:
    tower = TextTransformer(
        context_length=context_length,
        vocab_size=vocab_size,
        width=width,
        heads=heads,
        layers=layers,
        output_dim=None,
        proj_type="none",
        pool_type="argmax",
        act_layer=QuickGELU,
    )
    for block in tower.transformer.resblocks:
        block.attn = TextSelfAttention(block.attn)
    return tower
