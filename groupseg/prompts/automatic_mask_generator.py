"""``GroupMaskGenerator``: "segment everything" from GroupViT's groups, each mask labelled from a vocabulary.

    generator = GroupMaskGenerator(model)
    records = generator.generate(image, vocabulary=["cat", "dog", "grass"])
    # [{"segmentation", "area", "bbox", "predicted_iou", "stability_score", "point_coords", "crop_box",
    #   "label", "label_score"}, ...]  best first

SAM prompts a grid of points and keeps the good masks; GroupViT has already grouped the image, so its proposals are
the groups themselves: every group of every grouping stage, each connected piece of a group that has several, and
each group's soft map cut at a few memberships (``cut_thresholds``: where a group's edge is uncertain, a looser or a
tighter cut than the argmax often fits the object better, as SAM's several masks per prompt do). They are scored
from the soft assignment maps (:mod:`groupseg.prompts.units`: ``predicted_iou`` = soft IoU of the mask with the
group's soft map, ``stability_score`` = IoU of the masks at margin (or membership) ±``stability_score_offset``),
filtered by SAM's thresholds, cleaned of small holes and islands (``min_mask_region_area``, SAM's rule), and
de-duplicated by mask NMS (``mask_nms_thresh``) and, if asked, SAM's box NMS (``box_nms_thresh``).

With a vocabulary each mask takes the zero-shot head's label: "background" if the head calls most of its pixels
background (a vocabulary starting with "background"), else the class with the highest mean score over the mask;
``label_score`` is that mean score.
"""
from __future__ import annotations

import os
from typing import Any, Literal, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils
from scipy import ndimage
from torchvision.ops import nms

from ..models import GroupViT
from ..zeroshot.single_image import ImageLike
from ..zeroshot.vocabulary import Vocabulary, VocabularySpec, parse_vocabulary
from .predictor import DEFAULT_STABILITY_OFFSET, GroupPredictor
from .refine import Refine
from .units import EIGHT_CONNECTED

OUTPUT_MODES = ("binary_mask", "coco_rle")
CUT_THRESHOLDS = (0.3, 0.5, 0.7, 0.9)


