"""CLIP BPE tokenisation, offline: the vocabulary file ships inside open_clip, so nothing is fetched from a hub.

``transformers.CLIPTokenizer.from_pretrained`` under ``HF_HUB_OFFLINE=1`` silently returns an empty tokenizer; this
module never does that: it checks the vocabulary it built and raises if it is not CLIP's 49408 tokens.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

import torch

CLIP_VOCAB_SIZE = 49408
CONTEXT_LENGTH = 77


# Printable ASCII without "&": text that ftfy.fix_text and html.unescape return unchanged, so CLIP's "lower" cleaning
# is only whitespace folding and lower-casing (ftfy alone costs more than the BPE of a short caption).
_PLAIN_TEXT = re.compile(r"[\x20-\x25\x27-\x7e]*")


@lru_cache(maxsize=None)
def get_tokenizer(context_length: int = CONTEXT_LENGTH):
    """open_clip's ``SimpleTokenizer`` over the BPE file bundled with open_clip (lower-cased, whitespace-cleaned)."""
    from open_clip import tokenizer as oc

    tokenizer = oc.SimpleTokenizer(context_length=context_length)
    if len(tokenizer.encoder) != CLIP_VOCAB_SIZE:
        raise RuntimeError(
            f"the CLIP BPE vocabulary inside open_clip has {len(tokenizer.encoder)} tokens, "
            f"expected {CLIP_VOCAB_SIZE}; "
            "the open_clip install is broken (reinstall open_clip_torch)"
        )
    if tokenizer.clean_fn is oc._clean_lower:
        tokenizer.clean_fn = lambda text: (
            " ".join(text.split()).lower() if _PLAIN_TEXT.fullmatch(text) else oc._clean_lower(text)
        )
    return tokenizer


@lru_cache(maxsize=1 << 16)
def _token_ids(text: str, context_length: int) -> tuple[int, ...]:
    """<start> BPE <end> of one text, cut to ``context_length`` (ending in <end>). Cached: prompts repeat."""
    tokenizer = get_tokenizer(context_length)
    ids = [tokenizer.sot_token_id, *tokenizer.encode(text), tokenizer.eot_token_id]
    if len(ids) > context_length:
        ids = ids[:context_length]
        ids[-1] = tokenizer.eot_token_id
    return tuple(ids)


def tokenize(texts: Sequence[str] | str, context_length: int = CONTEXT_LENGTH) -> torch.LongTensor:
    """Token ids ``[N, context_length]``: <start> BPE <end>, zero padded; over-long texts are cut and end in <end>
    (open_clip's ``SimpleTokenizer`` output, computed once per distinct text)."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"tokenize expects strings; item {i} is {type(text).__name__}: {text!r}")
    if not texts:
        return torch.zeros(0, context_length, dtype=torch.long)
    rows = [_token_ids(text, context_length) for text in texts]
    return torch.tensor([row + (0,) * (context_length - len(row)) for row in rows], dtype=torch.long)
