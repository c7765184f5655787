#!/usr/bin/env python
"""In-context segmentation (SegGPT style): segment target images like the example (image, mask) pairs; no text.

    python tools/incontext.py --prompt-image A.jpg --prompt-mask A.png [--prompt-image B.jpg --prompt-mask B.png ...]
        TARGET... --checkpoint CKPT --out DIR [--bg-thresh T] [--short-side N] [--show-dir DIR]

Every id of a prompt mask (a label PNG, palette or grayscale; 0 is background, as are transparent pixels) becomes
one class, defined by the prompt pairs whose mask holds it (several pairs of one id are averaged: an ensemble). Each
target gets a label PNG ``DIR/<target name>.png`` whose values are the prompt masks' ids (0 where no class fits: a
segment whose cosine similarity to every class is below ``--bg-thresh``), in the first prompt mask's palette. 255 is
read as VOC's "ignore" when a mask holds other ids too; a mask holding only 255 (a 0/255 binary mask) is one class,
id 255.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import groupseg  # noqa: E402,F401  (first: applies the compat shims)
from groupseg.synthetic.world import VOC_PALETTE  # noqa: E402

if TYPE_CHECKING:  # imported where used, after the arguments are parsed: --help answers without loading torch
    from groupseg.prompts.exemplars import Exemplar

DEFAULT_BG_THRESH = 0.5  # cosine; as tools/eval_fewshot.py, chosen on the dev split (docs/exemplars.md)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="+", help="images to segment")
    parser.add_argument("--prompt-image", action="append", default=[], help="example image (repeat for more pairs)")
    parser.add_argument("--prompt-mask", action="append", default=[],
                        help="its label PNG, one id per class (repeat, in the order of --prompt-image)")  # fmt: skip
    parser.add_argument("--checkpoint", default=os.environ.get("GROUPSEG_CHECKPOINT"),
                        help="GroupViT weights (default: $GROUPSEG_CHECKPOINT)")  # fmt: skip
    parser.add_argument("--out", required=True, help="folder for the label PNGs")
    parser.add_argument("--show-dir", help="also write overlays (target, tinted labels, legend) here")
    parser.add_argument("--bg-thresh", type=float, default=DEFAULT_BG_THRESH,
                        help=f"background below this cosine similarity (default {DEFAULT_BG_THRESH})")  # fmt: skip
    parser.add_argument("--short-side", type=int,
                        help="resize targets and prompts to this short side (default: their own size)")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def prompt_classes(images: list[str], masks: list[str]) -> tuple[list[int], list[Exemplar], list[int] | None]:
    """The ids of the prompt masks, one exemplar per (pair, id), and the first mask's palette (if it has one)."""
    from groupseg.prompts.exemplars import Exemplar, mask_ids, read_mask

    if not images and not masks:
        raise ValueError("give at least one example: --prompt-image IMAGE --prompt-mask MASK")
    if len(images) != len(masks):
        raise ValueError(f"{len(images)} --prompt-image but {len(masks)} --prompt-mask: give them in pairs")
    exemplars, ids = [], set()
    for image, mask in zip(images, masks):
        labels = read_mask(mask, f"prompt mask {mask}")
        present = mask_ids(labels)  # VOC's "ignore" boundary (255) beside real ids left out
        if not present:
            raise ValueError(f"prompt mask {mask} has no labelled pixels (all 0)")
        exemplars += [Exemplar(f"id {i}", image, mask, i) for i in present]
        ids.update(present)
    exemplars.sort(key=lambda e: e.mask_id)  # labels in id order (the segmenter numbers classes by first appearance)
    with Image.open(masks[0]) as first:
        palette = first.getpalette() if first.mode == "P" else None
    return sorted(ids), exemplars, palette


def check_outputs(targets: list[str], out: Path, inputs: list[str]) -> None:
    """Fail before any work if two targets share a name or an output would overwrite an input."""
    stems = [Path(t).stem for t in targets]
    repeated = sorted({s for s in stems if stems.count(s) > 1})
    if repeated:
        raise ValueError(f"targets share the name {repeated[0]!r}: their outputs would overwrite each other")
    protected = {Path(p).resolve() for p in [*targets, *inputs]}
    for stem in stems:
        if (out / f"{stem}.png").resolve() in protected:
            raise ValueError(f"{out / f'{stem}.png'} is an input: choose another --out")


def save_labels(path: Path, labels: np.ndarray, palette: list[int] | None) -> None:
    if labels.max(initial=0) > 255:
        Image.fromarray(labels.astype(np.uint16)).save(path)  # 16-bit grayscale: ids above 255
        return
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(palette or VOC_PALETTE)
    image.save(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from groupseg.cli import output_dir
    from groupseg.models.checkpoint import CheckpointError
    from groupseg.prompts.exemplars import ExemplarError
    from groupseg.zeroshot import VocabularyError, ZeroShotSegmenter

    out = Path(args.out)
    try:
        if not args.checkpoint:
            raise CheckpointError("no checkpoint: pass --checkpoint or set GROUPSEG_CHECKPOINT")
        ids, exemplars, palette = prompt_classes(args.prompt_image, args.prompt_mask)
        check_outputs(args.targets, out, [*args.prompt_image, *args.prompt_mask])
        segmenter = ZeroShotSegmenter(args.checkpoint, exemplars, bg_thresh=args.bg_thresh, bg_score="cosine",
                                      short_side=args.short_side, device=args.device)  # fmt: skip
        output_dir(out, "--out")
        if args.show_dir:
            output_dir(args.show_dir, "--show-dir")
    except (CheckpointError, ExemplarError, VocabularyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    to_id = np.array([0, *ids])  # label i of the segmenter (0 background, then the classes in id order) → prompt id
    failed = 0
    for target in args.targets:
        try:
            result = segmenter(target)
        except ValueError as err:  # unreadable image: say so, go on with the others
            print(f"skipped: {err}", file=sys.stderr)
            failed += 1
            continue
        path = out / f"{Path(target).stem}.png"
        save_labels(path, to_id[result.labels], palette)
        if args.show_dir:
            Image.fromarray(result.overlay()).save(Path(args.show_dir) / f"{Path(target).stem}.png")
        shown = ", ".join(str(i) for i in sorted(set(to_id[result.labels].flat)))
        print(f"{target} -> {path}  (ids {shown})")
    return 2 if failed == len(args.targets) else 0


if __name__ == "__main__":
    sys.exit(main())
