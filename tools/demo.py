"""Zero-shot segmentation of your own images with your own class names; writes one overlay PNG per image.

    python tools/demo.py photo.jpg other.png --vocab "cat,dog,grass" --checkpoint CKPT [--out demo_out]

``background`` is added as label 0 (pixels no class claims confidently, threshold ``--bg-thresh``) unless
``--no-background``. Images of any size; grayscale and RGBA are converted to RGB.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import groupseg  # noqa: E402  (first: applies the compat shims)
from groupseg.models.checkpoint import CheckpointError  # noqa: E402
from groupseg.zeroshot import VocabularyError, ZeroShotSegmenter  # noqa: E402
from PIL import Image  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Zero-shot GroupViT segmentation of images: overlays with a legend")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--vocab", required=True, help="'cat,dog,grass', 'person: man, woman; dog', or a file")
    parser.add_argument("--checkpoint", default=os.environ.get("GROUPSEG_CHECKPOINT"),
                        help="GroupViT weights (default: $GROUPSEG_CHECKPOINT)")  # fmt: skip
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--bg-thresh", type=float, default=0.95, help="background threshold (default 0.95)")
    parser.add_argument("--no-background", action="store_true", help="no background label: every pixel gets a class")
    parser.add_argument("--mode", choices=("whole", "slide"), default="whole", help="inference mode (default whole)")
    parser.add_argument("--short-side", type=int, default=448, help="resize the short side to this (default 448)")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not args.checkpoint:
            raise CheckpointError("no checkpoint: pass --checkpoint or set GROUPSEG_CHECKPOINT")
        segmenter = ZeroShotSegmenter(
            args.checkpoint, args.vocab, bg_thresh=args.bg_thresh, background=not args.no_background,
            mode=args.mode, short_side=args.short_side, device=args.device,
        )  # fmt: skip
    except (CheckpointError, VocabularyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    failed = 0
    for path in args.images:
        try:
            result = segmenter(path)
        except ValueError as err:  # unreadable image: say so, go on with the others
            print(f"skipped: {err}", file=sys.stderr)
            failed += 1
            continue
        out = osp.join(args.out, osp.splitext(osp.basename(path))[0] + ".png")
        Image.fromarray(result.overlay()).save(out)
        shown = ", ".join(result.classes[i] for i in sorted(set(result.labels.flat)))
        print(f"{path} -> {out}  ({shown})")
    return 2 if failed == len(args.images) else 0


if __name__ == "__main__":
    sys.exit(main())
