#!/usr/bin/env python
"""Evaluate promptable masks on any COCO-format instance set: proposal recall, clicks, and labels.

    python tools/eval_prompts.py --images DIR --instances instances.json --checkpoint [NAME=]CKPT ...
        [--baseline felzenszwalb|slic|felzenszwalb-single|slic-single ...] [--vocab V] [--short-side N]
        [--bg-thresh T] [--bg-score S] [--refine pamr|none] [--max-images N] [--max-clicks 20] [--json metrics.json]

Methods side by side, each on the same images and objects: every --checkpoint (GroupViT, through
GroupMaskGenerator and GroupPredictor) and every --baseline (scikit-image superpixels as units, RegionPredictor:
three levels of superpixels, or one with the -single variants).

- Proposals: AR@10 / AR@100 / AR@1000, pycocotools COCOeval "segm" with params.useCats = 0 (class-agnostic),
  score = predicted_iou.
- Clicks: the RITM protocol on every object (next click at the maximum of the distance transform of the larger
  error region; at most --max-clicks), the predictor's best mask after each click: 1-click mIoU, NoC@85, NoC@90.
- Labels (with --vocab, GroupViT only): an object's label is right when the proposal overlapping it most (IoU ≥ 0.5)
  carries its category's name; the share of objects so labelled. Give a vocabulary whose names are the set's
  category names (e.g. the synthetic world's colours.txt with instances_colours.json).
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import groupseg  # noqa: E402,F401  (first: applies the compat shims)
import numpy as np  # noqa: E402

if TYPE_CHECKING:  # imported where used, after the arguments are parsed: --help answers without loading torch
    from groupseg.prompts import GroupMaskGenerator

BASELINES = ("felzenszwalb", "slic", "felzenszwalb-single", "slic-single")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True,
                        help="folder holding the instance set's file_name's (LVIS, whose images have a coco_url "
                             "only: the folder holding train2017/ and val2017/)")  # fmt: skip
    parser.add_argument("--instances", required=True, help="COCO instances JSON")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="[NAME=]CKPT",
                        help="GroupViT weights to evaluate (repeat for several)")
    parser.add_argument("--baseline", action="append", default=[], choices=BASELINES,
                        help="classical superpixel baseline (repeat for several): three levels of superpixels, or "
                             "one with -single")  # fmt: skip
    parser.add_argument("--vocab", help="label proposals with these classes and score label accuracy")
    parser.add_argument("--short-side", type=int, help="resize images to this short side first (default: as is)")
    parser.add_argument("--bg-thresh", type=float, default=0.95, help="background threshold (default 0.95)")
    parser.add_argument("--bg-score", choices=("probability", "cosine"), default="probability")
    parser.add_argument("--refine", choices=("pamr", "none"), default="pamr",
                        help="GroupViT's soft maps moved onto the image's edges first (PAMR, the default) or not")
    parser.add_argument("--max-images", type=int, help="evaluate the first N images only")
    parser.add_argument("--max-clicks", type=int, default=20)
    parser.add_argument("--json", help="write the metrics here")
    return parser.parse_args(argv)


def evaluate(name: str, generator: GroupMaskGenerator, coco, image_ids: list[int], images_dir: Path, vocab,
             max_clicks: int) -> dict[str, float]:  # fmt: skip
    """All metrics of one method."""
    from groupseg.metrics import click_summary, proposal_recall, run_clicks
    from groupseg.zeroshot import load_rgb
    from PIL import Image
    from pycocotools import mask as mask_utils

    predictor = generator.predictor
    results, runs, labelled, objects = [], [], 0, 0
    seconds_generate = 0.0
    categories = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    for image_id in image_ids:
        info = coco.imgs[image_id]
        rgb = load_rgb(images_dir / info["file_name"])
        if rgb.shape[:2] != (info["height"], info["width"]):  # annotated on the stored pixels (see image_frames)
            with Image.open(images_dir / info["file_name"]) as stored:
                rgb = load_rgb(stored)
        start = time.perf_counter()
        records = generator.generate(rgb, vocabulary=vocab)
        seconds_generate += time.perf_counter() - start
        for r in records:
            results.append(dict(image_id=image_id, category_id=1, segmentation=r["segmentation"],
                                score=r["predicted_iou"]))  # fmt: skip
        proposals = [r["segmentation"] for r in records]
        for ann in coco.imgToAnns[image_id]:
            if ann.get("iscrowd", 0):  # a crowd region is no object to click on or to label (COCOeval ignores it)
                continue
            gt = coco.annToMask(ann).astype(bool)
            if not gt.any():  # a polygon too thin to cover a pixel: nothing to click on (was a PromptError)
                continue
            objects += 1
            if vocab is not None and proposals:
                ious = np.asarray(mask_utils.iou(proposals, [coco.annToRLE(ann)], [0])).reshape(-1)
                best = int(np.argmax(ious))
                label = records[best]["label"].lower()  # the vocabulary keeps the case it was given
                labelled += int(ious[best] >= 0.5 and label == categories[ann["category_id"]].lower())
            runs.append(run_clicks(gt, lambda points, labels: predictor.predict(points + 0.5, labels)[0][0],
                                   max_clicks=max_clicks))  # fmt: skip
    if not runs:  # every object a polygon too thin to cover a pixel
        raise ValueError(f"no object of the {len(image_ids)} images evaluated covers a pixel: nothing to click on")
    metrics = {"method": name, **proposal_recall(coco, results, image_ids=image_ids),
               **click_summary(runs, max_clicks=max_clicks)}
    if vocab is not None:
        metrics["labels_right_%"] = 100 * labelled / max(objects, 1)
    metrics.update(objects=objects, images=len(image_ids), proposals_per_image=len(results) / len(image_ids),
                   generate_s_per_image=seconds_generate / len(image_ids))  # fmt: skip
    return metrics


def check_image_sizes(coco, image_ids: list[int], images_dir: Path) -> None:
    """Each image's size is its entry's ``height`` × ``width``, upright (EXIF orientation applied, as detectron2 and
    mmdet read) or as stored (a set annotated on the stored pixels); else a ValueError naming it, before the run
    (was a traceback in the click loop). An entry without a size takes the file's."""
    from PIL import Image

    for image_id in image_ids:
        info = coco.imgs[image_id]
        try:
            with Image.open(images_dir / info["file_name"]) as image:
                stored = image.size[::-1]
                upright = stored[::-1] if image.getexif().get(0x0112, 1) in (5, 6, 7, 8) else stored
        except OSError as err:  # not an image
            raise ValueError(f"cannot read image {images_dir / info['file_name']}: {err}") from err
        if "height" not in info or "width" not in info:
            info["height"], info["width"] = upright
        if (info["height"], info["width"]) not in (upright, stored):
            raise ValueError(f"{info['file_name']} is {upright[1]}×{upright[0]} px but its instances entry says "
                             f"{info['width']}×{info['height']}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from groupseg.cli import output_file
    from groupseg.metrics import load_coco
    from groupseg.models.checkpoint import CheckpointError
    from groupseg.prompts import GroupMaskGenerator, GroupPredictor, RegionPredictor
    from groupseg.zeroshot import VocabularyError, parse_vocabulary

    images_dir = Path(args.images)
    try:
        if not args.checkpoint and not args.baseline:
            raise ValueError("nothing to evaluate: give --checkpoint and/or --baseline")
        if args.max_clicks < 1:
            raise ValueError(f"--max-clicks must be >= 1, got {args.max_clicks}")
        if args.max_images is not None and args.max_images < 1:  # 0 used to mean every image, silently
            raise ValueError(f"--max-images must be >= 1, got {args.max_images}")
        if args.json:
            output_file(args.json, "--json")
        coco = load_coco(args.instances)
        image_ids = sorted(coco.imgs)[: args.max_images]
        if not image_ids:
            raise ValueError(f"{args.instances} has no images")
        files = [coco.imgs[i]["file_name"] for i in image_ids]
        missing = [name for name in files if not (images_dir / name).is_file()]
        if missing:
            raise ValueError(f"{len(missing)} images of {args.instances} are not in {images_dir}, e.g. {missing[0]}")
        check_image_sizes(coco, image_ids, images_dir)
        objects = sum(not a.get("iscrowd", 0) for i in image_ids for a in coco.imgToAnns[i])
        if not objects:  # the click metrics need one (was: a traceback after generating every proposal)
            raise ValueError(f"the {len(image_ids)} images evaluated hold no objects (annotations not iscrowd)")
        vocab = parse_vocabulary(args.vocab) if args.vocab is not None else None
        if vocab is not None:
            known = {n.lower() for n in vocab.names}
            present = {a["category_id"] for i in image_ids for a in coco.imgToAnns[i] if not a.get("iscrowd", 0)}
            absent = sorted({coco.cats[c]["name"] for c in present if coco.cats[c]["name"].lower() not in known})
            if absent:  # the label accuracy compares names: say so before a silent 0
                print(f"warning: {len(absent)} categories are not in --vocab, so their objects are never labelled "
                      f"right: {', '.join(absent[:5])}{', ...' if len(absent) > 5 else ''}", file=sys.stderr)
        methods = []
        for spec in args.checkpoint:
            name, eq, path = spec.partition("=")
            name, path = (name, path) if eq else (Path(spec).name, spec)
            predictor = GroupPredictor(path, short_side=args.short_side, bg_thresh=args.bg_thresh,
                                       bg_score=args.bg_score, refine=args.refine)  # fmt: skip
            methods.append((name, GroupMaskGenerator(predictor, output_mode="coco_rle"), vocab))
        for method in args.baseline:
            regions = RegionPredictor(method.split("-")[0], levels=[{}] if method.endswith("-single") else None)
            methods.append((method, GroupMaskGenerator(regions, output_mode="coco_rle"), None))
    except (CheckpointError, VocabularyError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    columns = ["AR@10", "AR@100", "AR@1000", "mIoU@1", "NoC@85", "NoC@90", "labels_right_%", "proposals_per_image",
               "generate_s_per_image"]  # fmt: skip
    heads = ["AR@10", "AR@100", "AR@1000", "mIoU@1", "NoC@85", "NoC@90", "labels %", "props/img", "gen s/img"]
    print(f"{len(image_ids)} images, {objects} objects ({args.instances})")
    print(f"{'method':24}" + "".join(f"{h:>12}" for h in heads), flush=True)
    table = []
    for name, generator, method_vocab in methods:  # each row as soon as it is measured
        try:
            row = evaluate(name, generator, coco, image_ids, images_dir, method_vocab, args.max_clicks)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{row['method']:24}" + "".join(f"{row[c]:>12.3f}" if c in row else f"{'-':>12}" for c in columns),
              flush=True)  # fmt: skip
        table.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