class GroupMaskGenerator:
    """Mask proposals for a whole image.

    Args:
        model: a :class:`GroupViT`, a checkpoint path, or a :class:`GroupPredictor` (e.g. the classical
            :class:`~groupseg.prompts.regions.RegionPredictor`) whose units become the proposals.
        pred_iou_thresh, stability_score_thresh: keep masks scoring at least this (SAM's meaning; 0 keeps all).
        stability_score_offset: how far the cutoff moves for the stability score, in margin units (probabilities).
        cut_thresholds: also propose each group's soft map cut at these memberships (``maps[g] > t``); ``()``: the
            groups and their pieces alone. The default was chosen on the synthetic world's dev split
            (docs/prompts.md).
        mask_nms_thresh: drop a mask whose mask IoU with a better one exceeds this.
        box_nms_thresh: SAM's box NMS on top (1.0: off, the default: nested groups often share a box).
        min_mask_region_area: fill holes and drop islands smaller than this many pixels (0: off).
        max_proposals: score every unit, but clean and de-duplicate only the best this many (a random or badly
            trained model fragments its groups into thousands of pieces; 1000 is the largest k of AR@k).
        output_mode: ``"binary_mask"`` (bool arrays) or ``"coco_rle"`` (pycocotools RLE, JSON-ready).
        short_side, bg_thresh, bg_score, refine, device: as :class:`GroupPredictor`.
    """

    def __init__(
        self,
        model: GroupViT | str | os.PathLike | GroupPredictor,
        *,
        pred_iou_thresh: float = 0.0,
        stability_score_thresh: float = 0.0,
        stability_score_offset: float = DEFAULT_STABILITY_OFFSET,
        cut_thresholds: Sequence[float] = CUT_THRESHOLDS,
        mask_nms_thresh: float = 0.7,
        box_nms_thresh: float = 1.0,
        min_mask_region_area: int = 0,
        max_proposals: int = 1000,
        output_mode: Literal["binary_mask", "coco_rle"] = "binary_mask",
        short_side: int | None = None,
        bg_thresh: float = 0.95,
        bg_score: Literal["probability", "cosine"] = "probability",
        refine: Refine = "pamr",
        device: str | torch.device | None = None,
    ):
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
        for name, value in (("mask_nms_thresh", mask_nms_thresh), ("box_nms_thresh", box_nms_thresh),
                            ("pred_iou_thresh", pred_iou_thresh), ("stability_score_thresh", stability_score_thresh)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} is an IoU in [0, 1], got {value}")
        if min_mask_region_area < 0:
            raise ValueError(f"min_mask_region_area is a number of pixels >= 0, got {min_mask_region_area}")
        if max_proposals < 1:
            raise ValueError(f"max_proposals must be >= 1, got {max_proposals}")
        if stability_score_offset <= 0:
            raise ValueError(f"stability_score_offset must be > 0, got {stability_score_offset}")
        if any(not 0 < t < 1 for t in cut_thresholds):
            raise ValueError(f"cut_thresholds are memberships in (0, 1), got {list(cut_thresholds)}")
        if isinstance(model, GroupPredictor):
            self.predictor = model
        else:
            self.predictor = GroupPredictor(model, short_side=short_side, bg_thresh=bg_thresh, bg_score=bg_score,
                                            refine=refine, device=device)  # fmt: skip
        self.pred_iou_thresh, self.stability_score_thresh = pred_iou_thresh, stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.mask_nms_thresh, self.box_nms_thresh = mask_nms_thresh, box_nms_thresh
        self.min_mask_region_area, self.output_mode = min_mask_region_area, output_mode
        self.max_proposals = max_proposals
        self.cut_thresholds = tuple(float(t) for t in cut_thresholds)

    @torch.no_grad()
    def generate(self, image: ImageLike, vocabulary: VocabularySpec | None = None) -> list[dict[str, Any]]:
        """Mask records for ``image`` (path, PIL or HWC uint8 RGB), best ``predicted_iou`` first."""
        vocab = parse_vocabulary(vocabulary) if vocabulary is not None else None
        self.predictor.set_image(image)
        proposals = self._proposals()
        rles, shown = [], []  # masks are kept as RLE only: a thousand full-size masks of a large image would not fit
        for proposal in proposals:
            _, _, stage, kind, unit = proposal
            mask = self.predictor.to_original(self._mask(stage, kind, unit))
            if self.min_mask_region_area > 0:
                mask = _remove_small_regions(mask, self.min_mask_region_area)
            if mask.any():  # a unit narrower than an original pixel vanishes when short_side upsamples the image
                rles.append(_encode(mask))
                shown.append(proposal)
        proposals = shown
        ious = [p[0] for p in proposals]
        keep = _mask_nms(rles, ious, self.mask_nms_thresh)
        if self.box_nms_thresh < 1.0 and keep:
            boxes = torch.tensor(np.array([mask_utils.toBbox(rles[i]) for i in keep]), dtype=torch.float32)
            boxes[:, 2:] += boxes[:, :2]
            keep = [keep[i] for i in nms(boxes, torch.tensor([ious[i] for i in keep]), self.box_nms_thresh).tolist()]
        keep.sort(key=lambda i: -ious[i])
        scores = self.predictor.to_original(self.predictor.class_scores(vocab)) if vocab is not None else None
        height, width = self.predictor.original_size
        records = []
        for i in keep:
            mask = _decode(rles[i])
            iou, stability, stage, kind, _ = proposals[i]
            record = dict(
                segmentation=mask if self.output_mode == "binary_mask" else rles[i],
                area=int(mask_utils.area(rles[i])), bbox=[float(v) for v in mask_utils.toBbox(rles[i])],
                predicted_iou=float(iou), point_coords=[_inner_point(mask)], stability_score=float(stability),
                crop_box=[0, 0, width, height], stage=stage, unit=kind,
            )  # fmt: skip
            if vocab is not None:
                record.update(label_mask(vocab, scores, mask))
            records.append(record)
        return records

    def _mask(self, stage: int, kind: str, unit: int) -> np.ndarray:
        """The mask of a proposal at the working size: a unit, or a group's cut (kind ``"group>T"``)."""
        level = self.predictor.levels[stage]
        if kind.startswith("group>"):
            return level.maps[unit] > float(kind[len("group>"):])
        return level.units(kind) == unit

    def _proposals(self) -> list[tuple[float, float, int, str, int]]:
        """``(predicted_iou, stability_score, stage, kind, unit id)`` of every group of every stage, every piece of a
        group with several and every non-empty cut of a group, filtered by the thresholds, best first, at most
        ``max_proposals``."""
        proposals = []
        for stage, level in enumerate(self.predictor.levels):
            for group in np.unique(level.labels).tolist():
                iou, stability = level.score(np.array([group]), level.labels == group, "group",
                                             self.stability_score_offset)  # fmt: skip
                proposals.append((iou, stability, stage, "group", group))
                if (level.piece_group == group).sum() > 1:
                    ids, ious, stabilities = level.piece_scores(group, self.stability_score_offset)
                    proposals += [(float(i), float(s), stage, "piece", int(p))
                                  for p, i, s in zip(ids, ious, stabilities)]  # fmt: skip
            for threshold in self.cut_thresholds:
                groups, ious, stabilities = level.cut_scores(threshold, self.stability_score_offset)
                proposals += [(float(i), float(s), stage, f"group>{threshold!r}", int(g))  # repr: read back exactly
                              for g, i, s in zip(groups, ious, stabilities)]  # fmt: skip
        proposals = [p for p in proposals if p[0] >= self.pred_iou_thresh and p[1] >= self.stability_score_thresh]
        proposals.sort(key=lambda p: -p[0])
        return proposals[: self.max_proposals]


