"""Few-shot segmentation datasets in their published layouts: FSS-1000, COCO-20i, and PASCAL VOC-layout folders
(PASCAL-5i, the synthetic world's ``val/`` and ``support/``).

Each reader gives ``items()`` (class → keys of the images holding it), ``image(key)`` (RGB uint8),
``mask(key, class)`` (boolean foreground and boolean ignore mask, or ``None``) and ``class_name(class)``; episodes are
drawn by
:func:`groupseg.metrics.few_shot.sample_episodes`.

- **FSS-1000** (Li et al., CVPR 2020): ``ROOT/<class>/<n>.jpg`` with ``<n>.png`` (0/255 masks, RGB or L, thresholded
  at 128 as HSNet does; 0/1 masks are read as 0/1; a mask of another size than its image is stretched to it). Stray
  ``<n>.jpeg`` files (unannotated, in a few classes) are not read. The 240 test classes are those of a split file (one
  class folder name a line, e.g. HSNet's ``data/splits/fss/test.txt``); without one, every class folder is used.
- **COCO-20i** (Nguyen & Todorovic, ICCV 2019): COCO 2014 (``ROOT/annotations/instances_val2014.json`` and
  ``ROOT/val2014/``; HSNet's ``COCO2014/`` folder holds both) read with pycocotools; the 80 categories in id order,
  fold ``i`` = the categories whose index is ``i`` mod 4 (PFENet's ``use_split_coco`` and HSNet's split); a class's
  mask is the union of all its instance masks (crowds included) in the image; images where that mask has fewer
  than 2·32·32 pixels are left out (PFENet's rule: overlapping instances count once), or HSNet's pickled lists are
  read instead.

Images are read as stored (no EXIF rotation), the frame the masks are drawn in.
- **VOC layout**: ``JPEGImages/<name>.jpg`` and ``<masks>/<name>.png`` label PNGs (255 ignored), classes named by a
  vocabulary file whose line ``i`` is label ``i`` (``background`` first); ``fold`` keeps PASCAL-5i's labels
  ``5·fold + 1 … 5·fold + 5``, and ``image_list`` its VOC2012 val images (``SegmentationClassAug`` holds SBD's
  training images too).
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Sequence, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from .images import eight_bit


class FewShotDatasetError(FileNotFoundError):
    """A dataset folder that does not hold the layout it should."""


def _read_label_png(path: Path) -> np.ndarray:
    with Image.open(path) as opened:
        return np.asarray(opened if opened.mode in ("P", "L", "I", "I;16") else opened.convert("L"))


def _read_rgb(path: Path) -> np.ndarray:
    """The stored pixels as RGB, EXIF orientation not applied: the datasets' masks and COCO's polygons are drawn on
    them (HSNet reads them so too); a rotated image would no longer fit its mask."""
    try:
        with Image.open(path) as opened:
            return np.asarray(eight_bit(opened).convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


def _image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, from its header."""
    with Image.open(path) as opened:
        return opened.height, opened.width


class FSS1000:
    def __init__(self, root: str | os.PathLike, classes: Sequence[str] | str | os.PathLike | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FewShotDatasetError(f"FSS-1000 folder {self.root} does not exist")
        if isinstance(classes, (str, os.PathLike)):
            split = Path(classes)
            if not split.is_file():
                raise FewShotDatasetError(f"FSS-1000 split file {split} does not exist")
            classes = [line.strip() for line in split.read_text().splitlines() if line.strip()]
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir()) if classes is None else list(classes)
        self._items: dict[str, list[tuple[str, str]]] = {}
        for name in names:
            folder = self.root / name
            if not folder.is_dir():
                raise FewShotDatasetError(f"FSS-1000 class folder {folder} does not exist")
            stems = sorted((p.stem for p in folder.glob("*.jpg") if p.with_suffix(".png").is_file()),
                           key=lambda s: (len(s), s))  # fmt: skip
            if stems:
                self._items[name] = [(name, stem) for stem in stems]
        if not self._items:
            raise FewShotDatasetError(f"no FSS-1000 class folders with N.jpg + N.png pairs in {self.root}")

    def items(self) -> dict[str, list[tuple[str, str]]]:
        return self._items

    def image(self, key: tuple[str, str]) -> np.ndarray:
        return _read_rgb(self.root / key[0] / f"{key[1]}.jpg")

    def mask(self, key: tuple[str, str], category: str) -> tuple[np.ndarray, None]:
        """0/255 masks thresholded at 128 (HSNet's rule; RGB or L PNGs, antialiased edges); a mask whose values are
        at most 1 (0/1, or palette indices 0/1) is its non-zero pixels: thresholding it at 128 would empty it.
        A mask of another size than its image (a few in FSS-1000's test classes: crt_screen/6, screw/8, ...) is
        stretched to the image, nearest neighbour, as HSNet's resize of both to one size does."""
        values = _read_label_png(self.root / key[0] / f"{key[1]}.png")
        mask = values >= 128 if values.max(initial=0) > 1 else values > 0
        height, width = _image_size(self.root / key[0] / f"{key[1]}.jpg")
        if mask.shape != (height, width):
            mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST))
        return mask, None

    def class_name(self, category: str) -> str:
        return category.replace("_", " ")


