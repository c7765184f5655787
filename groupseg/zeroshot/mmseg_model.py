"""``GroupViTSegmentor``: GroupViT as an mmseg 1.x segmentor, so mmseg's machinery does whole/slide inference,
resizing back to the original image and result packing, and mmengine's Runner / IoUMetric evaluate it.

Only ``encode_decode`` is GroupViT's own (the official head, :mod:`groupseg.zeroshot.head`); ``slide_inference`` is
mmseg's, with the crops of an image run as batches instead of one at a time, and ``postprocess_result`` is mmseg's,
with a faster per-pixel argmax.
"""
from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal, Mapping

import torch
from mmengine.config import ConfigDict
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.segmentors.base import BaseSegmentor
from mmengine.structures import PixelData
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from ..models import GroupViT
from ..models.precision import cast_matmul_weights_, resolve_precision
from ..schema import ConfigError, from_dict, option
from .embeddings import class_embeddings
from .head import seg_logits
from .vocabulary import Vocabulary, VocabularySpec, parse_vocabulary


@dataclass
class ZeroShotTestConfig:
    """``test_cfg`` of :class:`GroupViTSegmentor`, checked: a misspelt key or a value out of range is an error."""

    mode: Literal["whole", "slide"] = "slide"  # one pass over the whole image, or mmseg's sliding window
    crop_size: tuple[int, int] = option((448, 448))  # slide: window (h, w)
    stride: tuple[int, int] = option((224, 224))  # slide: step (h, w)
    bg_thresh: float | None = option(0.95, ge=0, le=1)  # background threshold (label 0 "background"); see head.py
    bg_score: Literal["probability", "cosine"] = "probability"  # what bg_thresh thresholds (head.BG_SCORES)
    crop_batch_size: int = option(4, ge=1)  # slide crops per forward pass
    topk: int = option(5, ge=1)  # classes kept from the image-level embedding (the official head)
    # bf16: the image tower under autocast, its matmul weights stored in bf16; 'auto': bf16 where the hardware runs
    # it natively (models/precision.py), fp32 elsewhere
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False  # torch.compile the image tower
    # exemplar images of the vocabulary resized to (long, short) like the images segmented; None: their own size
    exemplar_scale: tuple[int, int] | None = None
    # 'onnx': the image tower exported by tools/export.py (file onnx_path), run by ONNX Runtime; the head is the same
    backend: Literal["torch", "onnx"] = "torch"
    onnx_path: str | None = None


def check_test_cfg(test_cfg: Mapping[str, Any] | None) -> ConfigDict:
    """``test_cfg`` with its defaults filled in, as the ConfigDict mmseg's code reads (ConfigError if wrong)."""
    checked = from_dict(ZeroShotTestConfig, test_cfg, "model.test_cfg")
    for name in ("crop_size", "stride"):
        if min(getattr(checked, name)) < 1:
            raise ConfigError(f"config key model.test_cfg.{name} must be positive, got {getattr(checked, name)}")
    return ConfigDict(asdict(checked))


DEFAULT_TEST_CFG = asdict(ZeroShotTestConfig())


