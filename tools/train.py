#!/usr/bin/env python
"""Train GroupViT on image–text shards.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--cfg-options k=v ...]
    torchrun --nproc_per_node N tools/train.py CONFIG ...      # data-parallel (NCCL on GPUs, gloo on CPU)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import groupseg  # noqa: F401  (applies the stack's compatibility shims first)
from mmengine.config import DictAction

from groupseg.engine import TrainingDiverged, load_config, train


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="training config (python, mmengine style), e.g. configs/synthetic/groupvit_synthetic.py")
    parser.add_argument("--work-dir", help="where checkpoints and logs go (default: work_dirs/<config name>)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="resume from CKPT, or without a value from the latest checkpoint in the work dir")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override config entries, e.g. train.max_steps=100 data.batch_size=32")  # fmt: skip
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if not Path(args.config).is_file():
        print(f"error: config {args.config} does not exist", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, args.cfg_options)
    except Exception as err:  # a config is python: report its error without mmengine's internals
        print(f"error: cannot read config {args.config}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    work_dir = args.work_dir or cfg.get("work_dir") or str(Path("work_dirs") / Path(args.config).stem)
    try:
        last = train(cfg, work_dir, resume=args.resume)
    except TrainingDiverged:
        return 3
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if last is not None:
        print(f"checkpoint: {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
