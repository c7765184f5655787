#!/usr/bin/env python
"""Zero-shot video segmentation with instance ids that hold over time: label and id PNGs per frame, tracks.json.

    python tools/video.py INPUT --checkpoint CKPT --vocab "cat,dog,grass" --out DIR [--show [overlay.mp4|.gif]]

INPUT is a folder of frames (read in natural order) or a video file (anything FFmpeg decodes, through PyAV); frames
are read upright as shown (EXIF orientation, a video's rotation), outputs are at that size.
DIR gets ``labels/NAME.png`` (palette PNG: the pixel value is the label id, 0 = background; 16-bit beyond 256
labels), ``ids/NAME.png`` (16-bit PNG: instance ids, 0 = none; panoptic id = label × 1000 + id), ``tracks.json`` (one
entry per tracked thing: id, class, label, score, first/last frame) and, with ``--show``, an overlay video where each
id keeps its colour.
Frames are processed online (one at a time): long videos run in bounded memory, except a GIF overlay, which is kept
until the end (use .mp4 for long videos).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import groupseg  # noqa: E402, F401  (first: applies the compat shims)
import numpy as np  # noqa: E402
from groupseg.synthetic.world import VOC_PALETTE  # noqa: E402
from PIL import Image  # noqa: E402

if TYPE_CHECKING:  # imported where used, after the arguments are parsed: --help answers without loading torch
    from groupseg.video import VideoSegmenter

# groupseg.zeroshot.head.BG_SCORES, named here because that module loads torch (tests/test_tools_help.py checks that
# they agree)
BG_SCORES = ("probability", "cosine")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """The options that build a :class:`VideoSegmenter`, shared with tools/eval_video.py."""
    parser.add_argument("--checkpoint", default=os.environ.get("GROUPSEG_CHECKPOINT"),
                        help="GroupViT weights (default: $GROUPSEG_CHECKPOINT)")  # fmt: skip
    parser.add_argument("--bg-thresh", type=float, help="background threshold (default 0.95)")
    parser.add_argument("--bg-score", choices=BG_SCORES, default="probability",
                        help="what --bg-thresh thresholds (default probability, the official head)")  # fmt: skip
    parser.add_argument("--short-side", type=int, default=448, help="resize the short side to this (default 448)")
    parser.add_argument("--min-area", type=float, default=0.002,
                        help="a group's connected pieces smaller than this fraction of the frame stay with its largest "
                             "piece (default 0.002)")  # fmt: skip
    parser.add_argument("--max-missing", type=int, default=10,
                        help="a track unseen for more frames than this ends (default 10)")  # fmt: skip
    parser.add_argument("--min-similarity", type=float, default=0.8,
                        help="least embedding cosine for a segment to continue a track (default 0.8)")  # fmt: skip
    parser.add_argument("--label-weight", type=float, default=1.0,
                        help="bonus in matching when a segment's own label is the track's (default 1)")  # fmt: skip
    parser.add_argument("--iou-weight", type=float, default=1.0,
                        help="weight of mask overlap next to embedding similarity in matching (default 1)")  # fmt: skip
    parser.add_argument("--device", default="cpu")


def build_segmenter(args: argparse.Namespace, vocab, stuff=(), background: bool = True) -> VideoSegmenter:
    from groupseg.cli import background_threshold, check_no_background
    from groupseg.models.checkpoint import CheckpointError
    from groupseg.video import TrackerConfig, VideoSegmenter

    if not args.checkpoint:
        raise CheckpointError("no checkpoint: pass --checkpoint or set GROUPSEG_CHECKPOINT")
    bg_thresh = background_threshold(args.bg_thresh, not background)
    tracker = TrackerConfig(iou_weight=args.iou_weight, min_similarity=args.min_similarity,
                            max_missing=args.max_missing, label_weight=args.label_weight)  # fmt: skip
    segmenter = VideoSegmenter(args.checkpoint, vocab, stuff=stuff, bg_thresh=bg_thresh, bg_score=args.bg_score,
                               background=background, short_side=args.short_side, min_area=args.min_area,
                               tracker=tracker, device=args.device)  # fmt: skip
    check_no_background(segmenter.classes, not background)
    return segmenter


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="a folder of frames or a video file")
    parser.add_argument("--vocab", required=True, help="'cat,dog,grass', 'person: man, woman; dog', or a file")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--show", nargs="?", const="overlay.mp4", metavar="FILE",
                        help="also write an overlay video (in --out unless a path; .mp4 or .gif; default overlay.mp4)")
    parser.add_argument("--stuff", default="", help="comma-separated classes without instances (e.g. 'grass,sky')")
    parser.add_argument("--no-background", action="store_true", help="no background label: every pixel gets a class")
    parser.add_argument("--per-frame", action="store_true",
                        help="no tracking: every frame alone (ids in group-token order), for comparison")  # fmt: skip
    parser.add_argument("--scale", type=int, default=0,
                        help="overlay magnification (default: enough for a 256 px short side)")  # fmt: skip
    add_model_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    if args.scale < 0:
        print(f"error: --scale must be >= 1 (0: automatic), got {args.scale}", file=sys.stderr)
        return 2
    overlay_path = None
    if args.show:
        overlay_path = Path(args.show) if osp.dirname(args.show) else out / args.show
        if overlay_path.suffix.lower() not in (".gif", ".mp4", ".mkv", ".mov", ".avi", ".webm"):
            print(f"error: --show {args.show}: the overlay must be a .mp4 (or .mkv, .mov, .avi, .webm) or .gif file",
                  file=sys.stderr)  # fmt: skip
            return 2
    from groupseg.cli import output_dir
    from groupseg.models.checkpoint import CheckpointError
    from groupseg.video import FramesError, OverlayWriter
    from groupseg.zeroshot import VocabularyError

    try:
        stuff = [s.strip() for s in args.stuff.split(",") if s.strip()]
        segmenter = build_segmenter(args, args.vocab, stuff, background=not args.no_background)
        video = segmenter.track(args.input, tracking=not args.per_frame)
    except (CheckpointError, VocabularyError, FramesError, ValueError) as err:  # ValueError: an option out of range
        print(f"error: {err}", file=sys.stderr)
        return 2
    if out.resolve() == Path(args.input).resolve() or Path(args.input).resolve() in out.resolve().parents:
        print(f"error: --out {out} is inside the input {args.input}; write the results elsewhere", file=sys.stderr)
        return 2
    try:
        for sub in ("labels", "ids"):
            output_dir(out / sub, "--out")
    except ValueError as err:  # a file in the way
        print(f"error: {err}", file=sys.stderr)
        return 2
    writer = OverlayWriter(overlay_path, fps=video.source.fps) if overlay_path else None
    start, count = time.perf_counter(), 0
    try:
        for frame in video:
            if len(frame.classes) <= 256:  # a palette PNG, as VOC's masks
                labels = Image.fromarray(frame.labels.astype(np.uint8), mode="P")
                labels.putpalette(VOC_PALETTE)
            else:
                labels = Image.fromarray(frame.labels.astype(np.uint16))
            labels.save(out / "labels" / f"{frame.name}.png")
            if frame.instances.max(initial=0) > 65535:
                raise FramesError("more than 65535 instance ids: they do not fit a 16-bit PNG")
            Image.fromarray(frame.instances.astype(np.uint16)).save(out / "ids" / f"{frame.name}.png")
            if writer:
                scale = args.scale or max(1, -(-256 // min(frame.image.shape[:2])))
                writer.write(frame.overlay(scale=scale))
            count += 1
    except (FramesError, ValueError) as err:  # ValueError: e.g. a frame smaller than a patch at --short-side
        print(f"error: {err} (the {count} frames before it are written in {out})", file=sys.stderr)
        return 2
    finally:
        if writer:
            writer.close()
        (out / "tracks.json").write_text(json.dumps(video.tracks, indent=1))
    seconds = time.perf_counter() - start
    print(f"{count} frames in {seconds:.1f} s ({count / seconds:.2f} frames/s): {out / 'labels'}, {out / 'ids'}")
    shown = f"; overlay: {overlay_path}" if writer else ""
    print(f"{len(video.tracks)} tracked things: {out / 'tracks.json'}{shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
