#!/usr/bin/env python
"""Why GroupViT's prompts miss: the first click's masks and the proposals' ceiling, on a COCO instance set.

    python tools/research/diagnose_prompts.py CKPT --images DIR --instances instances.json [--max-images 200]

For every object, the RITM first click (the object's centre; groupseg.metrics.next_click) is given to
GroupPredictor, and the report says:
- the IoU of the mask it ranks first against the best of all its candidates (is the ranking or the unit the limit?);
- for first masks under IoU 0.5: the share of the mask lying on *other* objects (a group holding two objects) and
  the recall / precision against the object;
- the 1-click mIoU by the number of objects in the image;
- an upper bound for proposal recall (each object's best IoU over a set of masks, recall averaged over IoU
  .50:.05:.95, no one-to-one matching; and at IoU 0.5 alone, the ceiling of the labels measure): the generator's
  units (groups and their pieces), plus each group's soft map thresholded at 0.3 / 0.5 / 0.7 / 0.9, plus the unions
  of two groups.
"""
from __future__ import annotations

import argparse
import itertools
import os.path as osp
import sys
from pathlib import Path

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import groupseg  # noqa: E402,F401  (first: applies the compat shims)
import numpy as np  # noqa: E402

IOU_THRESHOLDS = np.arange(0.5, 0.951, 0.05)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def recall_bound(best: list[float]) -> float:
    """Recall averaged over IoU .50:.05:.95 if every object got its best mask (an upper bound for AR)."""
    best = np.asarray(best)
    return float(np.mean([(best >= t).mean() for t in IOU_THRESHOLDS]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--images", required=True)
    parser.add_argument("--instances", required=True)
    parser.add_argument("--max-images", type=int, default=200)
    parser.add_argument("--refine", choices=("pamr", "none"), default="pamr", help="GroupPredictor's (default pamr)")
    args = parser.parse_args(argv)
    from groupseg.metrics import load_coco
    from groupseg.metrics.interactive import next_click
    from groupseg.prompts import GroupPredictor
    from groupseg.zeroshot import load_rgb

    coco = load_coco(args.instances)
    predictor = GroupPredictor(args.checkpoint, refine=args.refine)
    first, best_candidate, on_others, recall, precision, crowd = [], [], [], [], [], []
    proposal_sets = {"units (groups, pieces)": [], "+ soft maps at 0.3/0.5/0.7/0.9": [], "+ unions of two groups": []}
    per_image = {name: [] for name in proposal_sets}
    for image_id in sorted(coco.imgs)[: args.max_images]:
        predictor.set_image(load_rgb(Path(args.images) / coco.imgs[image_id]["file_name"]))
        objects = [coco.annToMask(a).astype(bool) for a in coco.imgToAnns[image_id] if not a.get("iscrowd", 0)]
        if not objects:
            continue
        everything = np.any(objects, axis=0)
        level = predictor.levels[-1]
        groups = np.unique(level.labels)
        units = [level.labels == g for g in groups]
        units += [level.pieces == p for g in groups if (level.piece_group == g).sum() > 1
                  for p in np.nonzero(level.piece_group == g)[0]]  # fmt: skip
        soft = [level.maps[g] > t for g in groups for t in (0.3, 0.5, 0.7, 0.9) if (level.maps[g] > t).any()]
        pairs = [(level.labels == a) | (level.labels == b) for a, b in itertools.combinations(groups, 2)]
        masks_of = dict(zip(proposal_sets, (units, units + soft, units + soft + pairs)))
        for gt in objects:
            _, (y, x) = next_click(gt, np.zeros_like(gt))
            candidates, _ = predictor.predict(np.array([[x + 0.5, y + 0.5]]), np.array([1]))
            ious = [iou(m, gt) for m in candidates]
            first.append(ious[0])
            best_candidate.append(max(ious))
            crowd.append(len(objects))
            if ious[0] < 0.5:
                mask = candidates[0]
                on_others.append((mask & everything & ~gt).sum() / max(mask.sum(), 1))
                recall.append((mask & gt).sum() / gt.sum())
                precision.append((mask & gt).sum() / max(mask.sum(), 1))
            for name, masks in masks_of.items():
                proposal_sets[name].append(max(iou(m, gt) for m in masks) if masks else 0.0)
        for name in proposal_sets:
            per_image[name].append(len(masks_of[name]))
    first, crowd, on_others = np.asarray(first), np.asarray(crowd), np.asarray(on_others)
    print(f"{len(first)} objects in {min(len(coco.imgs), args.max_images)} images")
    print(f"first click: mIoU of the first mask {100 * first.mean():.1f}, of the best candidate "
          f"{100 * np.mean(best_candidate):.1f}")  # fmt: skip
    print(f"first masks under IoU 0.5: {len(on_others)}; of them {int((on_others > 0.3).sum())} lie > 30 % on other "
          f"objects; mean recall {np.mean(recall):.2f}, precision {np.mean(precision):.2f}")  # fmt: skip
    for n in np.unique(crowd):
        print(f"  images with {n} object(s): {int((crowd == n).sum())} objects, 1-click mIoU "
              f"{100 * first[crowd == n].mean():.1f}")  # fmt: skip
    print("proposal recall, upper bound (AR without one-to-one matching):")
    for name, best in proposal_sets.items():
        print(f"  {name:34} {recall_bound(best):.3f}, at IoU 0.5 {np.mean(np.asarray(best) >= 0.5):.3f}  "
              f"({np.mean(per_image[name]):.1f} masks per image)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
