"""Class-agnostic mask-proposal recall, AR@k, exactly as COCO computes it.

``COCOeval(gt, results, "segm")`` with ``params.useCats = 0`` (every proposal may match every object, whatever its
category) and ``params.maxDets`` = the k's; AR@k is the recall at k proposals per image averaged over the IoU
thresholds .50:.05:.95, objects of all areas — the number ``COCOeval.summarize`` prints as
``Average Recall (AR) @[ IoU=0.50:0.95 | area=all | maxDets=k ]``.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def load_coco(instances: str | os.PathLike | dict | COCO) -> COCO:
    """A ``COCO`` object from a path, a loaded instances dict, or a ``COCO`` (returned as is); quietly."""
    if isinstance(instances, COCO):
        return instances
    if not isinstance(instances, dict):
        try:
            with open(instances) as file:
                loaded = json.load(file)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:  # the last: not a text file
            raise ValueError(f"cannot read COCO instances {instances}: {err}") from err
        if not isinstance(loaded, dict):
            raise ValueError(f"COCO instances are a JSON object with 'images' and 'annotations'; {instances} holds "
                             f"a {type(loaded).__name__} (a results file?)")  # fmt: skip
        instances = loaded
    for key in ("images", "annotations"):
        if key not in instances:
            raise ValueError(f"COCO instances need an {key!r} list; this one has keys {sorted(instances)}")
    coco = COCO()
    coco.dataset = _complete(instances)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    for ann in coco.dataset["annotations"]:
        if "area" not in ann:  # COCOeval's area ranges read it
            ann["area"] = float(mask_utils.area(coco.annToRLE(ann)))
    return coco


def _complete(instances: dict) -> dict:
    """A copy with what LVIS-style and class-agnostic sets leave out and COCOeval reads: ``iscrowd`` (0), an image's
    ``file_name`` from its ``coco_url`` (``val2017/000000397133.jpg``, as detectron2 reads LVIS), ``category_id``
    (1) and ``categories`` (each id, named by its number); ``area`` is filled once indexed. An annotation without a
    ``segmentation`` (a box-only set) is refused: there is no mask to recall."""
    images = [dict(im) for im in instances["images"]]
    for image in images:
        if "file_name" not in image and "coco_url" in image:
            image["file_name"] = "/".join(str(image["coco_url"]).split("/")[-2:])
    annotations = []
    for ann in instances["annotations"]:
        if "segmentation" not in ann:
            raise ValueError(f"annotation {ann.get('id')} of image {ann.get('image_id')} has no 'segmentation': "
                             "masks are needed (a box-only set?)")  # fmt: skip
        annotations.append(dict(ann, iscrowd=ann.get("iscrowd", 0), category_id=ann.get("category_id", 1)))
    categories = instances.get("categories")
    if categories is None:  # loadRes copies them
        categories = [dict(id=c, name=str(c)) for c in sorted({a["category_id"] for a in annotations})]
    return dict(instances, images=images, annotations=annotations, categories=categories)


def proposal_recall(
    instances: str | os.PathLike | dict | COCO,
    results: Sequence[dict],
    max_dets: Sequence[int] = (10, 100, 1000),
    image_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """``{"AR@10": ..., "AR@100": ..., ...}`` of COCO-format segmentation ``results`` (``image_id``,
    ``segmentation`` RLE, ``score``) against ``instances``, class-agnostic, over ``image_ids`` (default: every image
    of the set). Images without proposals count, with recall 0."""
    coco = load_coco(instances)
    if not results:
        return {f"AR@{k}": 0.0 for k in max_dets}
    results = [dict(r, category_id=r.get("category_id", 1)) for r in results]  # loadRes wants one; useCats=0 ignores it
    with contextlib.redirect_stdout(io.StringIO()):
        detections = coco.loadRes(list(results))
        evaluator = COCOeval(coco, detections, "segm")
        evaluator.params.useCats = 0
        evaluator.params.maxDets = sorted(int(k) for k in max_dets)
        if image_ids is not None:
            evaluator.params.imgIds = sorted(int(i) for i in image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
    recall = evaluator.eval["recall"][:, 0, 0, :]  # [IoU thresholds, maxDets] for the one pooled category, area all
    out = {}
    for m, k in enumerate(evaluator.params.maxDets):
        valid = recall[:, m][recall[:, m] > -1]
        out[f"AR@{k}"] = float(valid.mean()) if valid.size else 0.0
    return {f"AR@{k}": out[f"AR@{int(k)}"] for k in max_dets}


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
