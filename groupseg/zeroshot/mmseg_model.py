"""``GroupViTSegmentor``: GroupViT as an mmseg 1.x segmentor, so mmseg's machinery does whole/slide inference,
resizing back to the original image and result packing, and mmengine's Runner / IoUMetric evaluate it.

Only ``encode_decode`` is GroupViT's own (the official head, :mod:`groupseg.zeroshot.head`); ``slide_inference`` is
mmseg's, with the crops of an image run as batches instead of one at a time, and ``postprocess_result`` is mmseg's,
with a faster per-pixel argmax.
"""
from __future__ import annotations

import copy
import os
from typing import Any

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
from .embeddings import class_embeddings
from .head import BG_SCORES, seg_logits
from .vocabulary import Vocabulary, VocabularySpec, parse_vocabulary

DEFAULT_TEST_CFG = dict(mode="slide", crop_size=(448, 448), stride=(224, 224), bg_thresh=0.95, bg_score="probability",
                        crop_batch_size=4, precision="auto", compile=False)  # fmt: skip


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
            takes tens of seconds on a CPU).
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
        if model is None:
            from ..models.load import load_model

            model = load_model(checkpoint)
        self.test_cfg = ConfigDict({**DEFAULT_TEST_CFG, **(test_cfg or {})})
        device = next(model.parameters()).device
        self.test_cfg.precision = resolve_precision(self.test_cfg.precision, device, what="test_cfg.precision")
        if self.test_cfg.precision == "fp16":
            raise ValueError("test_cfg.precision must be 'auto', 'fp32' or 'bf16' (fp16 inference is not supported)")
        if self.test_cfg.precision != "fp32" and checkpoint is None:
            model = copy.deepcopy(model)  # its weights are about to be cast: leave the caller's model alone
        if self.test_cfg.bg_score not in BG_SCORES:
            raise ValueError(f"test_cfg.bg_score must be one of {BG_SCORES}, not {self.test_cfg.bg_score!r}")
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

    def set_vocabulary(self, vocabulary: VocabularySpec) -> None:
        """Switch labels; the class embeddings are computed here, once per vocabulary."""
        self.vocabulary: Vocabulary = parse_vocabulary(vocabulary)
        self.num_classes = self.out_channels = len(self.vocabulary)
        self.register_buffer("class_embeds", class_embeddings(self.model, self.vocabulary), persistent=False)

    # -- the GroupViT part ------------------------------------------------------------------------------------------
    def forward_image(self, inputs: torch.Tensor):
        """The image tower at ``test_cfg.precision`` (and compiled, with ``test_cfg.compile``)."""
        bf16 = self.test_cfg.precision == "bf16"
        with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=bf16):
            if self._compiled is None:
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
            topk=self.test_cfg.get("topk", 5),
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
        step = max(1, self.test_cfg.get("crop_batch_size", 4)) * batch
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