@MODELS.register_module()
class GroupViTSegmentor(EncoderDecoder):
    """Zero-shot GroupViT segmentor.

    Args:
        checkpoint: anything :func:`groupseg.load_model` reads (or pass ``model``).
        vocabulary: the labels to predict, see :func:`groupseg.zeroshot.parse_vocabulary`.
        test_cfg: ``mode`` ('whole' | 'slide'), ``crop_size``, ``stride``, ``bg_thresh`` (background threshold, used
            when label 0 is 'background'), ``bg_score`` ('probability', the official head, or 'cosine': what
            ``bg_thresh`` thresholds, see :mod:`groupseg.zeroshot.head`), ``crop_batch_size`` (slide crops per
            forward pass), ``topk`` (5),
            ``precision`` ('auto' | 'fp32' | 'bf16': the image tower under bf16 autocast with its matmul weights
            stored in bf16; assignments, embeddings and the head stay fp32; 'auto', the default, is bf16 only where
            the hardware runs it natively, see :func:`groupseg.models.precision.resolve_precision`), ``compile``
            (``torch.compile`` the image tower, weights frozen as constants; each new input shape compiles once, which
            takes tens of seconds on a CPU), ``exemplar_scale`` (``(long, short)``: exemplar images of the vocabulary
            are resized with mmseg's keep-ratio ``Resize`` to this bound before the image tower, as the test pipeline
            resizes the images; ``None``: their own size; ``tools/test.py`` copies the test pipeline's ``Resize`` scale
            here), ``backend`` ('torch' | 'onnx': the image tower exported by ``tools/export.py``, file
            ``onnx_path``, run by ONNX Runtime in fp32; the head stays the same).
        model: an already built :class:`GroupViT` (instead of ``checkpoint``); with ``precision='bf16'`` the
            segmentor works on a copy of it.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        vocabulary: VocabularySpec | None = None,
        test_cfg: dict | None = None,
        data_preprocessor: dict | None = None,
        model: GroupViT | None = None,
        init_cfg: dict | None = None,
    ):
        BaseSegmentor.__init__(self, data_preprocessor=data_preprocessor, init_cfg=init_cfg)  # no backbone/head cfgs
        if (checkpoint is None) == (model is None):
            raise ValueError("GroupViTSegmentor needs exactly one of checkpoint= (a path) or model= (a GroupViT)")
        self.test_cfg = check_test_cfg(test_cfg)  # before the (slow) checkpoint read: a typo fails at once
        if model is None:
            from ..models.load import load_model

            model = load_model(checkpoint)
        device = next(model.parameters()).device
        self._onnx = self._onnx_tower(model)
        self.test_cfg.precision = resolve_precision(self.test_cfg.precision, device, what="test_cfg.precision")
        if self.test_cfg.precision != "fp32" and checkpoint is None:
            model = copy.deepcopy(model)  # its weights are about to be cast: leave the caller's model alone
        self.model = model.eval()
        if self.test_cfg.precision == "bf16":
            for tower in (model.img_encoder, model.img_projector):
                cast_matmul_weights_(tower, torch.bfloat16)
        self._compiled = None
        if self.test_cfg.compile:
            # The tower is compiled with its weights frozen in as constants and the model held in eval mode, so the
            # guards on its modules and parameters can only ever pass: skipping them saves ~0.5 ms per call on a CPU
            # (tensor shapes, dtypes and grad mode are still guarded; a new input shape still recompiles). The C++
            # wrapper launches the ~130 kernels without Python in between: ~1 ms less per call at 224.
            options = {"guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe, "cpp_wrapper": True}
            self._compiled = torch.compile(model.forward_image, options=options)
        self.align_corners = False
        if vocabulary is None:
            raise ValueError("GroupViTSegmentor needs a vocabulary (the class names to segment)")
        self.set_vocabulary(vocabulary)

    def _onnx_tower(self, model: GroupViT):
        """With ``backend='onnx'``, the exported tower (checked to hold ``model``'s weights); it runs in the precision
        it was exported with, so the torch-side precision becomes fp32 (no weight casts) and compile does not apply."""
        if self.test_cfg.backend == "torch":
            return None
        if self.test_cfg.precision not in ("auto", "fp32") or self.test_cfg.compile:
            raise ValueError("test_cfg.precision='bf16' and test_cfg.compile apply to the torch backend, not 'onnx'")
        if not self.test_cfg.onnx_path:
            raise ValueError("test_cfg.backend='onnx' needs test_cfg.onnx_path (write one with tools/export.py)")
        from ..models.onnx_tower import OnnxImageTower

        self.test_cfg.precision = "fp32"
        return OnnxImageTower(self.test_cfg.onnx_path, model=model)

    def set_vocabulary(self, vocabulary: VocabularySpec) -> None:
        """Switch labels; the class embeddings (text and exemplars) are computed here, once per vocabulary."""
        self.vocabulary: Vocabulary = parse_vocabulary(vocabulary)
        self.num_classes = self.out_channels = len(self.vocabulary)
        embeds = class_embeddings(self.model, self.vocabulary, exemplar_scale=self.test_cfg.get("exemplar_scale"),
                                  forward_image=partial(self.forward_image, compiled=False))  # fmt: skip
        self.register_buffer("class_embeds", embeds, persistent=False)

    # -- the GroupViT part ------------------------------------------------------------------------------------------
    def forward_image(self, inputs: torch.Tensor, compiled: bool = True):
        """The image tower at ``test_cfg.precision`` (and compiled, with ``test_cfg.compile``, unless
        ``compiled=False``: exemplar images of many sizes would each compile once; or the exported one, with
        ``test_cfg.backend='onnx'``)."""
        if self._onnx is not None:
            return self._onnx(inputs)
        bf16 = self.test_cfg.precision == "bf16"
        with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=bf16):
            if self._compiled is None or not compiled:
                return self.model.forward_image(inputs)
            from torch._inductor import config as inductor_config

            with inductor_config.patch(freezing=not torch.is_grad_enabled()):  # inference: weights are constants
                return self._compiled(inputs)

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas: Any = None) -> torch.Tensor:
        """Normalised images ``[B, 3, H, W]`` → per-pixel label scores ``[B, num_classes, H, W]`` (official head)."""
        return self.decode(self.forward_image(inputs), inputs.shape[2:])

    def decode(self, out, size: tuple[int, int]) -> torch.Tensor:
        """The head on the image tower's outputs ``out``: per-pixel label scores at ``size``."""
        return seg_logits(
            [a.soft for a in out.vision.assignments],
            out.vision.grid,
            out.group_embeds,
            out.image_embeds,
            self.class_embeds,
            self.model.scale(),
            size=size,
            bg_thresh=self.test_cfg.bg_thresh if self.vocabulary.with_background else None,
            topk=self.test_cfg.topk,
            bg_score=self.test_cfg.bg_score,
        )

    @torch.no_grad()
    def slide_inference(self, inputs: torch.Tensor, batch_img_metas: Any) -> torch.Tensor:
        """mmseg's sliding window (same windows, same averaging of overlaps), running crops in batches."""
        h_stride, w_stride = self.test_cfg.stride
        h_crop, w_crop = self.test_cfg.crop_size
        batch, _, h_img, w_img = inputs.shape
        boxes = []
        for h_idx in range(max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1):
            for w_idx in range(max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1):
                y2, x2 = min(h_idx * h_stride + h_crop, h_img), min(w_idx * w_stride + w_crop, w_img)
                boxes.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
        crops = torch.cat([inputs[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in boxes])  # all crops share one size
        step = self.test_cfg.crop_batch_size * batch
        logits = torch.cat([self.encode_decode(chunk) for chunk in crops.split(step)])
        preds = inputs.new_zeros((batch, self.out_channels, h_img, w_img))
        count = inputs.new_zeros((batch, 1, h_img, w_img))
        for i, (y1, y2, x1, x2) in enumerate(boxes):
            preds[:, :, y1:y2, x1:x2] += logits[i * batch : (i + 1) * batch]
            count[:, :, y1:y2, x1:x2] += 1
        return preds / count

    @torch.no_grad()
    def whole_inference(self, inputs: torch.Tensor, batch_img_metas: Any) -> torch.Tensor:
        return self.encode_decode(inputs)

    def postprocess_result(self, seg_logits: torch.Tensor, data_samples: list | None = None) -> list:
        """mmseg's (padding removed, flip undone, resized to the original shape, per-pixel label), with the label
        taken by ``max(0).indices`` (the labels of ``argmax(0)``, which is ~3× slower over the leading axis of a CPU
        tensor: 35 ms for 21 classes at 448²) and no resize when the logits already have the original shape."""
        batch, _, height, width = seg_logits.shape
        only_prediction = data_samples is None
        data_samples = [SegDataSample() for _ in range(batch)] if only_prediction else data_samples
        for logits, sample in zip(seg_logits.split(1), data_samples):
            if not only_prediction:
                meta = sample.metainfo
                left, right, top, bottom = meta.get("img_padding_size", meta.get("padding_size", [0] * 4))
                logits = logits[:, :, top : height - bottom, left : width - right]
                if meta.get("flip"):
                    logits = logits.flip(dims=(3,) if meta["flip_direction"] == "horizontal" else (2,))
                if tuple(logits.shape[2:]) != tuple(meta["ori_shape"]):
                    logits = resize(logits, size=meta["ori_shape"], mode="bilinear", align_corners=self.align_corners,
                                    warning=False)  # fmt: skip
            logits = logits[0]
            sample.set_data(dict(seg_logits=PixelData(data=logits),
                                 pred_sem_seg=PixelData(data=logits.max(dim=0, keepdim=True).indices)))  # fmt: skip
        return data_samples

    # -- mmseg interface: zero-shot only ----------------------------------------------------------------------------
    def extract_feat(self, inputs: torch.Tensor):
        return self.forward_image(inputs)

    def _forward(self, inputs: torch.Tensor, data_samples=None) -> torch.Tensor:
        return self.encode_decode(inputs)

    def loss(self, inputs, data_samples):
        raise NotImplementedError("GroupViTSegmentor is zero-shot inference only; train GroupViT with tools/train.py")
