"""Exemplars: a class given by an example — an image and a mask of the class in it — instead of (or besides) a name.

SEEM takes a region of another image as a prompt; SegGPT segments whatever an (image, mask) pair shows. In groupseg
both are an :class:`Exemplar`, whose embedding lives in the space of the text class embeddings, so that every
consumer of a class-embedding matrix (the zero-shot head, mmseg evaluation, overlays, prompt tools) works unchanged:

1. the exemplar image goes through the image tower, as a target image would (same normalisation; resized with the
   same keep-ratio rule when a ``scale`` is given);
2. the chained soft assignments of its patches to the final groups are upsampled to the image size, as the head
   does: ``S[g, p]``, each pixel's weights summing to 1 (``coverage="soft"``, the default); ``"hard"`` gives each
   pixel wholly to its arg-max group instead, the head's own pixel → group rule;
3. the exemplar embedding is the L2-normalised sum of the (normalised) group embeddings, each weighted by how much of
   that group the mask covers: ``w_g = Σ_p mask[p] S[g, p] / Σ_p S[g, p]``.

Why this weight: a group wholly inside the mask counts fully, a group that only touches it (a background group
under an antialiased edge) counts in proportion, and a group that lies elsewhere does not count, so the embedding is
that of the segments the mask shows, however large each is. Why soft by default: on the synthetic world's dev split
the soft weights gave the better classes wherever the two differed by more than a point (shape kinds: 1-shot
FG-IoU 25 vs 18, 5-shot 45 vs 32; one exemplar per class as a vocabulary: 21 vs 17 mIoU, colours 73 vs 68), and
within two points otherwise; a pixel an untrained or uncertain grouping shares between segments then counts for
each as much as the grouping says (docs/exemplars.md).
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Literal, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..zeroshot.head import group_maps
from ..zeroshot.single_image import IMAGENET_MEAN, IMAGENET_STD, ImageLike, load_rgb

MaskLike = Union[str, os.PathLike, Image.Image, np.ndarray]
Coverage = Literal["hard", "soft"]
COVERAGES = ("hard", "soft")
VOID_ID = 255  # VOC's "ignore" beside other ids; alone, the foreground of a 0/255 mask
DEFAULT_COVERAGE: Coverage = "soft"


class ExemplarError(ValueError):
    """An exemplar that cannot be used: unreadable files, a mask that does not fit its image, or no pixels."""


def _source(value: Any) -> tuple[str, Any]:
    """What identifies an image or mask: its resolved path, or (for in-memory arrays) the object itself."""
    if isinstance(value, (str, os.PathLike)):
        return ("path", str(Path(value).resolve()))
    return ("object", id(value))


@dataclass(frozen=True, eq=False)
class Exemplar:
    """One example of a class: ``image`` (path / PIL / numpy RGB) and ``mask`` of the class in it.

    ``mask``: a path (a label PNG: palette or grayscale) or an array, either boolean or a label map. With ``mask_id``
    the class is the pixels equal to it (one id of a label PNG with several classes); without, the mask must hold one
    label besides 0 (a binary 0/1 or 0/255 mask) and its non-zero pixels are the class; beside one other id, 255 is
    VOC's "ignore" (a void border) and that id is the class.
    The files are read and checked when the exemplar is made: a bad one fails at once, with one line.
    """

    name: str
    image: ImageLike
    mask: MaskLike
    mask_id: int | None = None
    _pixels: tuple[np.ndarray, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ExemplarError(f"an exemplar needs a class name, got {self.name!r}")
        object.__setattr__(self, "name", " ".join(self.name.split()))
        integer = isinstance(self.mask_id, (int, np.integer)) and not isinstance(self.mask_id, bool)
        if self.mask_id is not None and not integer:
            raise ExemplarError(f"exemplar {self.name!r}: mask_id must be an integer label, got {self.mask_id!r}")
        object.__setattr__(self, "_pixels", self._load())

    @property
    def rgb(self) -> np.ndarray:
        """``[H, W, 3]`` uint8 RGB exemplar image."""
        return self._pixels[0]

    @property
    def foreground(self) -> np.ndarray:
        """``[H, W]`` bool: the class's pixels."""
        return self._pixels[1]

    def to_entry(self) -> str | "Exemplar":
        """The vocabulary entry that reads back as this exemplar: ``name: exemplar=IMAGE mask=MASK [id=N]`` with
        absolute paths when image and mask are files, else the exemplar itself (arrays have no text form)."""
        if not all(isinstance(v, (str, os.PathLike)) for v in (self.image, self.mask)):
            return self
        parts = [f"exemplar={shlex.quote(_source(self.image)[1])}", f"mask={shlex.quote(_source(self.mask)[1])}"]
        if self.mask_id is not None:
            parts.append(f"id={int(self.mask_id)}")
        return f"{self.name}: {' '.join(parts)}"

    def __repr__(self) -> str:
        def shown(value: Any) -> str:
            if isinstance(value, (str, os.PathLike)):
                return repr(str(value))
            return f"<{type(value).__name__} {'×'.join(str(n) for n in np.asarray(value).shape[:2][::-1])}>"

        mask_id = "" if self.mask_id is None else f", mask_id={self.mask_id}"
        return f"Exemplar({self.name!r}, {shown(self.image)}, {shown(self.mask)}{mask_id})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Exemplar):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    @cached_property
    def _key(self) -> tuple:
        return (self.name, _source(self.image), _source(self.mask), self.mask_id)

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        what = f"exemplar {self.name!r}"
        try:
            rgb = load_rgb(self.image)
        except ValueError as err:
            raise ExemplarError(f"{what}: {err}") from None
        labels = read_mask(self.mask, what)
        mask_name = f"mask {self.mask}" if isinstance(self.mask, (str, os.PathLike)) else "the mask"
        if labels.shape != rgb.shape[:2]:
            turned = labels.shape == rgb.shape[1::-1] and _exif_turned(self.image)
            hint = " (upright, as its EXIF orientation shows it: draw the mask on the image as shown)" if turned else ""
            raise ExemplarError(
                f"{what}: {mask_name} is {labels.shape[1]}×{labels.shape[0]} but the image is "
                f"{rgb.shape[1]}×{rgb.shape[0]}{hint}; the mask must have the image's size"
            )  # fmt: skip
        if labels.dtype == bool:
            if self.mask_id is not None and self.mask_id not in (0, 1):
                raise ExemplarError(f"{what}: {mask_name} is boolean, it has no id {self.mask_id}")
            foreground = labels if self.mask_id in (None, 1) else ~labels
        elif self.mask_id is not None:
            foreground = labels == self.mask_id
            if not foreground.any():
                ids = ", ".join(str(int(i)) for i in np.unique(labels)[:20])
                raise ExemplarError(f"{what}: {mask_name} has no pixels with id {self.mask_id} (its ids: {ids})")
        else:
            ids = mask_ids(labels)
            if len(ids) > 1:
                shown = ", ".join(str(i) for i in ids[:20])
                soft = " (a soft 0-255 mask? threshold it first, e.g. mask >= 128)" if len(ids) >= 10 else ""
                raise ExemplarError(
                    f"{what}: {mask_name} holds several labels ({shown}); choose one with mask_id= "
                    f"(id=N in a vocabulary){soft}"
                )  # fmt: skip
            foreground = labels == ids[0] if len(ids) else np.zeros(labels.shape, bool)
        if not foreground.any():
            raise ExemplarError(f"{what}: {mask_name} is empty (no foreground pixels)")
        return rgb, np.ascontiguousarray(foreground)


