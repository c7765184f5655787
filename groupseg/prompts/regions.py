"""``RegionPredictor``: the classical baseline, superpixels as the units instead of GroupViT's groups.

scikit-image's Felzenszwalb graph segmentation or SLIC clusters each image into regions from colour and position
alone, with no learning. Given to :class:`GroupPredictor`'s prompt logic and to :class:`GroupMaskGenerator` as one
stage of one-hot "groups", they answer the same prompts (points, boxes; no text, no labels) and give proposals, so
the learned groups can be compared with them under the same protocol.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from skimage.segmentation import felzenszwalb, slic

from ..zeroshot.single_image import ImageLike, load_rgb
from .predictor import GroupPredictor

# Defaults sized for small images such as the synthetic world's 32 px (objects of 10-25 px); tune for photos.
DEFAULTS: dict[str, dict[str, Any]] = {
    "felzenszwalb": dict(scale=100.0, sigma=0.5, min_size=10),
    "slic": dict(n_segments=16, compactness=10.0, start_label=0),
}


class RegionPredictor(GroupPredictor):
    """Point and box prompts over superpixels: ``method`` is ``"felzenszwalb"`` or ``"slic"``; keyword ``params``
    override :data:`DEFAULTS` (scikit-image's own argument names)."""

    def __init__(self, method: Literal["felzenszwalb", "slic"] = "felzenszwalb", **params: Any):
        if method not in DEFAULTS:
            raise ValueError(f"method must be one of {sorted(DEFAULTS)}, got {method!r}")
        super().__init__(None)
        self.method = method
        self.params = {**DEFAULTS[method], **params}

    def regions(self, rgb: np.ndarray) -> np.ndarray:
        """``[H, W]`` region id of every pixel, 0..R-1."""
        if self.method == "felzenszwalb":
            labels = felzenszwalb(rgb, **self.params)
        else:
            labels = slic(rgb, **self.params)
        return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)

    def set_image(self, image: ImageLike) -> None:
        rgb = load_rgb(image)
        labels = self.regions(rgb)
        maps = np.zeros((int(labels.max()) + 1, *labels.shape), np.float32)
        np.put_along_axis(maps, labels[None], 1.0, axis=0)
        self.set_levels([maps], rgb.shape[:2])
