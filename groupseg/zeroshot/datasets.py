"""Evaluation datasets mmseg lacks (COCO-Object, PASCAL VOC without background) and checks, before a run, that a
dataset config points at real files whose labels fit: every image has its label PNG, of its own size, with label ids
the vocabulary covers.

The other six benchmarks are mmseg's own classes (``PascalVOCDataset``, ``PascalContextDataset``,
``PascalContextDataset59``, ``COCOStuffDataset``, ``CityscapesDataset``, ``ADE20KDataset``); the official prompt
names (``diningtable → table`` ...) live in the configs, the label ids and names in mmseg's metainfo.
"""
from __future__ import annotations

import copy
import inspect
import os
import os.path as osp
from typing import Sequence

import numpy as np
from mmseg.datasets import BaseSegDataset, COCOStuffDataset, PascalVOCDataset
from PIL import Image, UnidentifiedImageError
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


def check_samples(dataset_cfg: dict, num_labels: int | None = None) -> int:
    """Fail with one line on the first sample a run would break on, before it starts: an image or label PNG that is
    missing or unreadable, a label PNG of another size than its image, or (with ``num_labels``, for datasets whose
    labels the vocabulary defines) a label id at or above ``num_labels`` other than the ignore index. Lists the
    samples as mmseg's dataset class does. Returns their number."""
    from mmengine.registry import init_default_scope

    init_default_scope("mmseg")
    cfg = {**copy.deepcopy(dict(dataset_cfg)), "lazy_init": True, "pipeline": []}
    dataset = DATASETS.build(cfg)
    samples = dataset.load_data_list()
    if not samples:
        raise DatasetError(f"no images with suffix {dataset.img_suffix!r} in {dataset.data_prefix.get('img_path')}")
    ignore = dataset.ignore_index
    missing = [s["seg_map_path"] for s in samples if "seg_map_path" in s and not osp.isfile(s["seg_map_path"])]
    if missing:
        raise DatasetError(f"label PNG {missing[0]} does not exist ({len(missing)} of {len(samples)} labels are "
                           "missing); every image needs its label PNG")  # fmt: skip
    for sample in samples:
        image_size = _image_size(sample["img_path"], "image")
        if "seg_map_path" not in sample:
            continue
        label_size = _image_size(sample["seg_map_path"], "label PNG")
        if label_size != image_size:
            (lw, lh), (iw, ih) = label_size, image_size
            raise DatasetError(f"label PNG {sample['seg_map_path']} is {lw}x{lh} but its image {sample['img_path']} "
                               f"is {iw}x{ih}: they must be the same size")  # fmt: skip
        if num_labels is not None:
            with Image.open(sample["seg_map_path"]) as mask:
                ids = np.unique(np.asarray(mask))
            if dataset.reduce_zero_label:
                ids = np.where(ids == 0, ignore, ids - 1)
            beyond = [int(i) for i in ids if i != ignore and i >= num_labels]
            if beyond:
                raise DatasetError(
                    f"label PNG {sample['seg_map_path']} holds label id {max(beyond)}, but the vocabulary has "
                    f"{num_labels} classes (ids 0-{num_labels - 1}); give one class per label id, in id order"
                )
    return len(samples)


def _image_size(path: str, what: str) -> tuple[int, int]:
    """Width × height as decoders see it (EXIF orientation applied, as OpenCV does), from the header only."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees
                width, height = height, width
    except FileNotFoundError:
        raise DatasetError(f"{what} {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"{what} {path} cannot be read: {err}") from err
    return width, height
