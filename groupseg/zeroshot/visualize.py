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


def side_by_side(
    images: Sequence[np.ndarray],
    columns: Sequence[tuple[str, Sequence[np.ndarray], str]],
    legends: dict[str, tuple[Sequence[str], np.ndarray]],
    scale: int = 4,
) -> np.ndarray:
    """A grid a person can read: one row per image, the image then one label map per column, every cell upscaled
    ``scale``× by nearest neighbour (pixels stay pixels), and under the grid one legend per vocabulary.

    ``columns``: ``(title, label maps [H, W] one per image, legend key)``; ``legends``: key → ``(class names,
    palette [num_classes, 3] uint8)``, so a truth and a prediction of one vocabulary share their colours.
    """
    if not images or any(len(maps) != len(images) for _, maps, _ in columns):
        raise ValueError("side_by_side needs one label map per image in every column")
    missing = {key for _, _, key in columns} - set(legends)
    if missing:
        raise ValueError(f"no legend for {sorted(missing)}")
    font = ImageFont.load_default()
    h, w = images[0].shape[:2]
    cell_w, cell_h, gap, title_h, row, swatch = w * scale, h * scale, 4, 16, 16, 12
    titles = ["image", *(title for title, _, _ in columns)]
    grid_w = len(titles) * (cell_w + gap) + gap
    legend_rows = [(key, names, palette) for key, (names, palette) in legends.items()]
    per_line = max(1, grid_w // 120)
    legend_h = sum(row * (1 + -(-len(names) // per_line)) + gap for _, names, _ in legend_rows)
    height = title_h + len(images) * (cell_h + gap) + gap + legend_h
    canvas = Image.new("RGB", (grid_w, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles):
        draw.text((gap + c * (cell_w + gap), 2), title, fill=(0, 0, 0), font=font)

    def cell(pixels: np.ndarray, r: int, c: int) -> None:
        big = Image.fromarray(pixels).resize((cell_w, cell_h), Image.Resampling.NEAREST)
        canvas.paste(big, (gap + c * (cell_w + gap), title_h + r * (cell_h + gap)))

    for r, image in enumerate(images):
        cell(np.ascontiguousarray(image[..., :3]).astype(np.uint8), r, 0)
        for c, (_, maps, key) in enumerate(columns, start=1):
            palette = np.asarray(legends[key][1], np.uint8)
            labels = np.asarray(maps[r])
            if labels.shape != (h, w):
                raise ValueError(f"label map {labels.shape} of row {r} is not the image's size {(h, w)}")
            pixels = palette[np.minimum(labels, len(palette) - 1)]
            pixels[labels == 255] = 255  # ignored pixels (VOC's boundary label) white
            cell(pixels, r, c)
    y = title_h + len(images) * (cell_h + gap) + gap
    for key, names, palette in legend_rows:
        draw.text((gap, y), f"{key}:", fill=(0, 0, 0), font=font)
        y += row
        for k, name in enumerate(names):
            x = gap + (k % per_line) * 120
            yy = y + (k // per_line) * row
            draw.rectangle([x, yy, x + swatch, yy + swatch], fill=tuple(int(v) for v in palette[k]), outline=(0, 0, 0))
            draw.text((x + swatch + 4, yy), name, fill=(0, 0, 0), font=font)
        y += row * -(-len(names) // per_line) + gap
    return np.asarray(canvas)
