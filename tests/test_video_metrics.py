"""VPQ, STQ and mVC against values computed by hand on tiny clips (groupseg/metrics/video.py)."""
import math

import numpy as np
import pytest
import torch
from mmseg.evaluation.metrics import IoUMetric

from groupseg.metrics.video import SegmentationTrackingQuality, VideoConsistency, VideoMetrics, VideoPanopticQuality

BG, DISC, SQUARE = 0, 1, 2  # background is stuff, the other two classes are things


def moving_clip(frames=20, size=16):
    """Background with a disc (class 1, id 1) moving right and a square (class 2, id 2) moving down."""
    clip = []
    for t in range(frames):
        sem = np.zeros((size, size), np.int64)
        inst = np.zeros((size, size), np.int64)
        x = t % (size - 4)
        sem[2:6, x : x + 4], inst[2:6, x : x + 4] = DISC, 1
        y = (t // 2) % (size - 8)
        sem[y + 8 : y + 12, 10:14], inst[y + 8 : y + 12, 10:14] = SQUARE, 2
        clip.append((sem, inst))
    return clip


def two_discs(frames=6, swap_from=3, size=8):
    """Two still discs of one class; the prediction swaps their ids from frame `swap_from` on."""
    gt, pred = [], []
    for t in range(frames):
        sem = np.zeros((size, size), np.int64)
        inst = np.zeros((size, size), np.int64)
        sem[0:2, 0:2], inst[0:2, 0:2] = DISC, 1
        sem[5:7, 5:7], inst[5:7, 5:7] = DISC, 2
        swapped = inst.copy()
        if t >= swap_from:
            swapped[inst == 1], swapped[inst == 2] = 2, 1
        gt.append((sem, inst))
        pred.append((sem.copy(), swapped))
    return gt, pred


def run(metric, gt, pred, clip=0):
    for (gs, gi), (ps, pi) in zip(gt, pred):
        metric.update(gs, gi, ps, pi, clip=clip)
    return metric.result()


def test_a_perfect_prediction_scores_one_everywhere():
    clip = moving_clip()
    result = run(VideoMetrics(3, things=[DISC, SQUARE]), clip, clip)
    for name in ("STQ", "AQ", "SQ", "VPQ", "VPQ_thing", "VPQ_stuff", "VPQ@0", "VPQ@7", "mVC8", "mVC16"):
        assert result[name] == pytest.approx(1.0), name


def test_swapped_ids_drop_aq_to_a_third_and_leave_the_semantics_alone():
    # each disc tube (6 px × 6 frames) is split half/half between two predicted ids of 12 px:
    # TPA = 6, IoU = 6 / (12 + 12 - 6) = 1/3, AQ = (6 · 1/3 + 6 · 1/3) / 12 = 1/3 per tube
    gt, pred = two_discs()
    stq = run(SegmentationTrackingQuality(2, things=[DISC]), gt, pred)
    assert stq["AQ"] == pytest.approx(1 / 3)
    assert stq["SQ"] == pytest.approx(1.0)
    assert stq["STQ"] == pytest.approx(math.sqrt(1 / 3))
    vc = VideoConsistency(windows=(2, 4))
    for (gs, _), (ps, _) in zip(gt, pred):
        vc.update(gs, ps)
    assert vc.result() == {"mVC2": 1.0, "mVC4": 1.0}  # the labels never change: consistency cannot see ids


def test_vpq_counts_a_swap_inside_a_window_as_two_misses_and_two_false_tubes():
    gt, pred = two_discs(frames=6, swap_from=3)
    # single frames: all perfect. 2-frame windows: [2, 3] straddles the swap, its tubes overlap with IoU 1/3 < 0.5:
    # disc TP 8, FP 2, FN 2 over 5 windows → 8 / (8 + 1 + 1) = 0.8; background (stuff) stays 1.
    # 6-frame window: both tubes miss: disc PQ 0.
    result = run(VideoPanopticQuality(2, things=[DISC], spans=(0, 1, 5)), gt, pred)
    assert result["VPQ@0"] == pytest.approx(1.0)
    assert result["VPQ@1"] == pytest.approx((0.8 + 1.0) / 2)
    assert result["VPQ@5"] == pytest.approx((0.0 + 1.0) / 2)
    assert result["VPQ_thing"] == pytest.approx((1.0 + 0.8 + 0.0) / 3)
    assert result["VPQ_stuff"] == pytest.approx(1.0)
    assert result["VPQ"] == pytest.approx((1.0 + 0.9 + 0.5) / 3)


def test_default_spans_are_the_benchmarks_windows():
    # VIPSeg's eval_vpq_vspw.py: nframes in [1, 2, 4, 6, 8] on every frame; Cityscapes-VPS: k in [0, 5, 10, 15] over
    # every 5th frame, i.e. windows of 1-4 evaluated frames
    assert VideoPanopticQuality(3, things=[DISC]).windows == {0: 1, 1: 2, 3: 4, 5: 6, 7: 8}
    assert VideoPanopticQuality(3, things=[DISC], frame_step=5).windows == {0: 1, 5: 2, 10: 3, 15: 4}
    assert VideoMetrics(3, things=[DISC], frame_step=2).vpq.windows == {0: 1, 2: 2, 4: 3, 6: 4}
    with pytest.raises(ValueError, match="frame_step must be at least 1"):
        VideoPanopticQuality(3, things=[DISC], frame_step=0)


def test_vpq_spans_count_evaluated_frames_and_skip_clips_shorter_than_the_window():
    clip = moving_clip(frames=12)
    metric = VideoPanopticQuality(3, things=[DISC, SQUARE], spans=(0, 5, 10, 15), frame_step=5)  # Cityscapes-VPS
    assert metric.windows == {0: 1, 5: 2, 10: 3, 15: 4}
    result = run(metric, clip, clip)
    assert metric.window_count == {0: 12, 5: 11, 10: 10, 15: 9}
    assert result["VPQ"] == pytest.approx(1.0)
    short = VideoPanopticQuality(3, things=[DISC, SQUARE], spans=(15,))
    assert math.isnan(run(short, clip, clip)["VPQ"])  # 12 frames hold no 16-frame window
    with pytest.raises(ValueError, match="multiples of frame_step"):
        VideoPanopticQuality(3, things=[DISC], spans=(0, 3), frame_step=5)


def test_vpq_ignores_a_prediction_lying_mostly_on_void_and_removes_void_from_the_union():
    sem = np.zeros((8, 8), np.int64)
    sem[:, :4] = 255  # void left half; background (stuff) right half: 32 px
    pred = np.zeros((8, 8), np.int64)
    pred[:, :5] = DISC  # a disc over the void half and one background column: 32 of its 40 px on void
    ids = np.where(pred == DISC, 1, 0)
    result = run(VideoPanopticQuality(2, things=[DISC], spans=(0,)), [(sem, np.zeros_like(sem))], [(pred, ids)])
    # background: prediction 24 px inside the 32 px truth → IoU 0.75, a TP; the disc is no FP (80 % on void)
    assert result["VPQ"] == pytest.approx(0.75)
    assert math.isnan(result["VPQ_thing"])


def test_stq_splitting_one_tube_between_two_ids_halves_aq_and_crowd_is_not_scored():
    sem = np.zeros((4, 4), np.int64)
    sem[:2, :2] = DISC
    inst = np.where(sem == DISC, 1, 0)
    crowd_sem = sem.copy()
    crowd_sem[3, 3] = DISC  # a disc pixel without identity (crowd): neither a tube nor a false prediction
    gt = [(crowd_sem, inst), (crowd_sem, inst)]
    pred = [(crowd_sem, np.where(crowd_sem == DISC, 1, 0)), (crowd_sem, np.where(crowd_sem == DISC, 2, 0))]
    # TPA 4 with each id, IoU 4 / (4 + 8 - 4) = 1/2 → AQ = (4 · 1/2 + 4 · 1/2) / 8 = 1/2
    result = run(SegmentationTrackingQuality(2, things=[DISC]), gt, pred)
    assert result["AQ"] == pytest.approx(0.5)
    assert result["per_clip"][0] == {"AQ": pytest.approx(0.5), "tubes": 1}


def test_vc_counts_the_windows_of_vspws_code_and_only_consistent_truth():
    gt = [np.zeros((4, 4), np.int64)] * 4
    preds = [np.zeros((4, 4), np.int64) for _ in range(4)]
    preds[1][0, :] = 1  # frame 1 flips 4 of 16 pixels
    vc = VideoConsistency(windows=(2, 3, 4))
    for g, p in zip(gt, preds):
        vc.update(g, p)
    # n=2: windows [0,1] and [1,2] (not [2,3]: VSPW's code starts windows at 0 .. T-n-1) → 12/16 each
    # n=3: window [0,1,2] → 12/16; n=4: a 4-frame clip has no window
    result = vc.result()
    assert result["mVC2"] == pytest.approx(0.75) and result["mVC3"] == pytest.approx(0.75)
    assert math.isnan(result["mVC4"])
    changing = VideoConsistency(windows=(2,))
    truth = [np.zeros((2, 2), np.int64), np.ones((2, 2), np.int64), np.ones((2, 2), np.int64)]
    for g in truth:
        changing.update(g, np.zeros((2, 2), np.int64))
    assert math.isnan(changing.result()["mVC2"])  # no pixel keeps its true label over [0, 1]: no score


def test_a_new_clip_name_restarts_the_windows():
    clip = moving_clip(frames=10)
    vc = VideoConsistency(windows=(8,))
    for name in ("a", "b"):
        for sem, _ in clip:
            vc.update(sem, sem, clip=name)
    assert len(vc.scores[8]) == 4  # windows starting at 0 and 1 in each 10-frame clip, none across the clips


def test_sq_is_mmsegs_mean_iou_over_all_frames():
    rng = np.random.default_rng(0)
    stq = SegmentationTrackingQuality(5, things=[3, 4])
    intersect, union, pred_area, label_area = (torch.zeros(5, dtype=torch.float64) for _ in range(4))
    for _ in range(3):
        gt = rng.integers(0, 5, (12, 10))
        gt[rng.random(gt.shape) < 0.1] = 255
        pred = np.where(rng.random(gt.shape) < 0.6, np.where(gt == 255, 0, gt), rng.integers(0, 4, gt.shape))
        stq.update(gt, rng.integers(0, 3, gt.shape), pred, rng.integers(0, 3, gt.shape))
        areas = IoUMetric.intersect_and_union(torch.from_numpy(pred), torch.from_numpy(gt), 5, 255)
        for total, area in zip((intersect, union, pred_area, label_area), areas):
            total += area.double()
    iou = IoUMetric.total_area_to_metrics(intersect, union, pred_area, label_area, ["mIoU"])["IoU"]
    assert stq.result()["SQ"] == pytest.approx(float(np.nanmean(iou)))


def test_maps_of_different_sizes_or_labels_out_of_range_are_refused():
    a = np.zeros((4, 4), np.int64)
    with pytest.raises(ValueError, match="one size"):
        VideoMetrics(2, things=[1]).update(a, a, np.zeros((4, 5), np.int64), a)
    with pytest.raises(ValueError, match="class ids"):
        SegmentationTrackingQuality(2, things=[1]).update(a, a, a + 2, a)
    with pytest.raises(ValueError, match="thing class"):
        SegmentationTrackingQuality(2, things=[2])
