"""``RegionPredictor``: the classical baseline, superpixels as the units instead of GroupViT's groups.

scikit-image's Felzenszwalb graph segmentation or SLIC clusters each image into regions from colour and position
alone, with no learning. Given to :class:`GroupPredictor`'s prompt logic and to :class:`GroupMaskGenerator` as one
stage of one-hot "groups", they answer the same prompts (points, boxes; no text, no labels) and give proposals, so
the learned groups can be compared with them under the same protocol.
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
from skimage.segmentation import felzenszwalb, slic

from ..zeroshot.single_image import ImageLike
from .predictor import GroupPredictor, load_image

# Defaults for small images such as the synthetic world's 32 px (objects of 10-25 px), chosen on 60 of its held-out
# images (docs/prompts.md); tune for photos. Each entry of LEVELS is one level of units, finest first.
DEFAULTS: dict[str, dict[str, Any]] = {
    "felzenszwalb": dict(scale=100.0, sigma=1.0, min_size=20),
    "slic": dict(n_segments=8, compactness=30.0, start_label=0),
}
LEVELS: dict[str, list[dict[str, Any]]] = {
    "felzenszwalb": [dict(scale=100.0), dict(scale=300.0), dict(scale=1000.0)],
    "slic": [dict(n_segments=16), dict(n_segments=8), dict(n_segments=4)],
}


class RegionPredictor(GroupPredictor):
    """Point and box prompts over superpixels. ``method``: ``"felzenszwalb"`` or ``"slic"``; ``levels``: one dict
    of scikit-image arguments per level of units, finest first (default :data:`LEVELS`; ``[{}]`` for a single
    level); keyword ``params`` override :data:`DEFAULTS` and the default levels on every level."""

    def __init__(
        self,
        method: Literal["felzenszwalb", "slic"] = "felzenszwalb",
        levels: Sequence[dict[str, Any]] | None = None,
        **params: Any,
    ):
        if method not in DEFAULTS:
            raise ValueError(f"method must be one of {sorted(DEFAULTS)}, got {method!r}")
        super().__init__(None)
        self.method = method
        if levels is None:  # a keyword given explicitly wins over the default levels' own value
            levels = [{k: v for k, v in level.items() if k not in params} for level in LEVELS[method]]
        self.levels_params = []
        for level in levels:
            merged = {**DEFAULTS[method], **params, **level}
            if merged not in self.levels_params:
                self.levels_params.append(merged)

    def regions(self, rgb: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        """``[H, W]`` region id of every pixel, 0..R-1."""
        labels = felzenszwalb(rgb, **params) if self.method == "felzenszwalb" else slic(rgb, **params)
        return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)

    def set_image(self, image: ImageLike, image_format: str = "RGB") -> None:
        rgb = load_image(image, image_format)
        maps = []
        for params in self.levels_params:
            labels = self.regions(rgb, params)
            onehot = np.zeros((int(labels.max()) + 1, *labels.shape), np.float32)
            np.put_along_axis(onehot, labels[None], 1.0, axis=0)
            maps.append(onehot)
        self.set_levels(maps, rgb.shape[:2])
