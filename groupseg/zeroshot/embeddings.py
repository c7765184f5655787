"""Class embeddings: one L2-normalised text embedding per prompted label, built with open_clip's zero-shot classifier.

Averaging order. GroupViT averages the *projected, unnormalised* text embeddings over templates and then
L2-normalises (``build_text_embedding`` in the NVlabs code); open_clip's ``build_zero_shot_classifier`` averages
normalised ones. We hand open_clip a view of the model whose ``encode_text`` skips the normalisation, so open_clip's
function computes exactly the official embedding. Synonyms of one label are then averaged as normalised per-word
embeddings (each word counts equally) and re-normalised; a label without synonyms is exactly the official embedding.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from open_clip import build_zero_shot_classifier

from ..tokenizer import tokenize
from .vocabulary import Vocabulary


class _UnnormalisedText:
    """``model.encode_text`` that ignores ``normalize=True``, so open_clip averages before normalising (official)."""

    def __init__(self, model):
        self.model = model

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return self.model.encode_text(tokens, normalize=False)


@torch.no_grad()
def class_embeddings(model, vocab: Vocabulary, batch_size: int = 64) -> torch.Tensor:
    """``[num_prompted_labels, D]`` normalised class embeddings for ``vocab`` (background excluded)."""
    words = vocab.prompted_words
    flat = [w for group in words for w in group]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # the projection head has BatchNorm: use its running statistics
    try:
        per_word = build_zero_shot_classifier(
            _UnnormalisedText(model),
            partial(tokenize, context_length=model.config.context_length),
            flat,
            list(vocab.templates),
            num_classes_per_batch=max(1, batch_size // len(vocab.templates)),
            device=device,
        ).T  # [num_words, D], each normalised
    finally:
        model.train(was_training)
    chunks = per_word.split([len(group) for group in words])
    return torch.stack([c[0] if len(c) == 1 else F.normalize(c.mean(0), dim=-1) for c in chunks])
