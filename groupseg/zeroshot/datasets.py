"""Evaluation datasets: COCO-Object (mmseg lacks it) and checks that a dataset config points at real files.

PASCAL VOC and PASCAL Context are mmseg's own ``PascalVOCDataset`` / ``PascalContextDataset``; the official prompt
names (``diningtable → table`` ...) live in the configs, the label ids and names in mmseg's metainfo.
"""
from __future__ import annotations

import os.path as osp
from typing import Sequence

from mmseg.datasets import BaseSegDataset, COCOStuffDataset
from mmseg.registry import DATASETS

COCO_OBJECT_CLASSES: tuple[str, ...] = ("background", *COCOStuffDataset.METAINFO["classes"][:80])


class DatasetError(FileNotFoundError):
    """A dataset config whose files are not where it says."""


@DATASETS.register_module()
class COCOObjectDataset(BaseSegDataset):
    """COCO-Object: COCO-Stuff 164k images with only the 80 thing classes (1–80) over background (0), no ignore.

    Masks ``<id>_instanceTrainIds.png`` are made by ``tools/convert_coco_object.py``.
    """

    METAINFO = dict(classes=COCO_OBJECT_CLASSES, palette=[[0, 0, 0], *COCOStuffDataset.METAINFO["palette"][:80]])

    def __init__(self, img_suffix: str = ".jpg", seg_map_suffix: str = "_instanceTrainIds.png", **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)


def dataset_classes(dataset_cfg: dict) -> tuple[str, ...] | None:
    """The label names a dataset config will have: its ``metainfo.classes``, else its class's, else None."""
    classes = (dataset_cfg.get("metainfo") or {}).get("classes")
    if classes:
        return tuple(classes)
    dataset_type = dataset_cfg.get("type")
    cls = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else dataset_type
    if cls is None:
        raise DatasetError(f"unknown dataset type {dataset_type!r} (is its module imported?)")
    classes = getattr(cls, "METAINFO", {}).get("classes")
    return tuple(classes) if classes else None


def check_dataset_files(dataset_cfg: dict) -> None:
    """Fail with the missing path (and where to read about it) before anything is built."""
    root = dataset_cfg.get("data_root") or ""
    prefix = dataset_cfg.get("data_prefix") or {}
    paths: Sequence[tuple[str, str]] = [
        ("data root", root),
        ("image folder", osp.join(root, prefix.get("img_path", ""))),
        ("annotation folder", osp.join(root, prefix.get("seg_map_path", ""))),
    ]
    for what, path in paths:
        if path and not osp.isdir(path):
            raise DatasetError(f"{what} {path} does not exist; see data/README.md for where datasets go")
    ann_file = dataset_cfg.get("ann_file")
    if ann_file:
        ann_path = ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)
        if not osp.isfile(ann_path):
            raise DatasetError(f"split file {ann_path} does not exist; see data/README.md for where datasets go")
