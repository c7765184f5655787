#!/usr/bin/env python
"""Frames per second of VideoSegmenter: the model + head + segment split, and the tracking, timed apart.

    python tools/research/time_video.py [--sizes 32 448] [--frames 12] [--threads 1] [--checkpoint CKPT]

Without ``--checkpoint`` a random GroupViT-S (``groupseg.build_config("groupvit-s")``) is timed; speed does not depend
on the weights. Frames are synthetic clips rendered at each size (the short side the model then sees), median over
frames after one warm-up frame. Prints one row per size.
"""
from __future__ import annotations

import argparse
import os.path as osp
import platform
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import groupseg  # noqa: E402
from groupseg.synthetic.video import VideoConfig, make_clip  # noqa: E402
from groupseg.synthetic.world import WorldConfig  # noqa: E402


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 448])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", default=None, help="default: a random GroupViT-S")
    parser.add_argument("--vocab", default="circle,square,triangle,star,cross,heart")
    args = parser.parse_args()
    import torch

    from groupseg.video import Tracker

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = groupseg.load_model(args.checkpoint) if args.checkpoint else groupseg.GroupViT(
        groupseg.build_config("groupvit-s")).eval()  # fmt: skip
    name = args.checkpoint or "random GroupViT-S"
    print(f"{name}, {args.threads} thread(s), {cpu_name()}, torch {torch.__version__}")
    print(f"{'size':>6s} {'model ms':>10s} {'track ms':>10s} {'segments':>9s} {'frames/s':>9s}")
    for size in args.sizes:
        segmenter = groupseg.VideoSegmenter(model, args.vocab, short_side=size)
        _, clip = make_clip(0, 0, VideoConfig(world=WorldConfig(image_size=size), frames=args.frames + 1))
        tracker = Tracker(segmenter.tracker_config, background=True)
        model_ms, track_ms, counts = [], [], []
        for index, frame in enumerate(clip):
            start = time.perf_counter()
            segments = segmenter.segment_frame(frame.image)
            middle = time.perf_counter()
            tracker.update(segments.segments, index)
            end = time.perf_counter()
            if index:  # the first frame warms up
                model_ms.append(1000 * (middle - start))
                track_ms.append(1000 * (end - middle))
                counts.append(len(segments.segments))
        total = statistics.median(model_ms) + statistics.median(track_ms)
        print(f"{size:6d} {statistics.median(model_ms):10.1f} {statistics.median(track_ms):10.1f} "
              f"{statistics.median(counts):9.0f} {1000 / total:9.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
