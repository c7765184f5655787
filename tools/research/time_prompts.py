#!/usr/bin/env python
"""Time per image of the promptable interface: set_image (the tower, once), one predict (per prompt), generate.

    python tools/research/time_prompts.py [--preset groupvit-s] [--sizes 32 448] [--repeats 5] [--threads N]

A random model of the preset's size on random images: the timings depend on the sizes, not on the weights.
Prints the median of --repeats runs (after one warm-up) for each image size.
"""
from __future__ import annotations

import argparse
import os.path as osp
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import numpy as np  # noqa: E402

import groupseg  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="groupvit-s")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 448])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--refine", choices=("pamr", "none"), default="pamr", help="GroupPredictor's (default pamr)")
    args = parser.parse_args(argv)
    import torch

    from groupseg.prompts import GroupMaskGenerator, GroupPredictor

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = groupseg.GroupViT(groupseg.build_config(args.preset)).eval()
    predictor = GroupPredictor(model, refine=args.refine)
    generator = GroupMaskGenerator(predictor)
    print(f"{args.preset}, refine {args.refine}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'size':>6}{'set_image s':>14}{'predict ms':>13}{'generate s':>13}{'masks':>8}")
    for size in args.sizes:
        image = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
        point = dict(point_coords=[[size / 2, size / 2]], point_labels=[1])
        set_image = median_seconds(lambda: predictor.set_image(image), args.repeats)
        predictor.set_image(image)
        predict = median_seconds(lambda: predictor.predict(**point), args.repeats)
        generate = median_seconds(lambda: generator.generate(image), args.repeats)
        print(f"{size:>6}{set_image:>14.3f}{1000 * predict:>13.1f}{generate:>13.3f}{len(generator.generate(image)):>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
