"""``ZeroShotOverlayHook``: writes one overlay PNG (image + tinted labels + legend) per test image (``--show-dir``)."""
from __future__ import annotations

import os
import os.path as osp

import mmcv
import numpy as np
from mmengine.hooks import Hook
from mmseg.registry import HOOKS
from PIL import Image

from .visualize import make_palette, overlay


@HOOKS.register_module()
class ZeroShotOverlayHook(Hook):
    def __init__(self, out_dir: str, opacity: float = 0.5):
        self.out_dir = out_dir
        self.opacity = opacity

    def before_test(self, runner) -> None:
        os.makedirs(self.out_dir, exist_ok=True)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        segmentor = getattr(runner.model, "module", runner.model)
        vocab = segmentor.vocabulary
        palette = runner.test_dataloader.dataset.metainfo.get("palette")
        if palette is None or len(palette) != len(vocab):
            palette = make_palette(len(vocab), vocab.with_background)
        for sample in outputs:
            image = mmcv.imread(sample.img_path, channel_order="rgb")
            labels = sample.pred_sem_seg.data.squeeze(0).cpu().numpy()
            shown = overlay(image, labels, vocab.names, np.asarray(palette), self.opacity, vocab.with_background)
            name = osp.splitext(osp.basename(sample.img_path))[0] + ".png"
            Image.fromarray(shown).save(osp.join(self.out_dir, name))
