#!/usr/bin/env python
"""Tracker settings against the tracking metrics on clips with ground truth: the model runs once per frame, every
setting re-tracks the cached segments. For choosing defaults on a held-out set of clips (not the evaluation clips).

    python tools/research/sweep_video_tracking.py CLIPS_DIR --checkpoint CKPT --vocab VOCAB [--masks M] \
        [model options of tools/video.py] --grid 'min_similarity=0.5,0.7' 'label_weight=0,1' ...

Prints one row per setting: AQ, SQ (= mIoU), STQ, VPQ, mVC8, mVC16 (×100), the per-frame row first.
"""
from __future__ import annotations

import argparse
import ast
import itertools
import os.path as osp
import sys
from dataclasses import replace

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: the shared model options

from eval_video import category_file  # noqa: E402
from video import add_model_args, build_segmenter  # noqa: E402

COLUMNS = ("AQ", "SQ", "STQ", "VPQ", "mVC8", "mVC16")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips")
    parser.add_argument("--vocab", required=True)
    parser.add_argument("--masks", default="panomasks")
    parser.add_argument("--split", default="val")
    parser.add_argument("--grid", nargs="*", default=[], metavar="FIELD=V1,V2",
                        help="TrackerConfig fields and their values")  # fmt: skip
    add_model_args(parser)
    args = parser.parse_args()
    from groupseg.metrics.video import VideoMetrics
    from groupseg.video import Tracker, list_clips, read_categories, read_panomask
    from groupseg.video.frames import open_frames

    root = __import__("pathlib").Path(args.clips)
    categories = read_categories(category_file(root, args.masks, None))
    background = categories[0].name == "background"
    segmenter = build_segmenter(args, args.vocab, background=background)
    things = [c.id for c in categories if c.isthing]
    cached = []  # per clip: (name, [FrameSegments], [(gt semantic, gt instance)])
    for clip in list_clips(root, args.split, args.masks):
        _, frames = open_frames(clip.frames)
        cached.append((clip.name, [segmenter.segment_frame(rgb) for _, rgb in frames],
                       [read_panomask(m) for m in clip.masks]))  # fmt: skip
    axes = [(field, [ast.literal_eval(v) for v in values.split(",")]) for field, _, values in
            (item.partition("=") for item in args.grid)]  # fmt: skip
    settings = [dict(zip([a for a, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]
    print(f"{'setting':48s}" + "".join(f"{c:>7s}" for c in COLUMNS))
    for setting in [None, *settings]:
        metrics = VideoMetrics(len(categories), things)
        for name, frames, truth in cached:
            tracker = Tracker(replace(segmenter.tracker_config, **(setting or {})), background=background)
            for index, (alone, (gt_sem, gt_inst)) in enumerate(zip(frames, truth)):
                if setting is None:
                    labels, instances = alone.independent()
                else:
                    labels, instances = alone.tracked(tracker.update(alone.segments, index), tracker.stuff)
                metrics.update(gt_sem, gt_inst, labels, instances, clip=name)
        result = metrics.result()
        label = "per-frame" if setting is None else " ".join(f"{k}={v}" for k, v in setting.items()) or "defaults"
        print(f"{label:48s}" + "".join(f"{100 * result[c]:7.1f}" for c in COLUMNS), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
