#!/usr/bin/env python
"""Take a zero-shot score apart on the synthetic world's held-out set: grouping, recognition, background decision.

    python tools/research/diagnose_synthetic.py CHECKPOINT [CHECKPOINT ...] [--data data/synthetic/val] [--vocab shapes]
        [--bg-thresh T] [--bg-score cosine] [--limit 500]

For each checkpoint and vocabulary (``shapes``: classes.txt on SegmentationClass; ``colours``: colours.txt on
SegmentationClassColour) prints one JSON line of the measures in ``groupseg.synthetic.diagnostics``: zero-shot mIoU
(the same head and background rule as tools/test.py with the vocabulary's config in configs/synthetic/, images whole
at native size, computed in process), oracle mIoU of the final and first-stage groups, the largest group's share of
pixels, how often nearly pure groups and single-object images are recognised, and the mIoU with oracle background
decisions or oracle classes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from groupseg.synthetic.world import EVAL_VOCABULARIES as VOCABS

if TYPE_CHECKING:  # imported where used, after the arguments are parsed: --help answers without loading torch
    import torch

# groupseg.zeroshot.head.BG_SCORES, named here because that module loads torch (tests/test_tools_help.py checks that
# they agree)
BG_SCORES = ("probability", "cosine")
REPO = Path(__file__).resolve().parents[2]


def load_set(val: Path, masks: str, limit: int) -> tuple[torch.Tensor, np.ndarray]:
    """Normalised images ``[N, 3, H, W]`` and label maps ``[N, H, W]`` of the VOC-layout set."""
    import torch

    from groupseg.zeroshot.single_image import IMAGENET_MEAN, IMAGENET_STD

    names = (val / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[:limit]
    images = np.stack([np.asarray(Image.open(val / "JPEGImages" / f"{n}.jpg").convert("RGB")) for n in names])
    gts = np.stack([np.asarray(Image.open(val / masks / f"{n}.png")) for n in names]).astype(np.int64)
    images = (images - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return torch.from_numpy(images.astype(np.float32)).permute(0, 3, 1, 2), gts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", default="data/synthetic/val", help="the held-out set (VOC layout)")
    parser.add_argument("--vocab", choices=sorted(VOCABS), nargs="+", default=sorted(VOCABS))
    parser.add_argument("--bg-thresh", type=float)  # default: each vocabulary's test config's
    parser.add_argument("--bg-score", choices=BG_SCORES)  # default: the test config's
    parser.add_argument("--limit", type=int, default=500, help="images to use")
    args = parser.parse_args()
    from mmengine.config import Config

    from groupseg.models.checkpoint import CheckpointError
    from groupseg.models.load import load_model
    from groupseg.synthetic.diagnostics import diagnose
    from groupseg.zeroshot import GroupViTSegmentor, parse_vocabulary

    val = Path(args.data)
    if not (val / "ImageSets" / "Segmentation" / "val.txt").is_file():
        sys.exit(f"diagnose_synthetic: no held-out set in {val} (run tools/make_synthetic.py first)")
    sets = {v: load_set(val, VOCABS[v].masks, args.limit) for v in args.vocab}
    rules = {}  # per vocabulary: its config's background rule unless given on the command line
    for vocab in args.vocab:
        test_cfg = Config.fromfile(REPO / VOCABS[vocab].config).model.test_cfg
        rules[vocab] = dict(mode="whole",
                            bg_thresh=test_cfg.bg_thresh if args.bg_thresh is None else args.bg_thresh,
                            bg_score=args.bg_score or test_cfg.get("bg_score", BG_SCORES[0]))
    for checkpoint in args.checkpoints:
        try:
            model = load_model(checkpoint).eval()
        except (CheckpointError, FileNotFoundError) as err:
            sys.exit(f"diagnose_synthetic: {err}")
        for vocab, (images, gts) in sets.items():
            segmentor = GroupViTSegmentor(model=model, vocabulary=parse_vocabulary(val / VOCABS[vocab].file),
                                          test_cfg=rules[vocab])
            print(json.dumps({"checkpoint": checkpoint, "vocab": vocab, **diagnose(segmentor, images, gts)}),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
