"""The pixel-colour baseline for exemplars: what an example's mask says about colour alone, with no model.

A class is the mean RGB colour of its exemplars' mask pixels, the background the mean colour of the pixels outside
the masks; each query pixel takes the nearest of these colours. On the synthetic world, where every object is one
saturated colour on a muted background, this is a strong baseline for the colours vocabulary and a weak one for the
shape kinds (which share colours); it is what an exemplar method must beat to show it uses more than colour.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def mean_colours(supports: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``[2, 3]`` mean colour of the supports' background and foreground pixels (``(rgb, bool mask)`` pairs)."""
    pixels = [np.concatenate([rgb[~mask if side == 0 else mask].reshape(-1, 3) for rgb, mask in supports])
              for side in (0, 1)]  # fmt: skip
    if not len(pixels[1]):
        raise ValueError("the support masks are empty")
    background = pixels[0].mean(0) if len(pixels[0]) else np.full(3, np.inf)  # a mask over the whole image
    return np.stack([background, pixels[1].mean(0)]).astype(np.float64)


def nearest_colour(image: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """``[H, W]`` index of the nearest of ``colours [K, 3]`` (Euclidean RGB) for every pixel of ``image``."""
    distances = ((image[..., None, :].astype(np.float64) - colours) ** 2).sum(-1)
    return distances.argmin(-1)


def colour_baseline_mask(supports: Sequence[tuple[np.ndarray, np.ndarray]], query: np.ndarray) -> np.ndarray:
    """Boolean foreground of ``query``: pixels nearer the supports' mask colour than their background colour."""
    return nearest_colour(query, mean_colours(supports)) == 1
