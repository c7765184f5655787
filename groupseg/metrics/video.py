"""Video segmentation metrics, as the benchmarks define them: VPQ, STQ (AQ, SQ) and VC.

Every metric reads, frame by frame, a semantic label map and an instance id map of the ground truth and of the
prediction (``[H, W]`` integers). Conventions (those of STEP / Cityscapes-VPS):

- ``ignore_label`` (default 255) in the ground truth is void: not scored.
- A *thing* pixel's segment is ``(class, instance)``; a thing pixel of the ground truth with instance ``0`` is *crowd*
  (no identity: ignored by the association term, and a prediction lying mostly on it is no false positive).
- A *stuff* pixel's segment is its class alone; instance ids of stuff pixels are not read.
- Frames of one clip arrive in order, clip after clip (``clip=`` names the clip; a new name starts a new clip).

**VPQ** (video panoptic quality; Kim et al., CVPR 2020, as in the Cityscapes-VPS and VIPSeg evaluation code): for a
span ``k``, every window of ``k // frame_step + 1`` consecutive evaluated frames of a clip is one panoptic image made of
the stacked frames; tubes (a segment over the window) match when they share a class and their IoU is above 0.5, the
union leaving out the predicted tube's void pixels; a predicted tube lying more than half on void or same-class crowd
is no false positive. TP/FP/FN and the matched IoUs are summed per class over all windows of all clips; VPQ^k is the
mean over classes of IoU / (TP + FP/2 + FN/2) (classes with TP + FP + FN = 0 left out), and VPQ the mean over spans.
The default spans are the benchmarks' own (:func:`default_spans`): VIPSeg annotates every frame and its released
evaluator (``eval_vpq_vspw.py``) uses windows of 1, 2, 4, 6 and 8 frames, ``spans=(0, 1, 3, 5, 7)`` at
``frame_step=1``; Cityscapes-VPS annotates every 5th frame, and spans (0, 5, 10, 15) at ``frame_step=5`` are its
windows of 1, 2, 3 and 4 evaluated frames (at another step N: 0, N, 2N, 3N).

**STQ** (segmentation and tracking quality; Weber et al., 2021, STEP; as deeplab2's numpy implementation): AQ sums,
over every ground-truth thing tube ``g`` of a clip, ``1/|g| Σ_p TPA(p, g) · IoU(p, g)`` over the predicted thing
tubes ``p`` (class and id) that touch it, and divides by the number of ground-truth tubes of all clips; crowd pixels
are left out of both. SQ is the mean IoU of the semantic labels over all frames of all clips (classes with a non-empty
union; mmseg's mIoU); STQ = sqrt(AQ · SQ).

**VC** (video consistency; Miao et al., CVPR 2021, VSPW, as its released ``VC_perclip.py``): for every window of ``n``
consecutive frames, among the pixels whose ground-truth label is the same in all ``n`` frames, the fraction whose
predicted label is also the same in all ``n`` frames; mVC_n is the mean over all windows of all clips. As the released
code: window starts ``0 .. T - n - 1`` (one window fewer than the paper's formula), clips of ``n`` frames or fewer give
none, windows without a consistent ground-truth pixel are skipped. VC checks consistency only, never correctness:
report it next to mIoU.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from typing import Hashable, Iterable, Sequence

import numpy as np

IGNORE_LABEL = 255
VIPSEG_SPANS = (0, 1, 3, 5, 7)  # windows of 1, 2, 4, 6, 8 frames, every frame annotated
DEFAULT_VC_WINDOWS = (8, 16)
_VOID = -1
_INSTANCE_BITS = 32  # segment key = class << 32 | instance


def default_spans(frame_step: int = 1) -> tuple[int, ...]:
    """VPQ's spans as the benchmark with this annotation step evaluates them: VIPSeg's ``(0, 1, 3, 5, 7)`` when every
    frame is annotated, else Cityscapes-VPS's windows of 1-4 evaluated frames, ``(0, 5, 10, 15)`` at step 5."""
    return VIPSEG_SPANS if frame_step == 1 else tuple(k * frame_step for k in range(4))


def _check_frame(*maps: np.ndarray) -> list[np.ndarray]:
    arrays = [np.asarray(m) for m in maps]
    shape = arrays[0].shape
    for array in arrays:
        if array.shape != shape or array.ndim != 2:
            raise ValueError(f"label and id maps must all be [H, W] of one size; got {[a.shape for a in arrays]}")
    return [a.astype(np.int64, copy=False) for a in arrays]


