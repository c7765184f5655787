"""CLIP BPE tokenisation, offline: the vocabulary file ships inside open_clip, so nothing is fetched from a hub.

``transformers.CLIPTokenizer.from_pretrained`` under ``HF_HUB_OFFLINE=1`` silently returns an empty tokenizer; this
module never does that: it checks the vocabulary it built and raises if it is not CLIP's 49408 tokens.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch

CLIP_VOCAB_SIZE = 49408
CONTEXT_LENGTH = 77


@lru_cache(maxsize=None)
def get_tokenizer(context_length: int = CONTEXT_LENGTH):
    """open_clip's ``SimpleTokenizer`` over the BPE file bundled with open_clip (lower-cased, whitespace-cleaned)."""
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer(context_length=context_length)
    if len(tokenizer.encoder) != CLIP_VOCAB_SIZE:
        raise RuntimeError(
            f"the CLIP BPE vocabulary inside open_clip has {len(tokenizer.encoder)} tokens, expected {CLIP_VOCAB_SIZE}; "
            "the open_clip install is broken (reinstall open_clip_torch)"
        )
    return tokenizer


def tokenize(texts: Sequence[str] | str, context_length: int = CONTEXT_LENGTH) -> torch.LongTensor:
    """Token ids ``[N, context_length]``: <start> BPE <end>, zero padded; over-long texts are cut and end in <end>."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"tokenize expects strings; item {i} is {type(text).__name__}: {text!r}")
    if not texts:
        return torch.zeros(0, context_length, dtype=torch.long)
    return get_tokenizer(context_length)(texts, context_length=context_length).long()