def _exif_turned(image: ImageLike) -> bool:
    """Whether an image file's EXIF orientation swaps its width and height (read upright by :func:`load_rgb`)."""
    if not isinstance(image, (str, os.PathLike)):
        return False
    try:
        with Image.open(image) as opened:
            return opened.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except OSError:
        return False


def mask_ids(labels: np.ndarray) -> list[int]:
    """The class ids a label map holds: its non-zero ids, VOC's 255 (a void border) left out beside others; ``[1]``
    for a boolean mask."""
    if labels.dtype == bool:
        return [1] if labels.any() else []
    ids = [int(i) for i in np.unique(labels) if i != 0]
    return [i for i in ids if i != VOID_ID] if len(ids) > 1 else ids


def read_mask(mask: MaskLike, what: str = "exemplar") -> np.ndarray:
    """A mask as an ``[H, W]`` bool or integer label array (palette PNGs give their indices, as in VOC; a mask with
    alpha is 0 where transparent); :class:`ExemplarError` (one line, starting with ``what``) when it cannot be read or
    is not a mask."""
    if isinstance(mask, (str, os.PathLike)):
        try:
            with Image.open(mask) as opened:
                opened.load()
                mask = opened.copy()
        except (FileNotFoundError, UnidentifiedImageError, OSError) as err:
            raise ExemplarError(f"{what}: cannot read mask {mask}: {err}") from None
    if isinstance(mask, Image.Image):
        if mask.mode not in ("1", "P", "L", "I", "RGB", "RGBA", "LA", "PA") and not mask.mode.startswith("I;16"):
            mask = mask.convert("RGB")  # CMYK, YCbCr ...: colour, refused below
        mask = np.asarray(mask, dtype=bool) if mask.mode == "1" else np.asarray(mask)  # P: the palette indices
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[2] in (2, 4):  # LA / PA / RGBA: the transparent pixels are unlabelled (0),
        array = np.where(array[..., -1:] > 0, array[..., :-1], 0)  # whatever colour they keep, as they are shown
    if array.ndim == 3:
        if not (array == array[..., :1]).all():
            raise ExemplarError(f"{what}: the mask is a colour image; give a label PNG (palette or grayscale) or a "
                                "boolean array")  # fmt: skip
        array = array[..., 0]
    if array.ndim != 2 or min(array.shape) == 0:
        raise ExemplarError(f"{what}: a mask must be a 2-D array, got shape {array.shape}")
    if array.dtype != bool and not np.issubdtype(array.dtype, np.integer):
        raise ExemplarError(f"{what}: a mask must be boolean or an integer label map, got {array.dtype}")
    return array