def _encode(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _decode(rle: dict) -> np.ndarray:
    return mask_utils.decode(dict(rle, counts=rle["counts"].encode("ascii"))).astype(bool)


def _mask_nms(rles: list[dict], scores: list[float], thresh: float) -> list[int]:
    """Greedy NMS by mask IoU (pycocotools on RLEs), best score first."""
    order = sorted(range(len(rles)), key=lambda i: -scores[i])
    if not order:
        return []
    ious = np.asarray(mask_utils.iou([rles[i] for i in order], [rles[i] for i in order], [0] * len(order)))
    ious = ious.reshape(len(order), len(order))
    suppressed = np.zeros(len(order), bool)
    kept: list[int] = []
    for a in range(len(order)):
        if not suppressed[a]:
            kept.append(order[a])
            suppressed |= ious[a] > thresh
    return kept


def _remove_small_regions(mask: np.ndarray, min_area: int) -> np.ndarray:
    """SAM's ``remove_small_regions``: fill holes, then drop islands, smaller than ``min_area`` (keep the largest
    island if all are small)."""
    holes, n = ndimage.label(~mask, structure=EIGHT_CONNECTED)
    sizes = np.bincount(holes.ravel(), minlength=n + 1)
    mask = mask | np.isin(holes, np.nonzero((sizes < min_area) & (np.arange(n + 1) > 0))[0])
    islands, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
    if n == 0:
        return mask
    sizes = np.bincount(islands.ravel(), minlength=n + 1)[1:]
    big = np.nonzero(sizes >= min_area)[0] + 1
    return np.isin(islands, big if big.size else [int(np.argmax(sizes)) + 1])


def _inner_point(mask: np.ndarray) -> list[float]:
    """(x, y) of the pixel deepest inside the mask, a point prompt that selects it again."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        return [0.0, 0.0]
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # the distance transform of the box only
    depth = ndimage.distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return [float(cols[0] + x) + 0.5, float(rows[0] + y) + 0.5]


def label_mask(vocab: Vocabulary, scores: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """``{"label", "label_score"}`` of a mask from the head's per-pixel scores ``[L, H, W]``: background if most of
    its pixels are background, else the class with the highest mean score over the mask."""
    means = scores[:, mask].mean(axis=1) if mask.any() else np.zeros(len(scores))
    if vocab.with_background and means[0] > 0.5:
        return dict(label=vocab.names[0], label_score=float(means[0]))
    start = 1 if vocab.with_background else 0
    best = start + int(np.argmax(means[start:]))
    return dict(label=vocab.names[best], label_score=float(means[best]))
