"""The units a prompt can select: GroupViT's groups at every grouping stage and their connected pieces, with scores.

Each grouping stage gives a soft map ``[G, h, w]``: the chained soft assignments, each pixel's membership in each
group (summing to 1). A pixel's group is the argmax, as in the zero-shot head. Units, finest first: for each stage,
its *pieces* (8-connected parts of one group) then its *groups*. Masks are unions of units.

Scores come from the soft map, the way SAM's come from its logits. For a mask made of groups ``S`` the *margin*
``max_{g∈S} P_g − max_{g∉S} P_g`` is > 0 exactly on the argmax mask: it plays the role of SAM's mask logits.
``predicted_iou`` is the soft IoU of the hard mask with the membership ``Σ_{g∈S} P_g`` (how much the model's own soft
belief agrees with the mask); ``stability_score`` is the IoU of the masks at margin > +offset and > −offset (SAM's
``calculate_stability_score``). A piece is scored within its *support*: the parts of the low-threshold mask that
touch it, so that other pieces of its group do not count against it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

UnitKind = Literal["piece", "group"]
EIGHT_CONNECTED = np.ones((3, 3), bool)


@dataclass
class Level:
    """One grouping stage's groups at the working resolution."""

    maps: np.ndarray  # [G, h, w] float32 soft membership of each pixel in each group
    labels: np.ndarray  # [h, w] int64 argmax group
    top1: np.ndarray  # [h, w] largest membership
    top2: np.ndarray  # [h, w] second largest membership (0 with a single group)
    pieces: np.ndarray  # [h, w] int64 id of each pixel's piece (connected part of its group), 0..n-1
    piece_group: np.ndarray  # [n] the group of each piece

    @classmethod
    def from_maps(cls, maps: np.ndarray) -> "Level":
        maps = np.ascontiguousarray(maps, dtype=np.float32)
        labels = maps.argmax(axis=0)
        if maps.shape[0] > 1:
            top2, top1 = np.partition(maps, maps.shape[0] - 2, axis=0)[-2:]
        else:
            top1, top2 = maps[0], np.zeros_like(maps[0])
        pieces = np.zeros(labels.shape, np.int64)
        piece_group, count = [], 0
        for group in np.unique(labels):
            parts, n = ndimage.label(labels == group, structure=EIGHT_CONNECTED)
            pieces[parts > 0] = parts[parts > 0] - 1 + count
            piece_group += [int(group)] * n
            count += n
        return cls(maps, labels, top1, top2, pieces, np.asarray(piece_group, np.int64))

    def units(self, kind: UnitKind) -> np.ndarray:
        """``[h, w]`` unit id of every pixel."""
        return self.pieces if kind == "piece" else self.labels

    def unit_groups(self, kind: UnitKind, ids: np.ndarray) -> np.ndarray:
        """The groups the units ``ids`` belong to."""
        return np.unique(self.piece_group[ids] if kind == "piece" else ids)

    def margin(self, groups: np.ndarray) -> np.ndarray:
        """``max_{g∈groups} P_g − max_{g∉groups} P_g``: > 0 exactly where the argmax group is one of ``groups``."""
        groups = np.unique(groups)
        if groups.size == 1:
            g = int(groups[0])
            return self.maps[g] - np.where(self.labels == g, self.top2, self.top1)
        chosen = np.zeros(self.maps.shape[0], bool)
        chosen[groups] = True
        inside = self.maps[chosen].max(axis=0)
        outside = self.maps[~chosen].max(axis=0) if (~chosen).any() else np.zeros_like(inside)
        return inside - outside

    def score(
        self, groups: np.ndarray, mask: np.ndarray, kind: UnitKind, offset: float, removed: np.ndarray | None = None
    ) -> tuple[float, float]:
        """``(predicted_iou, stability_score)`` of ``mask`` made of units of ``groups``; ``removed`` pixels (cut by
        negative prompts) are outside the support."""
        if not mask.any():
            return 0.0, 0.0
        margin = self.margin(groups)
        low = margin > -offset
        if kind == "piece":
            parts, _ = ndimage.label(low | mask, structure=EIGHT_CONNECTED)
            support = np.isin(parts, np.unique(parts[mask]))
        else:
            support = np.ones_like(mask)
        if removed is not None:
            support &= ~removed
        support |= mask
        membership = self.maps[np.unique(groups)].sum(axis=0) * support
        inside = float(membership[mask].sum())
        predicted_iou = inside / (float(mask.sum()) + float(membership.sum()) - inside)
        high = int((mask & (margin > offset)).sum())
        stability = high / max(int((support & (low | mask)).sum()), 1)
        return predicted_iou, stability

    def cut_scores(self, threshold: float, offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The groups whose soft map cut at ``threshold`` (``maps[g] > threshold``) is neither empty nor their argmax
        mask, and the cuts' ``predicted_iou`` (soft IoU with the map) and ``stability_score`` (IoU of the cuts at
        ``threshold ± offset``), as a group's own scores are: ``(groups, predicted_iou, stability_score)``."""
        groups, ious, stabilities = [], [], []
        for group, membership in enumerate(self.maps):  # a group at a time: no [G, h, w] temporaries
            cut = membership > threshold
            size = int(cut.sum())
            if size == 0 or np.array_equal(cut, self.labels == group):
                continue
            held = float(membership[cut].sum())
            high, low = int((membership > threshold + offset).sum()), int((membership > threshold - offset).sum())
            groups.append(group)
            ious.append(held / (size + float(membership.sum()) - held))
            stabilities.append(high / max(low, 1))
        return np.asarray(groups, np.int64), np.asarray(ious), np.asarray(stabilities)

    def piece_scores(self, group: int, offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(piece ids, predicted_iou, stability_score)`` of every piece of ``group`` at once: ``score`` for each
        piece, with one labelling of the low-threshold mask instead of one per piece."""
        ids = np.nonzero(self.piece_group == group)[0]
        inside = self.labels == group
        margin = self.margin(np.array([group]))
        parts, count = ndimage.label((margin > -offset) | inside, structure=EIGHT_CONNECTED)
        membership = self.maps[group]
        pieces = self.pieces[inside]
        size = np.bincount(pieces, minlength=ids.max() + 1)[ids]
        held = np.bincount(pieces, weights=membership[inside], minlength=ids.max() + 1)[ids]
        high = np.bincount(pieces, weights=margin[inside] > offset, minlength=ids.max() + 1)[ids]
        part_of = np.zeros(ids.max() + 1, np.int64)
        part_of[pieces] = parts[inside]  # a piece lies in one part of the low mask
        part_mass = np.bincount(parts.ravel(), weights=membership.ravel(), minlength=count + 1)[part_of[ids]]
        part_size = np.bincount(parts.ravel(), minlength=count + 1)[part_of[ids]]
        return ids, held / (size + part_mass - held), high / np.maximum(part_size, 1)
