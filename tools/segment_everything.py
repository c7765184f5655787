#!/usr/bin/env python
"""Segment everything: every mask GroupViT's groups propose, each labelled from a vocabulary, in COCO results format.

    python tools/segment_everything.py IMAGES... --checkpoint CKPT [--vocab V] --out results.json [--show-dir DIR]
        [--instances instances.json] [--short-side N] [--bg-thresh T] [--bg-score probability|cosine]
        [--refine pamr|none] [--pred-iou-thresh T] [--stability-score-thresh T] [--min-mask-region-area A]
        [--mask-nms-thresh T]

``results.json`` is a COCO results list, one entry per mask: ``image_id`` (position of the image in IMAGES, from 1;
with --instances, the image's id there), ``file_name``, ``segmentation`` (COCO RLE), ``score`` (= ``predicted_iou``),
``bbox`` XYWH, ``area``, ``category_id`` (with --vocab: 1 + the label's index among the vocabulary's prompted classes,
0 for background, or with --instances the id of the category of that name there, 0 if none; else 1), plus
``predicted_iou``, ``stability_score``, ``point_coords`` and, with --vocab, ``label`` and ``label_score``.
--show-dir writes one overlay per image (``<name>_masks.png``, ``<name>_<image_id>_masks.png`` for a name seen
before): one colour per mask and its label.
Bad input (unreadable image or checkpoint, bad vocabulary or option) exits with code 2 and one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import sys
import time
from pathlib import Path

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import groupseg  # noqa: E402,F401  (first: applies the compat shims)
from PIL import Image  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--checkpoint", required=True, help="GroupViT weights (anything groupseg.load_model reads)")
    parser.add_argument("--vocab", help="label masks with these classes: 'background,cat,dog' or a file")
    parser.add_argument("--out", required=True, help="COCO results JSON to write")
    parser.add_argument("--show-dir", help="write overlays here")
    parser.add_argument("--instances", help="COCO instances JSON the images belong to: image_id (and, with --vocab, "
                        "category_id by class name) from it, so that COCOeval scores --out as it is")
    parser.add_argument("--short-side", type=int, help="resize images to this short side first (default: as is)")
    parser.add_argument("--bg-thresh", type=float, default=0.95, help="background threshold (default 0.95)")
    parser.add_argument("--bg-score", choices=("probability", "cosine"), default="probability",
                        help="what --bg-thresh thresholds (default probability, the official head)")
    parser.add_argument("--refine", choices=("pamr", "none"), default="pamr",
                        help="the soft maps moved onto the image's edges before masks are cut (PAMR, the default)")
    parser.add_argument("--pred-iou-thresh", type=float, default=0.0)
    parser.add_argument("--stability-score-thresh", type=float, default=0.0)
    parser.add_argument("--min-mask-region-area", type=int, default=0)
    parser.add_argument("--mask-nms-thresh", type=float, default=0.7)
    parser.add_argument("--cut-thresholds", type=float, nargs="*", default=[0.3, 0.5, 0.7, 0.9],
                        help="also propose each group's soft map cut at these memberships (default 0.3 0.5 0.7 0.9; "
                             "none given: the groups and their pieces alone)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from groupseg.cli import output_dir, output_file
    from groupseg.models.checkpoint import CheckpointError
    from groupseg.prompts import GroupMaskGenerator
    from groupseg.prompts.overlay import draw_masks
    from groupseg.zeroshot import VocabularyError, load_rgb, parse_vocabulary

    out = Path(args.out)
    try:
        inputs = {Path(p).resolve() for p in args.images}
        if out.resolve() in inputs:
            raise ValueError(f"--out {out} is one of the input images; choose another file")
        output_file(out, "--out")
        show = output_dir(args.show_dir, "--show-dir") if args.show_dir else None
        vocab = parse_vocabulary(args.vocab) if args.vocab is not None else None
        images = [load_rgb(path) for path in args.images]
        image_ids, category_ids = (coco_ids(args.instances, args.images) if args.instances
                                   else (list(range(1, len(images) + 1)), None))  # fmt: skip
        generator = GroupMaskGenerator(
            args.checkpoint, output_mode="coco_rle", short_side=args.short_side, bg_thresh=args.bg_thresh,
            bg_score=args.bg_score, refine=args.refine, pred_iou_thresh=args.pred_iou_thresh,
            stability_score_thresh=args.stability_score_thresh, min_mask_region_area=args.min_mask_region_area,
            mask_nms_thresh=args.mask_nms_thresh, cut_thresholds=args.cut_thresholds,
        )  # fmt: skip
    except (CheckpointError, VocabularyError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    prompted = [n for n in vocab.names if n != "background"] if vocab else []
    results, skipped, shown, start = [], 0, set(), time.perf_counter()
    for image_id, path, rgb in zip(image_ids, args.images, images):
        try:
            records = generator.generate(rgb, vocabulary=vocab)
        except ValueError as err:  # e.g. an image smaller than one patch at --short-side: go on with the others
            print(f"skipped: {path}: {err}", file=sys.stderr)
            skipped += 1
            continue
        for record in records:
            label = record.get("label")
            if vocab is None:
                category = 1
            elif category_ids is not None:
                category = category_ids.get(label.lower(), 0)
            else:
                category = prompted.index(label) + 1 if label in prompted else 0
            results.append(dict(image_id=image_id, file_name=osp.basename(path), category_id=category,
                                score=record["predicted_iou"], **record))  # fmt: skip
        if show:  # a/img.jpg and b/img.jpg: the second overlay must not replace the first
            name = Path(path).stem if Path(path).stem not in shown else f"{Path(path).stem}_{image_id}"
            shown.add(name)
            Image.fromarray(draw_masks(rgb, records)).save(show / f"{name}_masks.png")
    seconds = time.perf_counter() - start
    if skipped == len(images):
        return 2
    out.write_text(json.dumps(results))
    done = len(images) - skipped
    print(f"{len(results)} masks on {done} images in {seconds:.2f} s ({seconds / done:.3f} s/image): {out}"
          + (f"; {skipped} skipped" if skipped else ""))  # fmt: skip
    if show:
        print(f"overlays: {show}")
    return 0


def coco_ids(instances: str, paths: list[str]) -> tuple[list[int], dict[str, int]]:
    """Each image's id in a COCO instances file (its ``file_name`` is the image path's tail: ``val2017/x.jpg`` or
    ``x.jpg``) and the set's category ids by lower-cased name; an image the set does not hold is a ValueError."""
    from groupseg.metrics import load_coco

    coco = load_coco(instances)
    by_name: dict[str, list[dict]] = {}
    for image in coco.dataset["images"]:
        by_name.setdefault(Path(image["file_name"]).name, []).append(image)
    ids = []
    for path in paths:
        parts = Path(path).resolve().parts
        matches = [im["id"] for im in by_name.get(parts[-1], [])
                   if parts[-len(Path(im["file_name"]).parts) :] == Path(im["file_name"]).parts]  # fmt: skip
        if len(matches) != 1:
            what = "holds no image" if not matches else f"holds {len(matches)} images"
            raise ValueError(f"--instances {instances} {what} whose file_name ends {path}'s path")
        ids.append(matches[0])
    return ids, {c["name"].lower(): c["id"] for c in coco.dataset["categories"]}


if __name__ == "__main__":
    sys.exit(main())
