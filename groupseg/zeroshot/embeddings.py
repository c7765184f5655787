"""Class embeddings: one L2-normalised text embedding per prompted label, built with open_clip's zero-shot classifier.

Averaging order. GroupViT averages the *projected, unnormalised* text embeddings over templates and then
L2-normalises (``build_text_embedding`` in the NVlabs code); open_clip's ``build_zero_shot_classifier`` averages
normalised ones. We hand open_clip a view of the model whose ``encode_text`` skips the normalisation, so open_clip's
function computes exactly the official embedding. Synonyms of one label are then averaged as normalised per-word
embeddings (each word counts equally) and re-normalised; a label without synonyms is exactly the official embedding.

Exemplars (:mod:`groupseg.prompts.exemplars`). A label's exemplar embeddings are averaged (each exemplar counts
equally) and re-normalised; a label with both text and exemplars takes the normalised mean of its text embedding and
its exemplar embedding, ``normalize(t + e)``: text and examples count half each, however many words or exemplars
there are (a few more examples should not drown the name, nor a few synonyms the examples).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

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
def class_embeddings(
    model,
    vocab: Vocabulary,
    batch_size: int = 64,
    *,
    exemplar_scale: tuple[int, int] | None = None,
    forward_image: Callable[[torch.Tensor], Any] | None = None,
    exemplar_coverage: str | None = None,
) -> torch.Tensor:
    """``[num_prompted_labels, D]`` normalised class embeddings for ``vocab`` (background excluded).

    ``exemplar_scale``, ``forward_image`` and ``exemplar_coverage`` (default: the exemplars module's): how exemplar
    images are resized, encoded and pooled, see :func:`groupseg.prompts.exemplars.exemplar_embeddings`.
    """
    words = vocab.prompted_words
    text = _text_embeddings(model, words, vocab.templates, batch_size) if any(words) else None
    exemplars = vocab.prompted_exemplars
    if any(exemplars):
        from ..prompts.exemplars import DEFAULT_COVERAGE, exemplar_embeddings

        flat = [e for group in exemplars for e in group]
        pooled = exemplar_embeddings(model, flat, scale=exemplar_scale, forward_image=forward_image,
                                     coverage=exemplar_coverage or DEFAULT_COVERAGE)  # fmt: skip
        pooled = pooled.split([len(group) for group in exemplars])
    rows, next_text = [], iter(text if text is not None else ())
    for label, label_words in enumerate(words):
        parts = []
        if label_words:
            parts.append(next(next_text))
        if exemplars[label]:
            parts.append(F.normalize(pooled[label].mean(0), dim=-1))
        rows.append(parts[0] if len(parts) == 1 else F.normalize(parts[0] + parts[1], dim=-1))
    return torch.stack(rows)


def _text_embeddings(model, words, templates, batch_size: int) -> torch.Tensor:
    """``[labels with words, D]``: per label the official embedding of each word, averaged over its synonyms."""
    words = [group for group in words if group]
    flat = [w for group in words for w in group]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # the projection head has BatchNorm: use its running statistics
    try:
        per_word = build_zero_shot_classifier(
            _UnnormalisedText(model),
            partial(tokenize, context_length=model.config.context_length),
            flat,
            list(templates),
            num_classes_per_batch=max(1, batch_size // len(templates)),
            device=device,
        ).T  # [num_words, D], each normalised
    finally:
        model.train(was_training)
    chunks = per_word.split([len(group) for group in words])
    return torch.stack([c[0] if len(c) == 1 else F.normalize(c.mean(0), dim=-1) for c in chunks])
