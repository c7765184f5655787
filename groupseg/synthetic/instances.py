"""COCO instances JSON for the synthetic world's held-out set: one annotation per visible object.

Mask-proposal recall (COCOeval ``segm``) and the interactive click protocol need objects, not class maps. The world
draws every object itself, so each annotation is exact: its visible pixels (occlusion included), as COCO RLE.
Two files name the same instances two ways, as ``classes.txt`` and ``colours.txt`` name the class maps:
``instances.json`` (categories = the shape kinds) and ``instances_colours.json`` (categories = ``"<colour> shape"``,
the colours vocabulary's names), so label accuracy can be scored under either vocabulary.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from .world import KINDS, WorldConfig, sample

INSTANCE_FILES = {"instances.json": "kind", "instances_colours.json": "colour"}  # file → what names the category


def category_names(config: WorldConfig, by: str) -> list[str]:
    """Category names in id order (id = position + 1), matching the vocabulary files' names after background."""
    if by == "kind":
        return [KINDS[k][0][0] for k in config.kinds]
    if by == "colour":
        return [f"{c} shape" for c in config.colours]
    raise ValueError(f"categories are named by 'kind' or 'colour', not {by!r}")


def encode_rle(mask: np.ndarray) -> dict:
    """COCO RLE of a ``[H, W]`` bool mask with ``counts`` as str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def instances(num: int, config: WorldConfig, seed: int = 0, split: str = "val", by: str = "kind") -> dict:
    """The COCO instances dict of images ``{split}_{index:06d}.jpg`` (as ``write_segmentation`` names them)."""
    names = category_names(config, by)
    images, annotations = [], []
    for index in range(num):
        scene, _ = sample(seed, split, index, config)
        height, width = scene.instance_mask.shape
        images.append(dict(id=index + 1, file_name=f"{split}_{index:06d}.jpg", height=height, width=width))
        for number, shape in enumerate(scene.shapes, 1):
            mask = scene.instance_mask == number
            rle = encode_rle(mask)
            category = config.kinds.index(shape.kind) if by == "kind" else config.colours.index(shape.colour)
            annotations.append(dict(
                id=len(annotations) + 1, image_id=index + 1, category_id=category + 1, segmentation=rle,
                area=float(mask_utils.area(rle)), bbox=[float(v) for v in mask_utils.toBbox(rle)], iscrowd=0,
                kind=shape.kind, colour=shape.colour,
            ))  # fmt: skip
    categories = [dict(id=i + 1, name=name, supercategory="shape") for i, name in enumerate(names)]
    return dict(images=images, annotations=annotations, categories=categories)


def write_instances(
    out_dir: str | Path, num: int, config: WorldConfig, seed: int = 0, split: str = "val"
) -> list[Path]:
    """Write ``instances.json`` and ``instances_colours.json`` into the held-out folder ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_kind = instances(num, config, seed, split, by="kind")  # drawn once; the colour file only renames categories
    written = []
    for filename, by in INSTANCE_FILES.items():
        names = category_names(config, by)
        index = config.kinds if by == "kind" else config.colours
        data = dict(by_kind, categories=[dict(id=i + 1, name=n, supercategory="shape") for i, n in enumerate(names)],
                    annotations=[dict(a, category_id=index.index(a[by]) + 1) for a in by_kind["annotations"]])
        path = out_dir / filename
        path.write_text(json.dumps(data))
        written.append(path)
    return written
