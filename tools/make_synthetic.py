#!/usr/bin/env python
"""Generate the synthetic world: image–caption training shards and a held-out PASCAL VOC-layout segmentation set.

    python tools/make_synthetic.py [OUT] [--train N] [--val N] [--seed S] [--set key=value ...]
    python tools/make_synthetic.py [OUT] --video N [--video-frames T] [--seed S] [--set key=value ...]

OUT (default data/synthetic) gets ``train/{00000..}.tar`` (img2dataset webdataset layout, with ``_stats.json``),
``val/`` (JPEGImages, SegmentationClass, SegmentationClassColour, ImageSets/Segmentation/val.txt and the
vocabulary files classes.txt, synonyms.txt, colours.txt, and the COCO instances instances.json (categories = kinds)
and instances_colours.json (categories = colours)) and ``support/`` (``--support N`` images in the same layout from a
seed space of their own, with exemplar vocabularies; groupseg/synthetic/support.py). The same seed and settings give
byte-identical files.

OUT must be new or empty; ``--overwrite`` replaces an earlier world there (a folder holding only ``train/``, ``val/``
and ``support/``), nothing else. The world is written beside OUT and moved into place when complete, so a failed or
interrupted run leaves OUT as it was. ``--video N`` writes only N video clips, to ``OUT/video`` (VIPSeg layout,
``groupseg/synthetic/video.py``), under the same rules for that folder.
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import os
import os.path as osp
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from groupseg.synthetic.support import write_support  # noqa: E402
from groupseg.synthetic.world import WorldConfig, write_pairs, write_segmentation  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="data/synthetic", help="output folder (default data/synthetic)")
    parser.add_argument("--train", type=int, default=60_000, help="training pairs (default 60000)")
    parser.add_argument("--val", type=int, default=500, help="held-out segmentation images (default 500)")
    parser.add_argument("--support", type=int, default=200,
                        help="support images for exemplars and few-shot episodes (default 200; own seed space)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace the synthetic world already in OUT")
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


WORLD_ENTRIES = {"train", "val", "support"}  # what this tool writes into OUT (and all that --overwrite may replace)


def check_out(out: Path, overwrite: bool) -> None:
    """ValueError unless OUT is new, empty, or (with ``overwrite``) holds only an earlier world."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    found = sorted(p.name for p in out.iterdir())
    if not found:
        return
    if not overwrite:
        raise ValueError(f"{out} is not empty ({', '.join(found[:5])}{' ...' if len(found) > 5 else ''}): write the "
                         "world into a new folder, or pass --overwrite to replace the world there")  # fmt: skip
    others = sorted(set(found) - WORLD_ENTRIES - {"video"})  # clips of --video stay where they are
    if others:
        raise ValueError(f"{out} holds more than a synthetic world ({', '.join(others[:5])}): refusing to replace it")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    if args.video:
        return write_video(args, out / "video")
    from groupseg.synthetic.instances import write_instances  # pycocotools: imported after the arguments are parsed
    try:
        world = world_from(args.set)
        if args.train < 0 or args.val < 1 or args.shard_size < 1 or args.support < 0 or args.seed < 0:
            raise ValueError("need --train >= 0, --val >= 1, --support >= 0, --shard-size >= 1 and --seed >= 0")
        check_out(out, args.overwrite)
    except (TypeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")  # beside OUT: same file system, one rename
    shards = math.ceil(args.train / args.shard_size)
    jobs = [(str(partial / "train"), s, min(args.shard_size, args.train - s * args.shard_size), world, args.seed,
             args.shard_size) for s in range(shards)]  # fmt: skip
    try:
        with ProcessPoolExecutor(max(1, args.workers)) as pool:
            done = [pool.submit(_shard, job) for job in jobs]
            done.append(pool.submit(write_segmentation, partial / "val", args.val, world, args.seed))
            done.append(pool.submit(write_instances, partial / "val", args.val, world, args.seed))
            if args.support:
                done.append(pool.submit(write_support, partial / "support", args.support, world, args.seed))
            for future in done:
                future.result()
        _move_into_place(partial, out)
    except BaseException as err:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(err, OSError):
            print(f"error: could not write the world to {out}: {err}", file=sys.stderr)
            return 2
        raise
    seconds = time.perf_counter() - start
    if shards:
        print(f"{args.train} training pairs in {shards} shards: {out / 'train'}/{{00000..{shards - 1:05d}}}.tar")
    else:
        print("0 training pairs (no training shards written)")
    print(f"{args.val} held-out images (PASCAL VOC layout): {out / 'val'}")
    if args.support:
        print(f"{args.support} support images (same layout, exemplar vocabularies): {out / 'support'}")
    print(f"vocabularies: {', '.join(str(out / 'val' / n) for n in ('classes.txt', 'synonyms.txt', 'colours.txt'))}")
    print(f"COCO instances: {out / 'val' / 'instances.json'}, {out / 'val' / 'instances_colours.json'}")
    print(f"world: {json.dumps({f.name: getattr(world, f.name) for f in fields(world)})}")
    print(f"done in {seconds:.1f} s")
    return 0


def write_video(args: argparse.Namespace, target: Path) -> int:
    """The clips, written beside ``target`` and moved into place when complete (replacing earlier ones only with
    ``--overwrite``)."""
    from groupseg.synthetic.video import VideoConfig, write_clips

    try:
        config = VideoConfig(world=world_from(args.set), frames=args.video_frames)
        if args.video < 1 or args.seed < 0:
            raise ValueError("need --video >= 1 and --seed >= 0")
        if target.parent.exists() and not target.parent.is_dir():
            raise ValueError(f"{target.parent} exists and is not a folder")
        if target.exists() and any(target.iterdir()) and not args.overwrite:
            raise ValueError(f"{target} is not empty: write the clips elsewhere, or pass --overwrite to replace them")
    except (TypeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        write_clips(partial, args.video, config, seed=args.seed)
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    print(f"{args.video} clips of {args.video_frames} frames (VIPSeg layout): {target}; vocabularies classes.txt "
          f"(masks panomasks), colours.txt (panomasks_colours); done in {time.perf_counter() - start:.1f} s")
    return 0


def _move_into_place(partial: Path, out: Path) -> None:
    """The complete world replaces OUT's contents (an earlier world, checked by check_out) in two renames."""
    out.mkdir(exist_ok=True)
    for name in sorted(WORLD_ENTRIES):
        old = out / name
        if old.exists():
            shutil.rmtree(old)
        if (partial / name).exists():
            os.replace(partial / name, old)
    partial.rmdir()


if __name__ == "__main__":
    sys.exit(main())
