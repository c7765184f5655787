"""Metrics as the field computes them, pure functions and accumulators of predictions and ground truth (no model):
class-agnostic mask-proposal recall (COCOeval), interactive clicks (RITM), few-shot FG-IoU (``few_shot``), video
VPQ / STQ / mVC (``video``)."""
from .interactive import ClickResult, click_summary, next_click, number_of_clicks, run_clicks
from .proposals import load_coco, proposal_recall

__all__ = [
    "ClickResult", "click_summary", "load_coco", "next_click", "number_of_clicks", "proposal_recall", "run_clicks",
]
