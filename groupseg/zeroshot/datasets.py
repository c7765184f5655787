"""Evaluation datasets mmseg lacks (COCO-Object, PASCAL VOC without background) and checks that a dataset config
points at real files.

The other six benchmarks are mmseg's own classes (``PascalVOCDataset``, ``PascalContextDataset``,
``PascalContextDataset59``, ``COCOStuffDataset``, ``CityscapesDataset``, ``ADE20KDataset``); the official prompt
names (``diningtable → table`` ...) live in the configs, the label ids and names in mmseg's metainfo.
"""
from __future__ import annotations

import inspect
import os
import os.path as osp
from typing import Sequence

from mmseg.datasets import BaseSegDataset, COCOStuffDataset, PascalVOCDataset
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


@DATASETS.register_module()
class PascalVOC20Dataset(PascalVOCDataset):
    """PASCAL VOC without its background ('VOC-20'): the 20 object classes as labels 0-19, read from VOC's own masks.

    ``reduce_zero_label``: background 0 becomes the ignore value 255 and objects 1-20 become 0-19 (the boundary 255
    stays ignored), as TCL's ``PascalVOCDataset20`` and SCLIP's ``PascalVOC20Dataset`` read it.
    """

    METAINFO = dict(classes=PascalVOCDataset.METAINFO["classes"][1:], palette=PascalVOCDataset.METAINFO["palette"][1:])

    def __init__(self, ann_file: str, reduce_zero_label: bool = True, **kwargs):
        if not reduce_zero_label:
            raise ValueError("PascalVOC20Dataset reads VOC masks with reduce_zero_label=True (background is ignored)")
        super().__init__(ann_file=ann_file, reduce_zero_label=True, **kwargs)


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
        return
    # without a split file every image needs its label map: at least one must exist (a converter may not have run)
    seg_dir = osp.join(root, prefix.get("seg_map_path", ""))
    suffix = dataset_cfg.get("seg_map_suffix") or _default_argument(dataset_cfg.get("type"), "seg_map_suffix")
    if suffix and not _contains_file(seg_dir, suffix):
        raise DatasetError(f"no *{suffix} label maps under {seg_dir}; see data/README.md for how to make them")


def _default_argument(dataset_type, name: str):
    cls = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else dataset_type
    parameter = inspect.signature(cls.__init__).parameters.get(name) if cls is not None else None
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def _contains_file(folder: str, suffix: str) -> bool:
    """Whether any file under ``folder`` (recursively, as mmseg lists them) ends with ``suffix``; stops at the first."""
    for _, _, files in os.walk(folder):
        if any(name.endswith(suffix) for name in files):
            return True
    return False
