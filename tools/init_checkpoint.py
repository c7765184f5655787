#!/usr/bin/env python
"""Write the model a training config starts from (same seed, no step taken) as a groupseg checkpoint.

    python tools/init_checkpoint.py CONFIG OUT_DIR [--overwrite] [--cfg-options k=v ...]

The "untrained" baseline: evaluate it with tools/test.py beside the trained checkpoint to see what training added.
OUT_DIR must be new or empty; an existing groupseg checkpoint is replaced only with --overwrite.
"""
from __future__ import annotations

import argparse
import sys

import groupseg
from groupseg.cli import DictAction


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("out")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it is a groupseg checkpoint")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    args = parser.parse_args(argv)
    from groupseg.engine.config import ConfigError, load_config
    from groupseg.engine.trainer import seed_everything
    from groupseg.models.checkpoint import CheckpointError, check_replaceable

    try:
        cfg = load_config(args.config, args.cfg_options)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        print(f"error: cannot read config {args.config}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    seed_everything(cfg.train.seed)  # as tools/train.py seeds rank 0 before building the model
    model = groupseg.GroupViT(groupseg.build_config(**cfg.model))
    try:
        check_replaceable(args.out, overwrite=args.overwrite)
        print(f"untrained checkpoint: {groupseg.save_checkpoint(model, args.out)}")
    except (CheckpointError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
