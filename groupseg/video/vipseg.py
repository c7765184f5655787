"""VIPSeg's layout (Miao et al., CVPR 2022), so a user with VIPSeg gets numbers comparable with its benchmark::

    ROOT/images/VIDEO/FRAME.jpg          (the downloaded "imgs/" is read too; 720p after change2_720p.py)
    ROOT/panomasks/VIDEO/FRAME.png       one uint16 PNG per frame, same stem
    ROOT/panoVIPSeg_categories.json      [{"id": 0, "name": "wall", "isthing": 0, ...}, ...]
    ROOT/train.txt, val.txt, test.txt    video names, one a line

A panomask pixel ``v`` is void for 0, class ``v - 1`` for ``v < 125`` (stuff, or a thing without instances) and class
``v // 100 - 1`` for larger values, whose instance is ``v`` itself (one value = one object for the whole video): the
decoding of VIPSeg's ``create_panoptic_video_labels.py``. The synthetic video world writes this layout too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .frames import FramesError, image_files

VOID = 255
THING_FROM = 125  # raw values from here on are class * 100 + instance


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    isthing: bool


@dataclass
class Clip:
    name: str
    frames: list[Path]
    masks: list[Path | None]  # None: a frame without annotation (only with ``sparse``)


def decode_panomask(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """VIPSeg panomask → ``(semantic, instance)`` int64 maps: void is semantic 255; instance = the raw value."""
    raw = np.asarray(raw).astype(np.int64)
    semantic = np.where(raw < THING_FROM, raw - 1, raw // 100 - 1)
    semantic[raw == 0] = VOID
    return semantic, np.where(raw == 0, 0, raw)


def read_panomask(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with Image.open(path) as mask:
            raw = np.array(mask)
    except OSError as err:
        raise FramesError(f"cannot read the mask {path}: {err}") from None
    if raw.ndim != 2:  # e.g. VIPSeg's panomasksRGB (COCO-style colour ids, for its own evaluators)
        raise FramesError(f"mask {path} has {raw.shape[2]} channels: give VIPSeg's one-channel panomasks "
                          "(class * 100 + instance), not panomasksRGB")  # fmt: skip
    return decode_panomask(raw)


def read_categories(path: str | Path) -> list[Category]:
    """VIPSeg's category list; ids must be 0, 1, 2, ... (label ids), as VIPSeg's are."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
        categories = [Category(int(e["id"]), str(e["name"]), bool(e["isthing"])) for e in entries]
    except FileNotFoundError:
        raise FramesError(f"no category file {path} (VIPSeg's panoVIPSeg_categories.json)") from None
    except (ValueError, KeyError, TypeError) as err:
        raise FramesError(f"{path} is not a VIPSeg category list ({type(err).__name__}: {err})") from None
    if [c.id for c in categories] != list(range(len(categories))):
        raise FramesError(f"{path}: category ids must be 0, 1, 2, ... in order")
    return categories


def list_clips(root: str | Path, split: str = "val", masks: str = "panomasks", sparse: bool = False) -> list[Clip]:
    """The clips of ``split`` (all video folders when there is no ``split.txt``), each frame with its mask.

    ``sparse``: frames between annotated ones (Cityscapes-VPS: every 5th) are kept with mask ``None``, so that a tracker
    sees every frame; each clip still needs one mask. Without it every frame needs its mask, as in VIPSeg."""
    root = Path(root)
    images = next((root / name for name in ("images", "imgs") if (root / name).is_dir()), None)
    if images is None:
        raise FramesError(f"{root} is not a VIPSeg layout: no images/ (or imgs/) folder")
    split_file = root / f"{split}.txt"
    if split_file.is_file():
        names = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    else:
        names = sorted(p.name for p in images.iterdir() if p.is_dir())
    if not names:
        raise FramesError(f"no clips in {split_file if split_file.is_file() else images}")
    clips = []
    for name in names:
        if not (images / name).is_dir():
            raise FramesError(f"clip {name} of {split_file.name} has no folder {images / name}")
        frames = image_files(images / name)
        if not frames:
            raise FramesError(f"clip {name} has no frames in {images / name}")
        mask_paths = [root / masks / name / f"{f.stem}.png" for f in frames]
        missing = next((m for m in mask_paths if not m.is_file()), None)
        if missing is not None and not sparse:
            raise FramesError(f"frame {frames[mask_paths.index(missing)]} has no mask {missing}")
        if sparse:
            mask_paths = [m if m.is_file() else None for m in mask_paths]
            if not any(mask_paths):
                raise FramesError(f"clip {name} has no mask in {root / masks / name}")
        clips.append(Clip(name, frames, mask_paths))
    return clips
