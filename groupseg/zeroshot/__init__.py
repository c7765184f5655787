"""Zero-shot segmentation: vocabularies → class embeddings → the official GroupViT head, inside mmseg 1.x.

Importing this package registers ``GroupViTSegmentor`` (MODELS), ``COCOObjectDataset`` and ``PascalVOC20Dataset``
(DATASETS) and ``ZeroShotOverlayHook`` (HOOKS) in mmseg's registries; configs load it with ``custom_imports``.
"""
from .datasets import (
    COCO_OBJECT_CLASSES, COCOObjectDataset, DatasetError, PascalVOC20Dataset, check_dataset_files, check_samples,
    dataset_classes,
)  # fmt: skip
from .embeddings import class_embeddings
from .head import group_class_scores, group_masks, seg_logits
from .hooks import ZeroShotOverlayHook
from .mmseg_model import GroupViTSegmentor, ZeroShotTestConfig, check_test_cfg
from .single_image import Segmentation, ZeroShotSegmenter, load_rgb
from .visualize import make_palette, overlay
from .vocabulary import (
    BACKGROUND, DEFAULT_TEMPLATES, Vocabulary, VocabularyError, check_fits_dataset, parse_vocabulary,
)  # fmt: skip

__all__ = [
    "BACKGROUND", "COCO_OBJECT_CLASSES", "COCOObjectDataset", "DEFAULT_TEMPLATES", "DatasetError", "GroupViTSegmentor",
    "PascalVOC20Dataset", "Segmentation", "Vocabulary", "VocabularyError", "ZeroShotOverlayHook", "ZeroShotSegmenter",
    "ZeroShotTestConfig", "check_dataset_files", "check_fits_dataset", "check_samples", "check_test_cfg",
    "class_embeddings", "dataset_classes", "group_class_scores", "group_masks", "load_rgb", "make_palette", "overlay",
    "parse_vocabulary", "seg_logits",
]  # fmt: skip
