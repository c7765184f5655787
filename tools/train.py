#!/usr/bin/env python
"""Train GroupViT on image–text shards.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT] | --overwrite] [--cfg-options k=v ...]
    torchrun --nproc_per_node N tools/train.py CONFIG ...      # data-parallel (NCCL on GPUs, gloo on CPU)

A work dir that holds a run is continued with --resume, never overwritten unless --overwrite says so. SIGTERM / SIGINT
(Ctrl-C) save a checkpoint at the end of the current step and exit with 128 + the signal number; --resume continues
exactly. Exit codes: 0 done, 2 bad input (config, work dir, disk), 3 diverged (non-finite loss or weights).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import groupseg  # noqa: F401  (applies the stack's compatibility shims first)
from groupseg.cli import DictAction


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config",
                        help="training config (python, mmengine style), e.g. configs/synthetic/groupvit_synthetic.py")
    parser.add_argument("--work-dir", help="where checkpoints and logs go (default: work_dirs/<config name>)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="resume from CKPT, or without a value from the latest checkpoint in the work dir")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in a work dir that holds a run: deletes its checkpoints, logs and config")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override config entries, e.g. train.max_steps=100 data.batch_size=32")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.config).is_file():
        print(f"error: config {args.config} does not exist", file=sys.stderr)
        return 2
    from groupseg.engine import ConfigError, TrainingDiverged, TrainingInterrupted, WorkDirInUse, load_config, train

    try:
        cfg = load_config(args.config, args.cfg_options)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a config is python: report its error without mmengine's internals
        print(f"error: cannot read config {args.config}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    work_dir = args.work_dir or cfg.work_dir or str(Path("work_dirs") / Path(args.config).stem)
    try:
        last = train(cfg, work_dir, resume=args.resume, overwrite=args.overwrite)
    except TrainingDiverged:
        return 3
    except TrainingInterrupted as err:
        print(f"stopped: {err}", file=sys.stderr)
        return 128 + err.signum
    except (FileNotFoundError, ValueError, WorkDirInUse) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a read-only or full disk: the message names the path and the cause
        print(f"error: {err if err.filename is None else f'{err.strerror}: {err.filename}'}", file=sys.stderr)
        return 2
    if last is not None:
        print(f"checkpoint: {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
