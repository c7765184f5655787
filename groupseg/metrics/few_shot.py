"""One-shot / few-shot segmentation: fixed episodes from a seed, and foreground IoU per class, mean over classes.

The protocol of FSS-1000 and COCO-20i / PASCAL-5i as PANet, PFENet and HSNet evaluate it. An episode is a class, its
``shots`` support items (image + binary mask of the class) and one query item of the same class; the prediction is a
binary mask of the class on the query. The score of a class is its foreground IoU over all its episodes
(``Σ intersection / Σ union``, HSNet's ``AverageMeter``), and the score of a method the mean over classes (mIoU);
FB-IoU (the mean of the foreground and background IoU over all episodes) is reported beside it.

Episodes are fixed by a seed: the same seed gives the same queries and supports, and the 1-shot supports of an
episode are the first of its 5-shot supports (the supports are a prefix of one permutation), so shot counts differ
only by the extra examples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class Episode:
    category: Hashable  # the class
    support: tuple[Hashable, ...]  # support item keys (images holding the class)
    query: Hashable  # query item key


def sample_episodes(
    items: Mapping[Hashable, Sequence[Hashable]],
    *,
    shots: int,
    num_episodes: int | None = None,
    seed: int = 0,
    support_items: Mapping[Hashable, Sequence[Hashable]] | None = None,
    queries: Sequence[tuple[Hashable, Hashable]] | None = None,
) -> list[Episode]:
    """Episodes over ``items`` (class → keys of the items holding it).

    ``num_episodes=None``: every item of every class is a query once (FSS-1000's test protocol); an integer: that many
    episodes of a class drawn uniformly, then a query of it (COCO-20i's 1000 episodes). ``queries``: ``(class, key)``
    pairs of a fixed list, taken in order and cycled to ``num_episodes`` (HSNet's PASCAL-5i: its fold list's lines).
    Supports are drawn without replacement from ``support_items`` (default ``items``, the query excluded). Classes with
    fewer than ``shots`` possible supports are left out.
    """
    if shots < 1:
        raise ValueError(f"shots must be at least 1, got {shots}")
    pools = support_items if support_items is not None else items
    needed = shots + (1 if support_items is None else 0)  # a query is never its own support
    usable = [c for c in items if items[c] and len(pools.get(c, ())) >= needed]
    rng = np.random.default_rng(seed)
    if queries is not None:
        listed = [(c, q) for c, q in queries if c in usable]
        count = len(listed) if num_episodes is None or not listed else num_episodes
        queries = [listed[i % len(listed)] for i in range(count)]
    elif num_episodes is None:
        queries = [(c, q) for c in usable for q in items[c]]
    else:
        if not usable:
            return []
        queries = []
        for _ in range(num_episodes):
            c = usable[int(rng.integers(len(usable)))]
            queries.append((c, items[c][int(rng.integers(len(items[c])))]))
    episodes = []
    for c, query in queries:
        candidates = [k for k in pools[c] if k != query]
        order = rng.permutation(len(candidates))  # one permutation whatever ``shots``: supports are prefixes
        episodes.append(Episode(c, tuple(candidates[i] for i in order[:shots]), query))
    return episodes


class FewShotIoU:
    """Accumulates binary predictions per class: foreground IoU per class (Σ I / Σ U), their mean, and FB-IoU."""

    def __init__(self):
        self.intersection: dict[Hashable, int] = {}
        self.union: dict[Hashable, int] = {}
        self.background = np.zeros(2, np.int64)  # background intersection, union over all episodes
        self.episodes = 0

    def add(self, category: Hashable, prediction: np.ndarray, target: np.ndarray, ignore: np.ndarray | None = None):
        """One episode: boolean ``prediction`` and ``target`` masks of the query (``ignore``: pixels not scored)."""
        prediction, target = np.asarray(prediction, bool), np.asarray(target, bool)
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {prediction.shape} and target {target.shape} differ in shape")
        valid = np.ones_like(target) if ignore is None else ~np.asarray(ignore, bool)
        pred, gt = prediction & valid, target & valid
        self.intersection[category] = self.intersection.get(category, 0) + int((pred & gt).sum())
        self.union[category] = self.union.get(category, 0) + int((pred | gt).sum())
        self.background += [int((~pred & ~gt & valid).sum()), int(((~pred | ~gt) & valid).sum())]
        self.episodes += 1

    def per_class(self) -> dict[Hashable, float]:
        """Foreground IoU (%) of each class seen (an empty union scores 100: nothing to find, nothing found)."""
        return {c: 100.0 * self.intersection[c] / self.union[c] if self.union[c] else 100.0 for c in self.intersection}

    def mean_iou(self) -> float:
        """Mean over classes of the per-class foreground IoU (%): the few-shot mIoU."""
        scores = list(self.per_class().values())
        return float(np.mean(scores)) if scores else float("nan")

    def fb_iou(self) -> float:
        """Mean of the foreground IoU and the background IoU over all episodes (%)."""
        fg_i, fg_u = sum(self.intersection.values()), sum(self.union.values())
        if not fg_u or not self.background[1]:
            return float("nan")
        return float(50.0 * (fg_i / fg_u + self.background[0] / self.background[1]))
