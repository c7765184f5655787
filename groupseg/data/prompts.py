"""Multi-label prompts: K texts per image made from the caption's nouns, as the reference builds them.

Up to K distinct nouns are drawn (without replacement) from the caption's nouns, each is wrapped in a random one of
the 80 ImageNet templates ("a bad photo of a {}.", ...; open_clip's ``OPENAI_IMAGENET_TEMPLATES``, the same list as
the reference's ``full_imagenet_templates``), and the slots left over when the caption has fewer than K nouns are
filled with the raw caption.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

TEMPLATES: tuple[Callable[[str], str], ...] = tuple(OPENAI_IMAGENET_TEMPLATES)
if len(TEMPLATES) != 80:
    raise RuntimeError(
        f"open_clip's OPENAI_IMAGENET_TEMPLATES has {len(TEMPLATES)} entries, expected the 80 ImageNet templates; "
        "the open_clip install does not match groupseg's pin (open_clip_torch==3.3.0)"
    )

Rng = np.random.Generator | torch.Generator | int | None


def make_prompts(
    caption: str,
    nouns: Sequence[str],
    k: int = 3,
    rng: Rng = None,
    templates: Sequence[Callable[[str], str]] = TEMPLATES,
) -> list[str]:
    """``k`` prompt texts for one caption. Deterministic for a seed or a numpy/torch generator in a given state;
    ``rng=None`` draws from fresh OS entropy."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    nouns = list(dict.fromkeys(nouns))  # distinct, first occurrence order
    n = min(k, len(nouns))
    if isinstance(rng, torch.Generator):
        picks = torch.randperm(len(nouns), generator=rng)[:n].tolist()
        tpl = torch.randint(len(templates), (n,), generator=rng).tolist()
    else:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        picks = gen.choice(len(nouns), size=n, replace=False).tolist() if n else []
        tpl = gen.integers(len(templates), size=n).tolist()
    prompts = [templates[t](nouns[i]) for i, t in zip(picks, tpl)]
    return prompts + [caption] * (k - n)
