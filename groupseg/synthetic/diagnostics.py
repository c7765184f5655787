"""Why a zero-shot segmentation is wrong: the groups, the recognition of a group, or the background decision.

The zero-shot mIoU mixes three things. These measures separate them on a labelled set:

- *oracle mIoU*: every group labelled with the majority ground-truth label of its pixels — what the grouping alone
  allows (for the final groups and for the first stage's);
- *largest-group share*: the fraction of an image's pixels in its most used group (near 1: the grouping collapsed);
- *group recognition*: for groups that are nearly pure foreground of one class, how often the group embedding's best
  class is that class; *image recognition*: the same for the image embedding of images with one foreground class;
- zero-shot mIoU with the oracle's background decisions (the head's classes elsewhere), and with the head's
  background decisions but the oracle's classes.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..zeroshot.head import pixel_groups

IGNORE_INDEX = 255


def dataset_miou(preds: np.ndarray, gts: np.ndarray, num_classes: int) -> tuple[float, np.ndarray]:
    """mIoU in percent over a whole set, as mmseg's ``IoUMetric``: per-class IoU over summed areas, absent classes
    (no union) left out of the mean. Returns the mean and the per-class IoUs (NaN where absent)."""
    valid = gts != IGNORE_INDEX
    pred, gt = preds[valid].astype(np.int64), gts[valid].astype(np.int64)
    inter = np.bincount(gt[pred == gt], minlength=num_classes)[:num_classes]
    union = np.bincount(pred, minlength=num_classes)[:num_classes] + np.bincount(gt, minlength=num_classes) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, np.nan)
    return float(100 * np.nanmean(iou)), 100 * iou


def _groups_with_label_counts(groups: np.ndarray, gts: np.ndarray, num_classes: int):
    """Yield ``(image, group, mask, counts)``: every group of every image with the counts of its true labels."""
    for b in range(len(gts)):
        for g in np.unique(groups[b]):
            mask = groups[b] == g
            labels = gts[b][mask]
            yield b, g, mask, np.bincount(labels[labels != IGNORE_INDEX], minlength=num_classes)[:num_classes]


def oracle_labels(groups: np.ndarray, gts: np.ndarray, num_classes: int) -> np.ndarray:
    """Each group of each image (``[B, H, W]`` group ids) labelled with the majority ground-truth label of its
    pixels."""
    out = np.zeros_like(gts)
    for b, _, mask, counts in _groups_with_label_counts(groups, gts, num_classes):
        out[b][mask] = counts.argmax()  # 0 (background) for a group of ignored pixels only
    return out


def largest_group_share(groups: np.ndarray) -> float:
    """Mean over images of the fraction of pixels in the image's most used group."""
    return float(np.mean([np.bincount(g.ravel()).max() / g.size for g in groups]))


def group_recognition(
    groups: np.ndarray,
    gts: np.ndarray,
    group_best: np.ndarray,
    num_classes: int,
    purity: float = 0.8,
    min_pixels: int = 8,
) -> tuple[float, int]:
    """Accuracy of each group's best class (``group_best[b, g]``, label ids) on groups that are at least ``purity``
    one foreground class; returns (accuracy, number of such groups)."""
    hits = total = 0
    for b, g, _, counts in _groups_with_label_counts(groups, gts, num_classes):
        major = counts.argmax()
        if counts.sum() >= min_pixels and major != 0 and counts[major] >= purity * counts.sum():
            total += 1
            hits += int(group_best[b, g] == major)
    return (hits / total if total else float("nan")), total


@torch.no_grad()
def diagnose(segmentor, images: torch.Tensor, gts: np.ndarray, batch_size: int = 100) -> dict[str, Any]:
    """All the measures above for a ``GroupViTSegmentor`` (vocabulary with background first) on normalised
    ``images [N, 3, H, W]`` and label maps ``gts [N, H, W]`` at the same size."""
    num_classes = segmentor.num_classes
    preds, best_class, final, first, group_best, image_best = [], [], [], [], [], []
    for batch in images.split(batch_size):
        out = segmentor.forward_image(batch)
        soft = [a.soft for a in out.vision.assignments]
        logits = segmentor.decode(out, batch.shape[2:])
        preds.append(logits.argmax(1).numpy())
        best_class.append(logits[:, 1:].argmax(1).numpy() + 1)
        final.append(pixel_groups(soft, out.vision.grid, batch.shape[2:]).numpy())
        first.append(pixel_groups(soft[:1], out.vision.grid, batch.shape[2:]).numpy())
        class_embeds = segmentor.class_embeds.to(out.group_embeds.dtype)
        group_best.append((out.group_embeds @ class_embeds.T).argmax(-1).numpy() + 1)
        image_best.append((out.image_embeds @ class_embeds.T).argmax(-1).numpy() + 1)
    preds, best_class, final, first = map(np.concatenate, (preds, best_class, final, first))
    group_best, image_best = np.concatenate(group_best), np.concatenate(image_best)
    oracle = oracle_labels(final, gts, num_classes)
    single = [(b, fg[0]) for b in range(len(gts)) if len(fg := sorted(set(np.unique(gts[b])) - {0, IGNORE_INDEX})) == 1]
    recognition, pure_groups = group_recognition(final, gts, group_best, num_classes)

    def miou(p: np.ndarray) -> float:
        return round(dataset_miou(p, gts, num_classes)[0], 1)

    return {
        "zero_shot_miou": miou(preds),
        "oracle_miou": miou(oracle),
        "oracle_miou_first_stage": miou(oracle_labels(first, gts, num_classes)),
        "largest_group_share": round(largest_group_share(final), 3),
        "largest_group_share_first_stage": round(largest_group_share(first), 3),
        "group_recognition": round(recognition, 3),
        "pure_foreground_groups": pure_groups,
        "image_recognition_single_object": round(float(np.mean([image_best[b] == c for b, c in single])), 3)
        if single
        else float("nan"),
        "chance": round(1 / (num_classes - 1), 3),
        "zero_shot_miou_oracle_background": miou(np.where(oracle == 0, 0, np.where(preds == 0, best_class, preds))),
        "zero_shot_miou_oracle_classes": miou(np.where(preds == 0, 0, oracle)),
    }
