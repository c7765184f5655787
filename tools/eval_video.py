#!/usr/bin/env python
"""Evaluate zero-shot video segmentation on clips with ground truth: every frame alone vs tracked, one model, one run.

    python tools/eval_video.py CLIPS_DIR --checkpoint CKPT --vocab VOCAB [--masks panomasks] [--split val]

CLIPS_DIR is in VIPSeg's layout (images/CLIP/*.jpg, panomasks/CLIP/*.png, panoVIPSeg_categories.json, val.txt):
VIPSeg itself or the synthetic clips of ``tools/make_synthetic.py --video N``. The vocabulary names the categories in
id order (plus ``background`` first when category 0 is the background, as in the synthetic clips). Each frame goes
through the model once; its segments are scored twice: alone (the head's labels; ids in group-token order) and
tracked (:class:`groupseg.VideoSegmenter`). Printed side by side: STQ, AQ, SQ (STEP), VPQ (mean over the spans),
mIoU (mmseg's IoUMetric) and mVC8 / mVC16 (VSPW), plus frames per second of model + tracking on this machine.
"""
from __future__ import annotations

import argparse
import json
import math
import os.path as osp
import sys
import time
from pathlib import Path

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # tools/video.py: the shared model options

import numpy as np  # noqa: E402
from video import add_model_args, build_segmenter  # noqa: E402

COLUMNS = ("STQ", "AQ", "SQ", "VPQ", "mIoU", "mVC8", "mVC16")


