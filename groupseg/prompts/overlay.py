"""Overlay of mask records: one colour per mask, largest drawn first, and each mask's label at its inner point."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pycocotools import mask as mask_utils

from ..zeroshot.visualize import make_palette


def draw_masks(image: np.ndarray, records: Sequence[dict[str, Any]], opacity: float = 0.5,
               min_side: int = 256) -> np.ndarray:  # fmt: skip
    """RGB ``image`` + records (bool or RLE ``segmentation``) → RGB overlay, enlarged (nearest) so that its short
    side is at least ``min_side`` and labels stay readable on small images."""
    height, width = image.shape[:2]
    scale = max(1, -(-min_side // min(height, width)))
    palette = make_palette(len(records) + 1, with_background=False)[1:]
    blended = image.astype(np.float32)
    masks = [_as_mask(r["segmentation"]) for r in records]
    for i in sorted(range(len(records)), key=lambda i: -int(masks[i].sum())):  # small masks stay visible on top
        blended[masks[i]] = blended[masks[i]] * (1 - opacity) + palette[i].astype(np.float32) * opacity
    canvas = Image.fromarray(blended.round().astype(np.uint8)).resize((width * scale, height * scale),
                                                                      Image.Resampling.NEAREST)  # fmt: skip
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, record in enumerate(records):
        if "label" not in record:
            continue
        x, y = record["point_coords"][0]
        text = f"{record['label']} {record['label_score']:.2f}"
        draw.text((x * scale, y * scale), text, fill=(255, 255, 255), font=font, anchor="mm", stroke_width=2,
                  stroke_fill=tuple(int(c) for c in palette[i] // 2))  # fmt: skip
    return np.asarray(canvas)


def _as_mask(segmentation: Any) -> np.ndarray:
    if isinstance(segmentation, dict):
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        return mask_utils.decode(rle).astype(bool)
    return np.asarray(segmentation, bool)