# -- embeddings -----------------------------------------------------------------------------------------------------
def pool_groups(group_embeds: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[D]`` normalised pool of ``group_embeds [G, D]`` weighted by the share of each group's pixels (``maps
    [G, H, W]``, one-hot or soft) that lie under ``mask [H, W]``: ``w_g = |mask ∩ group g| / |group g|``."""
    maps = maps.to(group_embeds.dtype)
    inside = (maps * mask.to(maps.dtype)).sum(dim=(1, 2))
    weights = inside / maps.sum(dim=(1, 2)).clamp_min(torch.finfo(maps.dtype).tiny)
    return F.normalize(weights @ group_embeds, dim=-1)


def _network_input(rgb: np.ndarray, scale: tuple[int, int] | None) -> torch.Tensor:
    """``[3, h, w]`` normalised tensor, resized as mmseg's test pipeline does (``Resize(scale, keep_ratio=True)``)."""
    if scale is not None:
        from mmcv.transforms import Resize

        rgb = Resize(scale=tuple(scale), keep_ratio=True)(dict(img=rgb))["img"]
    pixels = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float()  # a copy: images read from files are read-only
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (pixels - mean) / std


@torch.no_grad()
def exemplar_embeddings(
    model,
    exemplars: Sequence[Exemplar],
    *,
    scale: tuple[int, int] | None = None,
    coverage: Coverage = DEFAULT_COVERAGE,
    forward_image: Callable[[torch.Tensor], Any] | None = None,
    batch_size: int = 16,
) -> torch.Tensor:
    """``[N, D]`` normalised embeddings of ``exemplars`` (module docstring), in the text class embeddings' space.

    ``scale``: ``(long, short)`` bound of mmseg's keep-ratio ``Resize`` applied to each exemplar image before the
    tower (``None``: its own size; use the resize the target images get). ``forward_image``: the image tower to run
    (default ``model.forward_image``; the mmseg segmentor passes its own, with its precision). Images of one size run
    as one batch.
    """
    if coverage not in COVERAGES:
        raise ValueError(f"coverage must be one of {COVERAGES}, got {coverage!r}")
    forward_image = forward_image or model.forward_image
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # the projection head has BatchNorm: use its running statistics, as for text
    try:
        inputs = [_network_input(e.rgb, scale) for e in exemplars]
        out = [None] * len(exemplars)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(inputs):
            by_shape.setdefault(tuple(x.shape), []).append(i)
        for indices in by_shape.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                tower = forward_image(torch.stack([inputs[i] for i in chunk]).to(device))
                soft = [a.soft.float() for a in tower.vision.assignments]
                for row, i in enumerate(chunk):
                    mask = torch.tensor(exemplars[i].foreground, device=device)
                    maps = group_maps([s[row : row + 1] for s in soft], tower.vision.grid, tuple(mask.shape))[0]
                    if coverage == "hard":  # the head's rule: each pixel belongs to its arg-max group
                        maps = F.one_hot(maps.max(dim=0).indices, maps.shape[0]).permute(2, 0, 1)
                    out[i] = pool_groups(tower.group_embeds[row].float(), maps, mask)
    finally:
        model.train(was_training)
    if not exemplars:
        return torch.zeros(0, model.config.embed_dim, device=device)
    return torch.stack(out)