class MeanIoU:
    """mmseg's IoUMetric arithmetic (intersect_and_union per frame, total_area_to_metrics at the end)."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        import torch

        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.areas = [torch.zeros(num_classes, dtype=torch.float64) for _ in range(4)]

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        import torch
        from mmseg.evaluation.metrics import IoUMetric

        areas = IoUMetric.intersect_and_union(torch.from_numpy(pred), torch.from_numpy(gt), self.num_classes,
                                              self.ignore_index)  # fmt: skip
        for total, area in zip(self.areas, areas):
            total += area.double()

    def result(self) -> float:
        from mmseg.evaluation.metrics import IoUMetric

        iou = IoUMetric.total_area_to_metrics(*self.areas, ["mIoU"])["IoU"]
        return float(np.nanmean(iou))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", help="a folder in VIPSeg's layout")
    parser.add_argument("--vocab", required=True, help="one class per category, in id order (a file or a list)")
    parser.add_argument("--masks", default="panomasks",
                        help="mask folder (default panomasks; synthetic clips: panomasks_colours)")  # fmt: skip
    parser.add_argument("--categories", default=None,
                        help="category file (default: panoVIPSeg_categories.json, or the synthetic clips' file for "
                             "--masks)")  # fmt: skip
    parser.add_argument("--split", default="val", help="video list SPLIT.txt (default val; all videos without it)")
    parser.add_argument("--max-clips", type=int, default=None, help="evaluate the first N clips only")
    parser.add_argument("--spans", type=int, nargs="+",
                        help="VPQ spans k in frames (default: the benchmark's: VIPSeg's 0 1 3 5 7 with every "
                             "frame annotated; with --frame-step N, 0 N 2N 3N: Cityscapes-VPS's 0 5 10 15 at "
                             "N = 5)")  # fmt: skip
    parser.add_argument("--frame-step", type=int, default=1,
                        help="frames between two annotated frames (default 1; Cityscapes-VPS: 5); above 1, frames "
                             "without a mask are tracked but not scored")  # fmt: skip
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    add_model_args(parser)
    args = parser.parse_args(argv)
    if args.spans is None:
        from groupseg.metrics.video import default_spans  # after parsing: groupseg.metrics loads pycocotools

        args.spans = list(default_spans(args.frame_step))
    return args


def category_file(root: Path, masks: str, given: str | None) -> Path:
    if given:
        return Path(given)
    from groupseg.synthetic.video import LABELINGS

    if masks in LABELINGS and (root / LABELINGS[masks][0]).is_file():
        return root / LABELINGS[masks][0]
    return root / "panoVIPSeg_categories.json"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(args.clips)
    if args.max_clips is not None and args.max_clips < 1:
        print("error: --max-clips must be at least 1", file=sys.stderr)
        return 2
    from groupseg.cli import output_file
    from groupseg.metrics.video import VideoMetrics
    from groupseg.models.checkpoint import CheckpointError
    from groupseg.video import FramesError, list_clips, read_categories, read_panomask
    from groupseg.zeroshot import VocabularyError, check_fits_dataset, parse_vocabulary

    try:
        if args.json:
            output_file(args.json, "--json")
        clips = list_clips(root, args.split, args.masks, sparse=args.frame_step > 1)[: args.max_clips]
        categories = read_categories(category_file(root, args.masks, args.categories))
        background = categories[0].name == "background"
        vocab = parse_vocabulary(args.vocab, add_background=background)
        check_fits_dataset(vocab, [c.name for c in categories], f"the category list of {root}")
        stuff = [vocab.names[c.id] for c in categories if not c.isthing and not (background and c.id == 0)]
        segmenter = build_segmenter(args, vocab, stuff, background=background)
        things = [c.id for c in categories if c.isthing]
        metrics = {name: VideoMetrics(len(categories), things, spans=args.spans, frame_step=args.frame_step)
                   for name in ("per-frame", "tracked")}  # fmt: skip
    except (CheckpointError, VocabularyError, FramesError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    miou = {name: MeanIoU(len(categories)) for name in metrics}
    frames, scored, seconds = 0, 0, 0.0
    try:
        for clip in clips:
            video = segmenter.track(clip.frames)
            frames_iter, start = iter(video), time.perf_counter()
            for frame, mask in zip(frames_iter, clip.masks):
                seconds += time.perf_counter() - start
                frames += 1
                if mask is None:  # between annotated frames (--frame-step): tracked, not scored
                    start = time.perf_counter()
                    continue
                gt_sem, gt_inst = read_panomask(mask)
                if gt_sem.shape != frame.labels.shape:
                    raise FramesError(f"mask {mask} is {gt_sem.shape[1]}x{gt_sem.shape[0]} but its frame is "
                                      f"{frame.labels.shape[1]}x{frame.labels.shape[0]}")  # fmt: skip
                for name, (labels, instances) in (("per-frame", frame.segments.independent()),
                                                  ("tracked", (frame.labels, frame.instances))):  # fmt: skip
                    metrics[name].update(gt_sem, gt_inst, labels, instances, clip=clip.name)
                    miou[name].update(gt_sem, labels)
                scored += 1
                start = time.perf_counter()
            aqs = {n: m.stq.result()["per_clip"].get(clip.name, {}).get("AQ", math.nan) for n, m in metrics.items()}
            print(f"{clip.name}: {len(clip.frames)} frames, {len(video.tracks)} tracks; AQ per-frame "
                  f"{100 * aqs['per-frame']:.1f}, tracked {100 * aqs['tracked']:.1f}", flush=True)  # fmt: skip
    except (FramesError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = {name: {**m.result(), "mIoU": miou[name].result()} for name, m in metrics.items()}
    unscored = f" ({scored} with a mask scored)" if scored < frames else ""
    print(f"\n{len(clips)} clips, {frames} frames{unscored}, {frames / max(seconds, 1e-9):.2f} frames/s (model + "
          f"tracking, short side {args.short_side}, this machine)")  # fmt: skip
    print(f"{'':10s}" + "".join(f"{c:>8s}" for c in COLUMNS))
    for name, result in results.items():
        print(f"{name:10s}" + "".join(f"{100 * result[c]:8.1f}" for c in COLUMNS))
    spans = "  ".join(f"VPQ@{k} " + " / ".join(f"{100 * results[row][f'VPQ@{k}']:.1f}" for row in results)
                      for k in args.spans)  # fmt: skip
    print(f"per span (per-frame / tracked): {spans}")
    if args.json:
        fps = frames / max(seconds, 1e-9)
        report = {"clips": len(clips), "frames": frames, "scored": scored, "fps": fps, "args": vars(args), **results}
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