def segment_keys(semantic: np.ndarray, instance: np.ndarray, things: np.ndarray, ignore_label: int) -> np.ndarray:
    """``[H, W]`` int64 segment key per pixel: class << 32 | instance for things, class << 32 for stuff, -1 void."""
    thing = things[np.clip(semantic, 0, len(things) - 1)] & (semantic < len(things))
    keys = (semantic << _INSTANCE_BITS) | np.where(thing, instance, 0)
    return np.where(semantic == ignore_label, _VOID, keys)


def _class_of(key: int) -> int:
    return key >> _INSTANCE_BITS


def _pair_counts(gt_keys: np.ndarray, pred_keys: np.ndarray) -> Counter:
    """Pixel count of every (ground-truth key, predicted key) pair present in the frame."""
    gt_unique, gt_index = np.unique(gt_keys.ravel(), return_inverse=True)
    pred_unique, pred_index = np.unique(pred_keys.ravel(), return_inverse=True)
    pairs, counts = np.unique(gt_index * len(pred_unique) + pred_index, return_counts=True)
    gts, preds = gt_unique[pairs // len(pred_unique)], pred_unique[pairs % len(pred_unique)]
    return Counter({(int(g), int(p)): int(c) for g, p, c in zip(gts, preds, counts)})


def _thing_table(num_classes: int, things: Iterable[int]) -> np.ndarray:
    table = np.zeros(num_classes, bool)
    for label in things:
        if not 0 <= label < num_classes:
            raise ValueError(f"thing class {label} is not a class id in 0..{num_classes - 1}")
        table[label] = True
    return table


class _ClipStream:
    """Tells when a new clip starts."""

    def __init__(self):
        self.clip: Hashable = object()
        self.frames = 0

    def next(self, clip: Hashable) -> bool:
        new = clip != self.clip
        self.clip, self.frames = clip, (1 if new else self.frames + 1)
        return new


@dataclass
class _PQCounts:
    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0


class VideoPanopticQuality:
    """VPQ over temporal windows (module docstring). ``update`` frame by frame; memory: the last window's frames'
    segment statistics, never pixels."""

    def __init__(
        self, num_classes: int, things: Iterable[int], *, spans: Sequence[int] | None = None, frame_step: int = 1,
        ignore_label: int = IGNORE_LABEL,
    ):  # fmt: skip
        if frame_step < 1:
            raise ValueError(f"frame_step must be at least 1, got {frame_step}")
        spans = default_spans(frame_step) if spans is None else spans
        if not spans or any(k < 0 or k % frame_step for k in spans):
            raise ValueError(f"spans {tuple(spans)} must be non-negative multiples of frame_step {frame_step}")
        self.num_classes, self.ignore_label = num_classes, ignore_label
        self.things = _thing_table(num_classes, things)
        self.windows = {k: k // frame_step + 1 for k in spans}  # span → frames per window
        self.stats = {k: defaultdict(_PQCounts) for k in spans}
        self.window_count = dict.fromkeys(spans, 0)
        self._frames: deque[Counter] = deque(maxlen=max(self.windows.values()))
        self._stream = _ClipStream()

    def update(self, gt_semantic, gt_instance, pred_semantic, pred_instance, clip: Hashable = 0) -> None:
        gt_sem, gt_inst, pred_sem, pred_inst = _check_frame(gt_semantic, gt_instance, pred_semantic, pred_instance)
        if self._stream.next(clip):
            self._frames.clear()
        gt = segment_keys(gt_sem, gt_inst, self.things, self.ignore_label)
        pred = segment_keys(pred_sem, pred_inst, self.things, self.ignore_label)
        self._frames.append(_pair_counts(gt, pred))
        for span, length in self.windows.items():
            if len(self._frames) >= length:  # the window of `length` frames ending with this one
                window = Counter()
                for counts in list(self._frames)[-length:]:
                    window.update(counts)
                self._score_window(window, self.stats[span])
                self.window_count[span] += 1

    def _score_window(self, pairs: Counter, stats: dict[int, _PQCounts]) -> None:
        gt_area, pred_area = Counter(), Counter()
        for (gt, pred), count in pairs.items():
            if gt != _VOID:
                gt_area[gt] += count
            pred_area[pred] += count
        crowd = {_class_of(g): g for g in gt_area if self._is_crowd(g)}
        gt_matched, pred_matched = set(), set()
        for (gt, pred), inter in pairs.items():
            if gt == _VOID or self._is_crowd(gt) or _class_of(gt) != _class_of(pred) or pred_area[pred] == 0:
                continue
            union = pred_area[pred] + gt_area[gt] - inter - pairs.get((_VOID, pred), 0)
            iou = inter / union
            if iou > 0.5:  # at most one match per tube: IoU > 0.5 is unique (as in panoptic quality)
                stats[_class_of(gt)].tp += 1
                stats[_class_of(gt)].iou += iou
                gt_matched.add(gt)
                pred_matched.add(pred)
        for gt in gt_area:
            if gt not in gt_matched and not self._is_crowd(gt):
                stats[_class_of(gt)].fn += 1
        for pred, area in pred_area.items():
            if pred in pred_matched or pred == _VOID:
                continue
            ignored = pairs.get((_VOID, pred), 0)
            if _class_of(pred) in crowd:
                ignored += pairs.get((crowd[_class_of(pred)], pred), 0)
            if ignored / area > 0.5:  # mostly on void or same-class crowd: not counted
                continue
            stats[_class_of(pred)].fp += 1

    def _is_crowd(self, key: int) -> bool:
        label = _class_of(key)
        return bool(label < self.num_classes and self.things[label] and key & ((1 << _INSTANCE_BITS) - 1) == 0)

    def _average(self, stats: dict[int, _PQCounts], isthing: bool | None) -> float:
        values = []
        for label, c in stats.items():
            if label >= self.num_classes or (isthing is not None and bool(self.things[label]) != isthing):
                continue
            if c.tp + c.fp + c.fn:
                values.append(c.iou / (c.tp + 0.5 * c.fp + 0.5 * c.fn))
        return float(np.mean(values)) if values else math.nan

    def result(self) -> dict[str, float]:
        """``VPQ`` (mean over spans), ``VPQ_thing``, ``VPQ_stuff`` and per span ``VPQ@k``; 0–1, NaN without windows."""
        out: dict[str, float] = {}
        per_span = {name: [] for name in ("VPQ", "VPQ_thing", "VPQ_stuff")}
        for span, stats in self.stats.items():
            scores = {"VPQ": self._average(stats, None), "VPQ_thing": self._average(stats, True),
                      "VPQ_stuff": self._average(stats, False)}  # fmt: skip
            for name, value in scores.items():
                per_span[name].append(value)
            out[f"VPQ@{span}"] = scores["VPQ"]
        for name, values in per_span.items():
            finite = [v for v in values if not math.isnan(v)]
            out[name] = float(np.mean(finite)) if finite else math.nan
        return out


class SegmentationTrackingQuality:
    """STQ = sqrt(AQ · SQ) (module docstring); per clip it keeps tube sizes and overlaps, and one confusion matrix."""

    def __init__(self, num_classes: int, things: Iterable[int], *, ignore_label: int = IGNORE_LABEL):
        self.num_classes, self.ignore_label = num_classes, ignore_label
        self.things = _thing_table(num_classes, things)
        self.confusion = np.zeros((num_classes, num_classes), np.int64)  # rows: ground truth, columns: prediction
        self.clips: dict[Hashable, tuple[Counter, Counter, Counter]] = {}  # gt sizes, pred sizes, intersections

    def update(self, gt_semantic, gt_instance, pred_semantic, pred_instance, clip: Hashable = 0) -> None:
        gt_sem, gt_inst, pred_sem, pred_inst = _check_frame(gt_semantic, gt_instance, pred_semantic, pred_instance)
        if pred_sem.min(initial=0) < 0 or pred_sem.max(initial=0) >= self.num_classes:
            raise ValueError(f"predicted labels must be class ids in 0..{self.num_classes - 1}")
        scored = gt_sem != self.ignore_label
        if np.any(gt_sem[scored] >= self.num_classes) or np.any(gt_sem < 0):
            raise ValueError(
                f"ground-truth labels must be class ids in 0..{self.num_classes - 1} or {self.ignore_label}"
            )
        pairs = gt_sem[scored] * self.num_classes + pred_sem[scored]
        self.confusion += np.bincount(pairs, minlength=self.num_classes**2).reshape(self.num_classes, -1)
        gt_sizes, pred_sizes, inters = self.clips.setdefault(clip, (Counter(), Counter(), Counter()))
        gt_thing = scored & self.things[np.where(scored, gt_sem, 0)]
        crowd = gt_thing & (gt_inst == 0)
        gt_thing &= ~crowd
        pred_thing = self.things[pred_sem] & ~crowd
        gt_keys = (gt_sem << _INSTANCE_BITS) | gt_inst
        pred_keys = (pred_sem << _INSTANCE_BITS) | pred_inst
        for counter, keys in ((gt_sizes, gt_keys[gt_thing]), (pred_sizes, pred_keys[pred_thing])):
            ids, counts = np.unique(keys, return_counts=True)
            counter.update(dict(zip(ids.tolist(), counts.tolist())))
        both = gt_thing & pred_thing
        inters.update(_pair_counts(gt_keys[both], pred_keys[both]))

    def result(self) -> dict[str, float]:
        """``STQ``, ``AQ``, ``SQ`` (0–1) over all clips, and ``per_clip`` {clip: {AQ, tubes}}."""
        aq_sums, tubes, per_clip = 0.0, 0, {}
        for clip, (gt_sizes, pred_sizes, inters) in self.clips.items():
            outer = 0.0
            by_gt = defaultdict(list)
            for (gt, pred), tpa in inters.items():
                by_gt[gt].append((pred, tpa))
            for gt, gt_size in gt_sizes.items():
                inner = sum(tpa * tpa / (pred_sizes[pred] + gt_size - tpa) for pred, tpa in by_gt[gt])
                outer += inner / gt_size
            aq_sums += outer
            tubes += len(gt_sizes)
            per_clip[clip] = {"AQ": outer / len(gt_sizes) if gt_sizes else 0.0, "tubes": len(gt_sizes)}
        aq = aq_sums / tubes if tubes else 0.0
        sq = _mean_iou(self.confusion)
        return {"STQ": math.sqrt(aq * sq) if not math.isnan(sq) else math.nan, "AQ": aq, "SQ": sq,
                "per_clip": per_clip}  # fmt: skip


def _mean_iou(confusion: np.ndarray) -> float:
    inter = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - inter
    present = union > 0
    return float((inter[present] / union[present]).mean()) if present.any() else math.nan


class VideoConsistency:
    """mVC_n for each window length n (module docstring); memory: the last max(n) + 1 frames' label maps."""

    def __init__(self, windows: Sequence[int] = DEFAULT_VC_WINDOWS):
        if not windows or min(windows) < 2:
            raise ValueError(f"VC windows must be at least 2 frames, got {tuple(windows)}")
        self.windows = tuple(windows)
        self.scores: dict[int, list[float]] = {n: [] for n in self.windows}
        self._frames: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=max(self.windows) + 1)
        self._stream = _ClipStream()

    def update(self, gt_semantic, pred_semantic, clip: Hashable = 0) -> None:
        gt, pred = (_compact(m) for m in _check_frame(gt_semantic, pred_semantic))
        if self._stream.next(clip):
            self._frames.clear()
        self._frames.append((gt, pred))
        frames = list(self._frames)
        for n in self.windows:
            # the window of n frames that starts n frames before this one: starts 0 .. T - n - 1, as VSPW's code
            if len(frames) >= n + 1:
                window = frames[-n - 1 : -1]
                gt_same = np.ones(gt.shape, bool)
                pred_same = np.ones(gt.shape, bool)
                for later_gt, later_pred in window[1:]:
                    gt_same &= window[0][0] == later_gt
                    pred_same &= window[0][1] == later_pred
                consistent = gt_same.sum()
                if consistent:
                    self.scores[n].append(float((gt_same & pred_same).sum() / consistent))

    def result(self) -> dict[str, float]:
        """``mVC{n}`` (0–1) per window length; NaN where no clip is longer than n frames."""
        return {f"mVC{n}": float(np.mean(s)) if s else math.nan for n, s in self.scores.items()}


def _compact(labels: np.ndarray) -> np.ndarray:
    """Label maps kept for 17 frames: 16-bit when they fit (63 MB instead of 250 MB at 720p)."""
    return labels.astype(np.uint16) if labels.min(initial=0) >= 0 and labels.max(initial=0) < 65536 else labels


class VideoMetrics:
    """STQ (AQ, SQ), VPQ and mVC in one pass: ``update(gt_sem, gt_inst, pred_sem, pred_inst, clip)`` per frame."""

    def __init__(
        self, num_classes: int, things: Iterable[int], *, ignore_label: int = IGNORE_LABEL,
        spans: Sequence[int] | None = None, frame_step: int = 1, vc_windows: Sequence[int] = DEFAULT_VC_WINDOWS,
    ):  # fmt: skip
        things = list(things)
        self.stq = SegmentationTrackingQuality(num_classes, things, ignore_label=ignore_label)
        self.vpq = VideoPanopticQuality(num_classes, things, spans=spans, frame_step=frame_step,
                                        ignore_label=ignore_label)  # fmt: skip
        self.vc = VideoConsistency(vc_windows)

    def update(self, gt_semantic, gt_instance, pred_semantic, pred_instance, clip: Hashable = 0) -> None:
        self.stq.update(gt_semantic, gt_instance, pred_semantic, pred_instance, clip)
        self.vpq.update(gt_semantic, gt_instance, pred_semantic, pred_instance, clip)
        self.vc.update(gt_semantic, pred_semantic, clip)

    def result(self) -> dict[str, float]:
        stq = self.stq.result()
        return {"STQ": stq["STQ"], "AQ": stq["AQ"], "SQ": stq["SQ"], **self.vpq.result(), **self.vc.result()}
