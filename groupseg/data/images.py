"""Pixel formats PIL's ``convert("RGB")`` gets wrong, shared by the training loader (pairs), single-image evaluation
(``load_rgb``) and the few-shot readers; PIL and numpy only, so the training loader does not load mmseg."""
from __future__ import annotations

import numpy as np
from PIL import Image


def eight_bit(image: Image.Image) -> Image.Image:
    """16-bit grayscale (PIL mode 'I;16*', or 'I' holding values above 255) → 8-bit 'L'; PIL's own convert('RGB')
    would clip them, turning almost every pixel white. Float pixels (mode 'F', e.g. a 32-bit TIFF) are refused: they
    have no fixed range (0-1 would read as black). Other modes are returned as they are."""
    if image.mode == "F":
        raise ValueError("the pixels are 32-bit floats (PIL mode 'F': no fixed range); save it as 8- or 16-bit")
    if not (image.mode.startswith("I;16") or image.mode == "I"):
        return image
    values = np.asarray(image).astype(np.int64)
    if image.mode == "I" and values.max(initial=0) <= 255:
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")
    return Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8), "L")