PFENET_MIN_AREA = 2 * 32 * 32  # PFENet's rule: a class counts in an image when it covers at least this many pixels


class COCO20i:
    """COCO-20i from COCO 2014's instance annotations. An image holds a class when the class's mask (the union of its
    instance masks, crowds included: what :meth:`mask` returns) covers at least ``min_area`` pixels: PFENet keeps a
    class of an image when its label map has ≥ 2·32·32 pixels of it, a union, so overlapping instances count once
    (HSNet's lists are a subset too: 19,217 images for person in fold 0); a query or support is never a speck that
    rasterises to no pixels. Only the fold's (class, image) pairs whose annotations' ``area``s sum to ``min_area`` or
    more are rasterised (a union is never larger than the sum), as run-length masks, not decoded. A polygon's ``area``
    is the polygon's, and its pixels can exceed it by a few along the boundary: a pair whose areas sum just below
    ``min_area`` is left out without being rasterised. ``split_file``: HSNet's ``data/splits/coco/val/fold<i>.pkl``
    (class index → image paths) instead, for HSNet's exact lists."""

    def __init__(
        self, root: str | os.PathLike, fold: int, split: str = "val2014", folds: int = 4,
        min_area: float = PFENET_MIN_AREA, split_file: str | os.PathLike | None = None,
    ):  # fmt: skip
        from pycocotools.coco import COCO

        self.root = Path(root)
        self.images = self.root / split
        ann_file = self.root / "annotations" / f"instances_{split}.json"
        for path in (ann_file, self.images):
            if not path.exists():
                raise FewShotDatasetError(f"COCO-20i needs {path} (COCO 2014 layout)")
        if not 0 <= fold < folds:
            raise ValueError(f"fold must be in 0..{folds - 1}, got {fold}")
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            self.coco = COCO(str(ann_file))
        categories = sorted(self.coco.getCatIds())
        self.fold_classes = [c for rank, c in enumerate(categories) if rank % folds == fold]
        if split_file is not None:
            self._items = self._hsnet_lists(Path(split_file), categories)
            return
        anns: dict[tuple[int, int], list[dict]] = {}  # (class, image) → its annotations, the fold's classes only
        fold_classes = set(self.fold_classes)
        for ann in self.coco.anns.values():
            if ann["category_id"] in fold_classes:
                anns.setdefault((ann["category_id"], ann["image_id"]), []).append(ann)
        self._items = {c: [] for c in self.fold_classes}
        for (c, i), group in sorted(anns.items(), key=lambda pair: pair[0]):
            if sum(float(a.get("area", 0.0)) for a in group) < min_area:  # the union cannot reach it either
                continue
            if min_area <= 0 or self._pixels(group) >= min_area:
                self._items[c].append(i)

    def _pixels(self, anns: list[dict]) -> int:
        """Pixels of the union of ``anns``' masks (one image's), from their run-length encodings: the pixels of
        :meth:`mask`'s union of ``annToMask`` masks, without decoding them."""
        from pycocotools import mask as mask_utils

        return int(mask_utils.area(mask_utils.merge([self.coco.annToRLE(a) for a in anns], intersect=0)))

    def _hsnet_lists(self, path: Path, categories: list[int]) -> dict[int, list[int]]:
        """HSNet's pickle: class index (0-79, categories in id order) → ``'val2014/<file name>'`` of its images."""
        import pickle

        if not path.is_file():
            raise FewShotDatasetError(f"COCO-20i split file {path} does not exist")
        with open(path, "rb") as f:
            lists = pickle.load(f)
        if not isinstance(lists, dict):
            raise FewShotDatasetError(f"{path} is not HSNet's split pickle (a dict: class index → image paths)")
        by_name = {info["file_name"]: i for i, info in self.coco.imgs.items()}
        items = {}
        for c in self.fold_classes:
            names = [Path(str(n)).name for n in lists.get(categories.index(c), [])]
            missing = [n for n in names if n not in by_name]
            if missing:
                raise FewShotDatasetError(f"{path} lists {missing[0]}, which the COCO annotations do not hold")
            items[c] = sorted(by_name[n] for n in names)
        return items

    def items(self) -> dict[int, list[int]]:
        return self._items

    def image(self, key: int) -> np.ndarray:
        return _read_rgb(self.images / self.coco.loadImgs(key)[0]["file_name"])

    def mask(self, key: int, category: int) -> tuple[np.ndarray, None]:
        info = self.coco.loadImgs(key)[0]
        mask = np.zeros((info["height"], info["width"]), bool)
        for ann in self.coco.loadAnns(self.coco.getAnnIds(imgIds=key, catIds=[category], iscrowd=None)):
            mask |= self.coco.annToMask(ann).astype(bool)
        return mask, None

    def class_name(self, category: int) -> str:
        return self.coco.loadCats(category)[0]["name"]


