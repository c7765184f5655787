"""``ZeroShotSegmenter``: segment any image with any vocabulary in three lines, no config or dataset needed.

    seg = groupseg.ZeroShotSegmenter("work_dirs/groupvit", ["cat", "dog", "grass"])
    result = seg("photo.jpg")          # result.labels [H, W], result.scores [C, H, W], result.classes
    result.overlay()                   # RGB image with tinted labels and a legend

It runs the same mmseg test pipeline as ``tools/test.py`` (short side 448, ImageNet mean/std, whole or slide).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Sequence, Union

import numpy as np
import torch
from mmcv.transforms import Compose, Resize
from mmengine.dataset import pseudo_collate
from mmseg.datasets.transforms import LoadImageFromNDArray, PackSegInputs
from mmseg.models.data_preprocessor import SegDataPreProcessor
from PIL import Image, ImageOps, UnidentifiedImageError

from ..data.images import eight_bit
from ..models import GroupViT
from .head import BgScore, check_bg_thresh
from .mmseg_model import GroupViTSegmentor
from .visualize import overlay
from .vocabulary import VocabularySpec, parse_vocabulary

# GroupViT was trained with ImageNet statistics, not CLIP's (0-255 scale, as mmseg's SegDataPreProcessor expects).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]


@dataclass
class Segmentation:
    labels: np.ndarray  # [H, W] int64 label ids at the input image's size
    scores: np.ndarray  # [C, H, W] float32 per-label scores (label 0 = background indicator when present)
    classes: tuple[str, ...]  # label names
    image: np.ndarray  # [H, W, 3] uint8 RGB input

    def overlay(self, opacity: float = 0.5) -> np.ndarray:
        return overlay(self.image, self.labels, self.classes, opacity=opacity,
                       with_background=self.classes[0] == "background")  # fmt: skip


def load_rgb(image: ImageLike) -> np.ndarray:
    """Path / PIL / numpy (H×W gray, H×W×1, H×W×3, H×W×4; uint8, or uint16 if 16-bit) → H×W×3 uint8 RGB.

    Alpha is dropped; 16-bit images are scaled to 8 bits (the top byte, as OpenCV and so mmseg's test pipeline read
    them), not clipped."""
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as opened:
                image = eight_bit(ImageOps.exif_transpose(opened)).convert("RGB")
        except (FileNotFoundError, UnidentifiedImageError, OSError, ValueError) as err:
            raise ValueError(f"cannot read image {image}: {err}") from err
    if isinstance(image, Image.Image):
        return np.asarray(eight_bit(image).convert("RGB"))
    array = np.asarray(image)
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    if array.dtype != np.uint8:
        raise ValueError(f"numpy images must be uint8 (0-255) or uint16 (0-65535); got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) == 0:
        raise ValueError(f"expected an H×W, H×W×3 or H×W×4 image; got shape {array.shape}")
    return np.ascontiguousarray(array[..., :3])


class ZeroShotSegmenter:
    """Zero-shot GroupViT segmentation of single images.

    Args:
        model: a :class:`GroupViT` or anything :func:`groupseg.load_model` reads.
        classes: vocabulary (list, "cat,dog" string or file; see :mod:`groupseg.zeroshot.vocabulary`).
        templates: prompt templates (default the official ``"a photo of a {}."``).
        bg_thresh: background threshold in [0, 1] (official: VOC/COCO-Object 0.95, Context 0.35).
        bg_score: what ``bg_thresh`` thresholds: each segment's best ``"probability"`` (official) or ``"cosine"``
            similarity to the classes (see :mod:`groupseg.zeroshot.head`; a vocabulary of one exemplar class needs
            ``"cosine"``: a softmax over one class is always 1).
        background: put a thresholded ``"background"`` label 0 in front of ``classes`` if it is not there.
        mode: ``"whole"`` (one pass) or ``"slide"`` (crops ``crop_size``, step ``stride``, as in evaluation).
        short_side: images are resized so that the short side is this (long side at most 2048), as in evaluation;
            ``None``: images keep their own size. Exemplars in ``classes`` are resized by the same rule.
        onnx_path: run the image tower exported by ``tools/export.py`` (this model's) with ONNX Runtime instead.
        precision: ``"auto"`` (bf16 where the hardware runs it natively, fp32 elsewhere), ``"fp32"`` or ``"bf16"``
            for the image tower, as ``test_cfg.precision`` in evaluation; the ONNX tower runs in fp32.
    """

    def __init__(
        self,
        model: GroupViT | str | os.PathLike,
        classes: VocabularySpec,
        templates: Sequence[str] | None = None,
        bg_thresh: float = 0.95,
        bg_score: BgScore = "probability",
        background: bool = True,
        mode: Literal["whole", "slide"] = "whole",
        short_side: int | None = 448,
        crop_size: int = 448,
        stride: int = 224,
        device: str | torch.device | None = None,
        onnx_path: str | os.PathLike | None = None,
        precision: Literal["auto", "fp32", "bf16"] = "auto",
    ):
        if mode not in ("whole", "slide"):
            raise ValueError(f"mode must be 'whole' or 'slide', not {mode!r}")
        check_bg_thresh(bg_thresh)
        if short_side is not None and short_side < 1:  # the resize would fail in OpenCV, at the first image
            raise ValueError(f"short_side must be a positive number of pixels, got {short_side}")
        vocab = parse_vocabulary(classes, templates=templates, add_background=background)
        self._background = background
        if not isinstance(model, GroupViT):
            from ..models.load import load_model

            model = load_model(model, device or "cpu")
        elif device is not None:
            model = model.to(device)
        preprocessor = SegDataPreProcessor(mean=IMAGENET_MEAN, std=IMAGENET_STD, bgr_to_rgb=True)
        scale = None if short_side is None else (2048, short_side)
        test_cfg = dict(mode=mode, crop_size=(crop_size, crop_size), stride=(stride, stride), bg_thresh=bg_thresh,
                        bg_score=bg_score, exemplar_scale=scale, precision=precision)  # fmt: skip
        if onnx_path is not None:
            test_cfg.update(backend="onnx", onnx_path=str(onnx_path))
        self.segmentor = GroupViTSegmentor(model=model, vocabulary=vocab, test_cfg=test_cfg,
                                           data_preprocessor=preprocessor)  # fmt: skip
        self.segmentor.to(next(model.parameters()).device).eval()
        resize = [] if scale is None else [Resize(scale=scale, keep_ratio=True)]
        self.pipeline = Compose([LoadImageFromNDArray(), *resize, PackSegInputs()])

    @property
    def classes(self) -> tuple[str, ...]:
        return self.segmentor.vocabulary.names

    def set_classes(self, classes: VocabularySpec, templates: Sequence[str] | None = None) -> None:
        """Segment with another vocabulary (text and / or exemplars) from now on; its class embeddings are computed
        here, once (the model, pipeline and options stay)."""
        self.segmentor.set_vocabulary(parse_vocabulary(classes, templates=templates, add_background=self._background))

    @torch.no_grad()
    def __call__(self, image: ImageLike) -> Segmentation:
        rgb = load_rgb(image)
        data = pseudo_collate([self.pipeline(dict(img=np.ascontiguousarray(rgb[..., ::-1])))])  # mmseg wants BGR
        sample = self.segmentor.test_step(data)[0]
        return Segmentation(
            labels=sample.pred_sem_seg.data[0].cpu().numpy().astype(np.int64),
            scores=sample.seg_logits.data.float().cpu().numpy(),
            classes=self.classes,
            image=rgb,
        )
