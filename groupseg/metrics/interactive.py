"""Interactive segmentation by simulated clicks, the RITM protocol (Sofiiuk et al. 2022, ``isegm/inference``).

Each next click goes where the current mask is most wrong: at the maximum of the distance transform of the larger
error region (false negatives → a positive click, false positives → a negative one; the image border counts as
boundary, a pixel is never clicked twice). The first click, with an empty prediction, lands at the object's "centre".
After each click the predictor sees all clicks so far. A run stops at ``max_clicks`` (20) or once IoU reaches the
highest threshold asked for. NoC@t = the number of clicks to reach IoU ≥ t, ``max_clicks`` if never; 1-click mIoU =
the mean IoU after the first click.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt

from .proposals import mask_iou

# predictor: (points [N, 2] as (x, y) pixel coordinates, labels [N] 1 = positive / 0 = negative) → [H, W] bool mask
ClickPredictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


def next_click(gt: np.ndarray, pred: np.ndarray, clicked: np.ndarray | None = None) -> tuple[bool, tuple[int, int]]:
    """``(is_positive, (y, x))``: the centre of the larger error region of ``pred`` against ``gt`` (RITM's clicker)."""
    gt, pred = gt.astype(bool), pred.astype(bool)
    fn = np.pad(gt & ~pred, 1)  # zero padding: the image border is an edge of the error region
    fp = np.pad(~gt & pred, 1)
    fn_dt = distance_transform_edt(fn)[1:-1, 1:-1]
    fp_dt = distance_transform_edt(fp)[1:-1, 1:-1]
    if clicked is not None:
        fn_dt, fp_dt = fn_dt * ~clicked, fp_dt * ~clicked
    positive = bool(fn_dt.max() > fp_dt.max())
    dt = fn_dt if positive else fp_dt
    ys, xs = np.nonzero(dt == dt.max())
    return positive, (int(ys[0]), int(xs[0]))


@dataclass
class ClickResult:
    ious: list[float]  # IoU after each click
    points: list[tuple[int, int]]  # (x, y) of each click
    labels: list[int]  # 1 positive, 0 negative


def run_clicks(
    gt: np.ndarray, predict: ClickPredictor, max_clicks: int = 20, stop_iou: float | None = 0.90
) -> ClickResult:
    """Click on one object until IoU ≥ ``stop_iou`` (None: never stop early) or ``max_clicks`` clicks."""
    gt = gt.astype(bool)
    pred = np.zeros_like(gt)
    clicked = np.zeros_like(gt)
    result = ClickResult([], [], [])
    for _ in range(max_clicks):
        positive, (y, x) = next_click(gt, pred, clicked)
        clicked[y, x] = True
        result.points.append((x, y))
        result.labels.append(int(positive))
        pred = np.asarray(predict(np.array(result.points, np.float64), np.array(result.labels, np.int64)), bool)
        if pred.shape != gt.shape:
            raise ValueError(f"the click predictor returned a {pred.shape} mask for a {gt.shape} object")
        result.ious.append(mask_iou(pred, gt))
        if stop_iou is not None and result.ious[-1] >= stop_iou:
            break
    return result


def number_of_clicks(ious: Sequence[float], threshold: float, max_clicks: int = 20) -> int:
    """Clicks needed to reach IoU ≥ ``threshold`` (``max_clicks`` if never), as RITM's ``_get_noc``."""
    reached = np.asarray(ious) >= threshold
    return int(np.argmax(reached)) + 1 if reached.any() else max_clicks


def click_summary(
    runs: Sequence[ClickResult], thresholds: Sequence[float] = (0.85, 0.90), max_clicks: int = 20
) -> dict[str, float]:
    """``{"mIoU@1": ..., "NoC@85": ..., "NoC@90": ...}`` over objects (IoU in %, as papers print it)."""
    if not runs:
        raise ValueError("no objects were clicked on")
    out = {"mIoU@1": 100 * float(np.mean([r.ious[0] for r in runs]))}
    for t in thresholds:
        out[f"NoC@{round(100 * t)}"] = float(np.mean([number_of_clicks(r.ious, t, max_clicks) for r in runs]))
    return out
