"""Overlays: the image with each label's colour blended in (background left as is) and a legend of the labels shown."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def make_palette(num_classes: int, with_background: bool = True) -> np.ndarray:
    """``[num_classes, 3]`` uint8 distinct colours, the same for every call; background black."""
    hues = (np.arange(num_classes) * 0.618033988749895) % 1.0  # golden-ratio hue steps
    sat = np.where(np.arange(num_classes) % 2, 0.65, 0.95)
    val = np.where(np.arange(num_classes) % 3 == 2, 0.7, 0.95)
    i = np.floor(hues * 6).astype(int) % 6
    f = hues * 6 - np.floor(hues * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    sectors = ((val, q, p, p, t, val), (t, val, val, q, p, p), (p, p, t, val, val, q))  # HSV → R, G, B
    table = np.stack([np.choose(i, c) for c in sectors])
    palette = (table.T * 255).round().astype(np.uint8)
    if with_background and num_classes:
        palette[0] = 0
    return palette


def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    palette: np.ndarray | Sequence[Sequence[int]] | None = None,
    opacity: float = 0.5,
    with_background: bool = True,
) -> np.ndarray:
    """RGB ``image`` [H, W, 3] uint8 + ``labels`` [H, W] → RGB overlay with a legend panel on the right.

    As in the official demo, background pixels (label 0 when ``with_background``) are not tinted.
    """
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape} differ in size")
    palette = np.asarray(palette if palette is not None else make_palette(len(class_names), with_background), np.uint8)
    colour = palette[labels]
    tint = labels != 0 if with_background else np.ones(labels.shape, bool)
    blended = image.astype(np.float32)
    blended[tint] = blended[tint] * (1 - opacity) + colour[tint].astype(np.float32) * opacity
    return _with_legend(blended.round().astype(np.uint8), labels, class_names, palette)


def _with_legend(image: np.ndarray, labels: np.ndarray, class_names: Sequence[str], palette: np.ndarray) -> np.ndarray:
    ids, counts = np.unique(labels, return_counts=True)
    shown = [int(i) for i in ids[np.argsort(-counts, kind="stable")]]  # largest first
    font = ImageFont.load_default()
    row, pad, swatch = 16, 4, 12
    text_w = max(int(font.getlength(f"{class_names[i]}")) for i in shown)
    width = pad * 3 + swatch + text_w
    height = max(image.shape[0], pad * 2 + row * len(shown))
    canvas = Image.new("RGB", (image.shape[1] + width, height), (255, 255, 255))
    canvas.paste(Image.fromarray(image), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0 = image.shape[1] + pad
    for k, i in enumerate(shown):
        y = pad + k * row
        draw.rectangle([x0, y, x0 + swatch, y + swatch], fill=tuple(int(c) for c in palette[i]), outline=(0, 0, 0))
        draw.text((x0 + swatch + pad, y), class_names[i], fill=(0, 0, 0), font=font)
    return np.asarray(canvas)
