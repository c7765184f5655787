"""GroupViT's text tower: open_clip's CLIP text transformer (causal, QuickGELU, pooled at end-of-text, no projection).

open_clip's ``TextTransformer`` already has exactly the official ``text_encoder`` parameter names
(``token_embedding``, ``positional_embedding``, ``transformer.resblocks.k.{ln_1, attn.in_proj_*, ...}``, ``ln_final``).
"""
from __future__ import annotations

from open_clip.transformer import QuickGELU, TextTransformer


def build_text_tower(
    width: int = 256, layers: int = 12, heads: int = 4, context_length: int = 77, vocab_size: int = 49408
) -> TextTransformer:
    return TextTransformer(
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
