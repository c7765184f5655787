"""Zero-shot segmentation of your own images with your own class names; writes one overlay PNG per image.

    python tools/demo.py photo.jpg other.png --vocab "cat,dog,grass" --checkpoint CKPT [--out demo_out]

``background`` is added as label 0 (pixels no class claims confidently, threshold ``--bg-thresh``) unless
``--no-background``. Images of any size; grayscale, RGBA and 16-bit are converted to 8-bit RGB.

Overlays are named like their image (``photo.jpg`` → ``OUT/photo.png``); where that name is an input, another
image's overlay, or a file this tool did not write, ``photo_overlay.png`` (``_overlay_2`` ...) instead: inputs and
unrelated files are never overwritten. The printed ``image -> overlay`` lines say which is which.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import groupseg  # noqa: E402,F401  (first: applies the compat shims)
from PIL import Image, PngImagePlugin  # noqa: E402

OVERLAY_TAG = ("Software", "groupseg tools/demo.py overlay")  # a PNG text chunk: marks files this tool may replace


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Zero-shot GroupViT segmentation of images: overlays with a legend")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--vocab", required=True, help="'cat,dog,grass', 'person: man, woman; dog', or a file")
    parser.add_argument("--checkpoint", default=os.environ.get("GROUPSEG_CHECKPOINT"),
                        help="GroupViT weights (default: $GROUPSEG_CHECKPOINT)")  # fmt: skip
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--bg-thresh", type=unit_interval,
                        help="background threshold in [0, 1] (default 0.95)")  # fmt: skip
    parser.add_argument("--no-background", action="store_true", help="no background label: every pixel gets a class")
    parser.add_argument("--mode", choices=("whole", "slide"), default="whole", help="inference mode (default whole)")
    parser.add_argument("--short-side", type=int, default=448, help="resize the short side to this (default 448)")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def unit_interval(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}")
    return value


def overlay_paths(images: list[str], out_dir: str) -> list[str]:
    """One output path per image, distinct, never an input and never a file this tool did not write."""
    inputs = {osp.realpath(p) for p in images}
    taken: set[str] = set()
    paths = []
    for image in images:
        stem = osp.splitext(osp.basename(image))[0]
        for n in range(1, 10_000):
            name = f"{stem}.png" if n == 1 else f"{stem}_overlay.png" if n == 2 else f"{stem}_overlay_{n - 1}.png"
            path = osp.join(out_dir, name)
            real = osp.realpath(path)
            if real not in inputs and real not in taken and (not osp.lexists(path) or _is_our_overlay(path)):
                break
        taken.add(real)
        paths.append(path)
    return paths


def _is_our_overlay(path: str) -> bool:
    try:
        with Image.open(path) as image:
            return getattr(image, "text", {}).get(OVERLAY_TAG[0]) == OVERLAY_TAG[1]
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from groupseg.cli import background_threshold, check_no_background, output_dir
    from groupseg.models.checkpoint import CheckpointError
    from groupseg.zeroshot import VocabularyError, ZeroShotSegmenter

    try:
        if not args.checkpoint:
            raise CheckpointError("no checkpoint: pass --checkpoint or set GROUPSEG_CHECKPOINT")
        segmenter = ZeroShotSegmenter(
            args.checkpoint, args.vocab, bg_thresh=background_threshold(args.bg_thresh, args.no_background),
            background=not args.no_background, mode=args.mode, short_side=args.short_side, device=args.device,
        )  # fmt: skip
        check_no_background(segmenter.classes, args.no_background)
        output_dir(args.out, "--out")
    except (CheckpointError, VocabularyError, ValueError) as err:  # ValueError: an option out of range
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = 0
    tag = PngImagePlugin.PngInfo()
    tag.add_text(*OVERLAY_TAG)
    for path, out in zip(args.images, overlay_paths(args.images, args.out)):
        try:
            result = segmenter(path)
        except ValueError as err:  # unreadable image: say so, go on with the others
            print(f"skipped: {err}", file=sys.stderr)
            failed += 1
            continue
        Image.fromarray(result.overlay()).save(out, pnginfo=tag)
        shown = ", ".join(result.classes[i] for i in sorted(set(result.labels.flat)))
        print(f"{path} -> {out}  ({shown})")
    return 2 if failed == len(args.images) else 0


if __name__ == "__main__":
    sys.exit(main())
