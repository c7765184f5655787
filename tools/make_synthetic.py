#!/usr/bin/env python
"""Generate the synthetic world: image–caption training shards and a held-out PASCAL VOC-layout segmentation set.

    python tools/make_synthetic.py [OUT] [--train N] [--val N] [--seed S] [--set key=value ...]
    python tools/make_synthetic.py [OUT] --video N [--video-frames T] [--seed S] [--set key=value ...]

OUT (default data/synthetic) gets ``train/{00000..}.tar`` (img2dataset webdataset layout, with ``_stats.json``) and
``val/`` (JPEGImages, SegmentationClass, SegmentationClassColour, ImageSets/Segmentation/val.txt and the
vocabulary files classes.txt, synonyms.txt, colours.txt). The same seed and settings give byte-identical files.
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import os.path as osp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from groupseg.synthetic.world import WorldConfig, write_pairs, write_segmentation  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="data/synthetic", help="output folder (default data/synthetic)")
    parser.add_argument("--train", type=int, default=60_000, help="training pairs (default 60000)")
    parser.add_argument("--val", type=int, default=500, help="held-out segmentation images (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-size", type=int, default=5000, help="pairs per shard (default 5000)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--video", type=int, default=0, metavar="N",
                        help="write N video clips (VIPSeg layout) to OUT/video instead of the image world")  # fmt: skip
    parser.add_argument("--video-frames", type=int, default=32, help="frames per clip (default 32)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="world settings (groupseg.synthetic.world.WorldConfig), e.g. image_size=48 "
                             "num_objects='(0.5,0.5)' p_name_all=1.0")  # fmt: skip
    return parser.parse_args(argv)


def world_from(settings: list[str]) -> WorldConfig:
    known = {f.name for f in fields(WorldConfig)}
    values = {}
    for item in settings:
        key, eq, raw = item.partition("=")
        if not eq or key not in known:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY one of {sorted(known)}")
        try:
            values[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            values[key] = raw
    return WorldConfig(**values)


def _shard(job: tuple[str, int, int, WorldConfig, int, int]) -> None:
    out, start, count, world, seed, shard_size = job
    write_pairs(out, count, world, seed=seed, shard_size=shard_size, first_shard=start)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        world = world_from(args.set)
    except (TypeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.train < 0 or args.val < 1 or args.shard_size < 1:
        print("error: need --train >= 0, --val >= 1 and --shard-size >= 1", file=sys.stderr)
        return 2
    out = Path(args.out)
    start = time.perf_counter()
    if args.video:
        from groupseg.synthetic.video import VideoConfig, write_clips

        try:
            config = VideoConfig(world=world, frames=args.video_frames)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        clips = write_clips(out / "video", args.video, config, seed=args.seed)
        print(f"{args.video} clips of {args.video_frames} frames (VIPSeg layout): {clips}; vocabularies classes.txt "
              f"(masks panomasks), colours.txt (panomasks_colours); done in {time.perf_counter() - start:.1f} s")
        return 0
    shards = math.ceil(args.train / args.shard_size)
    jobs = [(str(out / "train"), s, min(args.shard_size, args.train - s * args.shard_size), world, args.seed,
             args.shard_size) for s in range(shards)]  # fmt: skip
    with ProcessPoolExecutor(max(1, args.workers)) as pool:
        done = [pool.submit(_shard, job) for job in jobs]
        done.append(pool.submit(write_segmentation, out / "val", args.val, world, args.seed))
        for future in done:
            future.result()
    seconds = time.perf_counter() - start
    pattern = f"{out / 'train'}/{{00000..{shards - 1:05d}}}.tar"
    print(f"{args.train} training pairs in {shards} shards: {pattern}")
    print(f"{args.val} held-out images (PASCAL VOC layout): {out / 'val'}")
    print(f"vocabularies: {', '.join(str(out / 'val' / n) for n in ('classes.txt', 'synonyms.txt', 'colours.txt'))}")
    print(f"world: {json.dumps({f.name: getattr(world, f.name) for f in fields(world)})}")
    print(f"done in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
