"""What every mode of the demo answers: regions on the image, shown as an overlay with a legend and per-label areas,
and written as the two downloads (a label PNG and COCO run-length-encoded masks in JSON, via pycocotools)."""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from ..zeroshot.visualize import make_palette, overlay

DISPLAY_SIDE = 384  # small images (the synthetic world's 32 px) are shown enlarged to about this long side


@dataclass
class Region:
    """One answered mask: ``label`` indexes :attr:`Answer.names`; ``score`` is the model's confidence, if it has one."""

    mask: np.ndarray  # [H, W] bool
    label: int
    score: float | None = None


@dataclass
class Prompts:
    """The clicks and box an answer was asked with, drawn on its overlay (pixel coordinates of the input image)."""

    points: list[tuple[float, float, int]] = field(default_factory=list)  # (x, y, 1 = positive | 0 = negative)
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1


@dataclass
class Answer:
    image: np.ndarray  # [H, W, 3] uint8 RGB input
    labels: np.ndarray  # [H, W] int label map shown; 0 = background (nothing)
    names: tuple[str, ...]  # label names, names[0] == "background"
    regions: list[Region]  # what the RLE download holds (masks may overlap, e.g. segment everything)
    prompts: Prompts | None = None

    @property
    def palette(self) -> np.ndarray:
        return make_palette(len(self.names), with_background=True)

    def overlay(self) -> np.ndarray:
        """The image tinted by label with the legend panel on the right, enlarged (nearest) when the image is small."""
        scale = display_scale(self.labels.shape)
        image = self.image.repeat(scale, 0).repeat(scale, 1)
        labels = self.labels.repeat(scale, 0).repeat(scale, 1)
        shown = overlay(image, labels, self.names, palette=self.palette, with_background=True)
        if self.prompts is not None:
            shown = _draw_prompts(shown, self.prompts, scale)
        return shown

    def areas(self) -> list[dict]:
        """Per shown label, largest first: name, pixels, share of the image, best score of its regions."""
        ids, counts = np.unique(self.labels, return_counts=True)
        best: dict[int, float] = {}
        for region in self.regions:
            if region.score is not None:
                best[region.label] = max(best.get(region.label, -math.inf), region.score)
        rows = []
        for i, count in sorted(zip(ids.tolist(), counts.tolist()), key=lambda row: -row[1]):
            rows.append(dict(label=i, name=self.names[i], pixels=count, percent=100 * count / self.labels.size,
                             score=best.get(i)))  # fmt: skip
        return rows

    def legend_html(self) -> str:
        """The legend as an HTML table: colour swatch, label, area (pixels and %), score."""
        palette = self.palette
        lines = ['<table class="groupseg-legend"><thead><tr><th></th><th>label</th><th>pixels</th><th>area</th>'
                 "<th>score</th></tr></thead><tbody>"]  # fmt: skip
        for row in self.areas():
            r, g, b = (int(c) for c in palette[row["label"]])
            score = "" if row["score"] is None else f"{row['score']:.3f}"
            lines.append(
                f'<tr><td><span style="display:inline-block;width:14px;height:14px;border:1px solid #000;'
                f'background:rgb({r},{g},{b})"></span></td><td>{html.escape(row["name"])}</td>'
                f'<td>{row["pixels"]}</td><td>{row["percent"]:.1f}%</td><td>{score}</td></tr>'
            )
        lines.append("</tbody></table>")
        return "".join(lines)

    def save_label_png(self, path: str | Path) -> Path:
        """Label ids as pixel values (a paletted PNG: viewable, and ``np.asarray(Image.open(path))`` gives the ids)."""
        path = Path(path)
        if len(self.names) <= 256:
            png = Image.fromarray(self.labels.astype(np.uint8), mode="P")
            png.putpalette(self.palette.reshape(-1).tolist())
        else:
            png = Image.fromarray(self.labels.astype(np.uint16))
        png.save(path)
        return path

    def save_rle_json(self, path: str | Path, file_name: str | None = None) -> Path:
        """COCO-style JSON: ``categories`` (the labels but background) and one annotation per region, its
        ``segmentation`` a COCO RLE (``pycocotools.mask.decode`` reads it back), ``area``, ``bbox`` XYWH, ``score``."""
        height, width = self.labels.shape
        annotations = []
        for k, region in enumerate(self.regions, 1):
            rle = mask_utils.encode(np.asfortranarray(region.mask.astype(np.uint8)))
            annotations.append(dict(
                id=k, category_id=region.label, category=self.names[region.label],
                segmentation=dict(size=[int(s) for s in rle["size"]], counts=rle["counts"].decode("ascii")),
                area=int(mask_utils.area(rle)), bbox=[float(v) for v in mask_utils.toBbox(rle)], score=region.score,
            ))  # fmt: skip
        document = dict(
            image=dict(file_name=file_name, height=height, width=width),
            categories=[dict(id=i, name=n) for i, n in enumerate(self.names) if i > 0],
            annotations=annotations,
        )
        path = Path(path)
        path.write_text(json.dumps(document, indent=1))
        return path


def label_regions(labels: np.ndarray, scores: np.ndarray | None = None) -> list[Region]:
    """One region per non-background label present in a label map; its score the label's mean score over it."""
    regions = []
    for i in np.unique(labels).tolist():
        if i == 0:
            continue
        mask = labels == i
        regions.append(Region(mask=mask, label=i, score=None if scores is None else float(scores[i][mask].mean())))
    return regions


def paint(shape: tuple[int, int], regions: Sequence[Region]) -> np.ndarray:
    """A label map from possibly overlapping regions: larger ones first, so smaller ones stay visible on top."""
    labels = np.zeros(shape, np.int64)
    for region in sorted(regions, key=lambda r: -int(r.mask.sum())):
        labels[region.mask] = region.label
    return labels


def display_scale(shape: tuple[int, ...]) -> int:
    """The whole factor small images are enlarged by on the page (1 for images of ``DISPLAY_SIDE`` px or more)."""
    return max(1, DISPLAY_SIDE // max(shape[:2]))


def prompt_view(image: np.ndarray, prompts: Prompts) -> np.ndarray:
    """The image to click on: enlarged like the overlay, with the points and box so far."""
    scale = display_scale(image.shape)
    return _draw_prompts(image.repeat(scale, 0).repeat(scale, 1), prompts, scale)


def _draw_prompts(shown: np.ndarray, prompts: Prompts, scale: int) -> np.ndarray:
    canvas = Image.fromarray(shown)
    draw = ImageDraw.Draw(canvas)
    centre = scale / 2  # a pixel's centre in the enlarged image
    if prompts.box is not None:
        x0, y0, x1, y1 = (v * scale for v in prompts.box)
        draw.rectangle([x0, y0, x1, y1], outline=(255, 255, 0), width=2)
    radius = 5
    for x, y, positive in prompts.points:
        cx, cy = x * scale + centre, y * scale + centre
        colour = (0, 220, 0) if positive else (230, 0, 0)
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour, outline=(255, 255, 255))
    return np.asarray(canvas)
