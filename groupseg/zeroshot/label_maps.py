"""Label maps: the pixel values datasets ship, turned into the label ids mmseg's dataset classes read.

Each map is a 256-entry lookup table applied to an 8-bit label PNG (``lut[mask]``); values a table does not name go to
its default (255 = ignored, or 0 = background for COCO-Object).

* COCO-Stuff 164k ``stuffthingmaps``: pixel = COCO category id - 1; things are ids 1-90 less ten ids COCO never used,
  stuff is ids 92-182, 255 is unlabelled. COCO-Stuff-171 takes things and stuff in id order as 0-170 (mmseg's
  ``tools/dataset_converters/coco_stuff164k.py`` table), everything else ignored; COCO-Object takes the 80 things as
  1-80 and everything else as background 0 (GroupViT's ``convert_dataset/convert_coco_object.py``).
* Cityscapes ``*_gtFine_labelIds.png``: the 34 label ids of ``cityscapesscripts/helpers/labels.py``; the 19 evaluated
  classes get train ids 0-18, all others 255 (what ``json2labelImg(..., 'trainIds')`` draws from the polygons).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
from PIL import Image

UNUSED_COCO_THING_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
COCO_THING_VALUES = tuple(i - 1 for i in range(1, 91) if i not in UNUSED_COCO_THING_IDS)  # 80 values
COCO_STUFF_VALUES = tuple(range(91, 182))  # stuff ids 92-182: 91 values
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                        26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # fmt: skip


def lookup_table(mapping: Mapping[int, int], default: int) -> np.ndarray:
    """A 256-entry uint8 table: ``mapping`` where it says, ``default`` everywhere else."""
    table = np.full(256, default, np.uint8)
    table[list(mapping)] = list(mapping.values())
    return table


COCO_STUFF_171 = lookup_table({v: i for i, v in enumerate(COCO_THING_VALUES + COCO_STUFF_VALUES)}, default=255)
COCO_OBJECT_81 = lookup_table({v: i for i, v in enumerate(COCO_THING_VALUES, 1)}, default=0)
CITYSCAPES_19 = lookup_table(CITYSCAPES_TRAIN_IDS, default=255)


def remap_label_png(src: str, dst: str, table: np.ndarray) -> str:
    """Write ``table[label]`` of the single-channel 8-bit label PNG ``src`` to ``dst`` (palette PNGs: their indices).
    ValueError naming ``src`` if it is not one."""
    try:
        mask = np.array(Image.open(src))
    except (OSError, SyntaxError) as err:  # not an image, or a truncated one: name the file, not PIL's internals
        raise ValueError(f"{src}: cannot read it as a label PNG ({type(err).__name__}: {err})") from None
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"{src}: expected a single-channel 8-bit label PNG, got {mask.dtype} {mask.shape}")
    Image.fromarray(table[mask]).save(dst)
    return dst