class VOCLayout:
    """A VOC-layout folder. ``vocabulary``: a vocabulary file (a path, or a file name in ``root``) or the names
    themselves, label ``i`` first at ``i`` (``background`` first). ``image_list``: the images to read, one name a
    line (VOC's ``ImageSets/Segmentation/val.txt``, or HSNet's ``data/splits/pascal/val/fold<i>.txt`` whose
    ``name__NN`` lines also give the label): PASCAL-5i's queries are VOC2012 val images, while
    ``SegmentationClassAug`` also holds the 10,582 training images (SBD); without a list every mask PNG is read.
    ``min_area``: an image holds a class when its label map has at least this many pixels of it (PFENet's
    ``make_dataset`` keeps 2·32·32, :data:`PFENET_MIN_AREA`); not applied to ``name__NN`` lines, which name the
    pairs themselves (HSNet's lists)."""

    def __init__(
        self, root: str | os.PathLike, vocabulary: str | os.PathLike | Sequence[str], masks: str = "SegmentationClass",
        fold: int | None = None, image_list: str | os.PathLike | None = None, min_area: int = 0,
    ):  # fmt: skip
        from ..zeroshot.vocabulary import parse_vocabulary

        self.root = Path(root)
        self.mask_dir = self.root / masks
        for path in (self.root / "JPEGImages", self.mask_dir):
            if not path.is_dir():
                raise FewShotDatasetError(f"{path} does not exist (PASCAL VOC layout: JPEGImages and {masks})")
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = Path(vocabulary)
            if not vocabulary.is_file() and (self.root / vocabulary).is_file():  # a vocabulary file of the folder
                vocabulary = self.root / vocabulary
        self.names = parse_vocabulary(vocabulary).names
        folds = (len(self.names) - 1) // 5
        if fold is not None and not 0 <= fold < folds:
            raise ValueError(f"fold must be in 0..{folds - 1} ({len(self.names) - 1} classes, 5 a fold), got {fold}")
        labels = range(1, len(self.names)) if fold is None else range(5 * fold + 1, 5 * fold + 6)
        self._items: dict[int, list[str]] = {label: [] for label in labels}
        self.listed: list[tuple[int, str]] = []  # (label, image) in the image list's order: HSNet's episode order
        self.min_area = max(1, min_area)
        if image_list is None:
            for png in sorted(self.mask_dir.glob("*.png")):
                for label in self._present(png):
                    if label in self._items:
                        self._items[label].append(png.stem)
            return
        if not Path(image_list).is_file():
            raise FewShotDatasetError(f"image list {image_list} does not exist")
        for line in Path(image_list).read_text().splitlines():
            name, _, label = line.strip().partition("__")
            if not name:
                continue
            if label and not label.isdigit():
                raise FewShotDatasetError(f"{image_list}: line {line.strip()!r} is neither NAME nor NAME__LABEL")
            for path in (self.mask_dir / f"{name}.png", self.root / "JPEGImages" / f"{name}.jpg"):
                if not path.is_file():
                    raise FewShotDatasetError(f"{image_list} lists {name}, but {path} does not exist")
            for label in [int(label)] if label else self._present(self.mask_dir / f"{name}.png"):
                if label in self._items:
                    self.listed.append((label, name))
                    if name not in self._items[label]:
                        self._items[label].append(name)

    def _present(self, png: Path) -> list[int]:
        """The labels covering at least ``min_area`` pixels of a label PNG."""
        labels, counts = np.unique(_read_label_png(png), return_counts=True)
        return [int(label) for label, count in zip(labels, counts) if count >= self.min_area]

    def items(self) -> dict[int, list[str]]:
        return self._items

    def image(self, key: str) -> np.ndarray:
        return _read_rgb(self.root / "JPEGImages" / f"{key}.jpg")

    def label_map(self, key: str) -> np.ndarray:
        return _read_label_png(self.mask_dir / f"{key}.png")

    def mask(self, key: str, category: int) -> tuple[np.ndarray, np.ndarray]:
        labels = self.label_map(key)
        return labels == category, labels == 255

    def class_name(self, category: int) -> str:
        return self.names[category]


FewShotDataset = Union[FSS1000, COCO20i, VOCLayout]  # keys: (class, stem) for FSS-1000, image ids, image names
