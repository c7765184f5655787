"""The demo's modes as plain functions of explicit inputs (image, vocabulary, points, box, exemplar mask) → ``Answer``.

The page (:mod:`groupseg.app.page`) and scripts (``gradio_client``) call these; nothing here imports Gradio, so the
handlers are tested without a browser. Bad input raises :class:`AppInputError` with a one-line message, which the page
shows as a notice.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal, Sequence

import numpy as np

from ..models import GroupViT
from ..zeroshot.single_image import ImageLike, ZeroShotSegmenter, load_rgb
from ..zeroshot.vocabulary import BACKGROUND, VocabularyError, parse_vocabulary
from .answer import Answer, Prompts, Region, label_regions, paint

Progress = Callable[[float, str], None]  # (fraction done, what is happening)
BgScore = Literal["probability", "cosine"]
InferenceMode = Literal["whole", "slide"]


class AppInputError(ValueError):
    """Input the demo cannot use (no image, empty vocabulary, a point outside the image ...): a one-line message."""


@dataclass(frozen=True)
class Settings:
    """The zero-shot head's settings a page opens with (the user can change each)."""

    bg_score: BgScore = "probability"
    bg_thresh: float = 0.95
    mode: InferenceMode = "whole"
    short_side: int = 448


OFFICIAL = Settings()  # GroupViT's protocol for real photographs (VOC / COCO-Object threshold; whole image)
# the synthetic world's test protocol (configs/synthetic/zeroshot_synthetic*.py): whole image at its native size,
# background where a segment's best cosine similarity to the prompts is below 0.4 (the page takes any vocabulary: a
# threshold between the evaluation configs' 0.45 for shape kinds and 0.35 for colours)
SYNTHETIC = Settings(bg_score="cosine", bg_thresh=0.4, mode="whole", short_side=32)


def settings_for(model: GroupViT) -> Settings:
    """Synthetic-world models (trained on images of at most 64 px) get the synthetic protocol at their training size,
    others GroupViT's official one."""
    size = model.config.image_size
    return replace(SYNTHETIC, short_side=size) if size <= 64 else OFFICIAL


class Handlers:
    """One loaded model behind every mode; text embeddings and the predictor's per-image pass are cached."""

    def __init__(self, model: GroupViT, settings: Settings | None = None):
        self.model = model.eval()
        self.settings = settings or settings_for(model)
        self._lock = threading.Lock()  # one model, requests from several page events: one at a time
        self._segmenters: OrderedDict[tuple, ZeroShotSegmenter] = OrderedDict()
        self._predictor = None  # GroupPredictor, kept with the last image it grouped
        self._predictor_image: str | None = None
        self._generator = None  # GroupMaskGenerator

    # -- label the whole image: the zero-shot head --------------------------------------------------------------------
    def labels(
        self,
        image: ImageLike | None,
        vocabulary: str | Sequence[str] | None,
        *,
        bg_thresh: float | None = None,
        bg_score: BgScore | None = None,
        mode: InferenceMode | None = None,
        short_side: int | None = None,
        progress: Progress | None = None,
    ) -> Answer:
        """Every pixel gets a label of ``vocabulary`` or background (the official GroupViT head)."""
        rgb = read_image(image)
        classes = read_vocabulary(vocabulary)
        return self._zero_shot(rgb, classes, None, bg_thresh, bg_score, mode, short_side, progress)

    # -- click points and draw a box: the predictor ------------------------------------------------------------------
    def prompt(
        self,
        image: ImageLike | None,
        points: str | Sequence[Sequence[float]] | None = None,
        box: str | Sequence[float] | None = None,
        *,
        text: str | None = None,
        multimask: bool = True,
        progress: Progress | None = None,
    ) -> Answer:
        """SAM's interactive prompts: points ``[[x, y, 1 | 0], ...]`` (1 positive, 0 negative) and / or a box
        ``[x0, y0, x1, y1]`` in the image's pixel coordinates, optionally a text prompt. The best mask is shown; with
        ``multimask`` the download also holds the other granularities, each with its score."""
        rgb = read_image(image)
        coords = read_points(points, rgb.shape[:2])
        xyxy = read_box(box, rgb.shape[:2])
        text = (text or "").strip() or None
        if not coords and xyxy is None and text is None:
            raise AppInputError("give at least one point, a box or a text prompt (click on the image to add points)")
        predictor_class = _optional("groupseg.prompts.predictor", "GroupPredictor", "clicks and boxes")
        with self._lock:
            key = _image_key(rgb)
            if self._predictor is None:
                self._predictor = predictor_class(self.model, short_side=self.settings.short_side)
            if self._predictor_image != key:
                _report(progress, 0.2, "grouping the image (once per image)")
                self._predictor.set_image(rgb)
                self._predictor_image = key
            _report(progress, 0.7, "selecting the masks")
            try:
                masks, scores = self._predictor.predict(
                    point_coords=[p[:2] for p in coords] or None, point_labels=[p[2] for p in coords] or None,
                    box=list(xyxy) if xyxy is not None else None, text=text, multimask_output=multimask,
                )  # fmt: skip
            except (ValueError, VocabularyError) as err:
                raise AppInputError(str(err)) from err
        masks, scores = np.asarray(masks, bool), np.asarray(scores, np.float64).reshape(-1)
        regions = [Region(mask=m, label=1, score=float(s)) for m, s in zip(masks, scores)]
        labels = regions[0].mask.astype(np.int64) if regions else np.zeros(rgb.shape[:2], np.int64)
        names = (BACKGROUND, text or "mask")
        return Answer(image=rgb, labels=labels, names=names, regions=regions, prompts=Prompts(coords, xyxy))

    # -- segment everything: the mask generator ---------------------------------------------------------------------
    def everything(
        self,
        image: ImageLike | None,
        vocabulary: str | Sequence[str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> Answer:
        """Every mask proposal of the image (SAM's automatic mask generator); each one labelled when a vocabulary is
        given (regions coloured by label), else coloured one by one."""
        rgb = read_image(image)
        given = vocabulary.strip() if isinstance(vocabulary, str) else vocabulary
        vocab = parse_vocabulary(read_vocabulary(given), add_background=True) if given else None
        generator_class = _optional("groupseg.prompts.automatic_mask_generator", "GroupMaskGenerator",
                                    "segment everything")  # fmt: skip
        _report(progress, 0.3, "proposing masks from every grouping stage")
        s = self.settings
        with self._lock:
            if self._generator is None:
                self._generator = generator_class(self.model, short_side=s.short_side, bg_thresh=s.bg_thresh,
                                                  bg_score=s.bg_score)  # fmt: skip
            try:
                records = self._generator.generate(rgb, vocabulary=vocab)
            except (ValueError, VocabularyError) as err:
                raise AppInputError(str(err)) from err
        if vocab is not None:  # coloured by label; the download keeps every mask with its label score
            names = vocab.names
            regions = [Region(mask=_decode(r["segmentation"]), label=names.index(r["label"]),
                              score=float(r["label_score"])) for r in records]  # fmt: skip
        else:
            names = (BACKGROUND, *(f"mask {k}" for k in range(1, len(records) + 1)))
            regions = [Region(mask=_decode(r["segmentation"]), label=k, score=float(r["predicted_iou"]))
                       for k, r in enumerate(records, 1)]  # fmt: skip
        return Answer(image=rgb, labels=paint(rgb.shape[:2], regions), names=tuple(names), regions=regions)

    # -- exemplar: a painted region of a second image defines a class ------------------------------------------------
    def exemplar(
        self,
        image: ImageLike | None,
        exemplar_image: ImageLike | None,
        exemplar_mask: ImageLike | np.ndarray | None,
        *,
        name: str = "exemplar",
        vocabulary: str | Sequence[str] | None = None,
        bg_thresh: float | None = None,
        bg_score: BgScore | None = None,
        mode: InferenceMode | None = None,
        short_side: int | None = None,
        progress: Progress | None = None,
    ) -> Answer:
        """Label the whole image with a class defined by example: ``exemplar_mask`` (non-zero = the class) painted on
        ``exemplar_image``, beside the text classes of ``vocabulary`` (optional)."""
        rgb = read_image(image)
        support = read_image(exemplar_image, what="exemplar image")
        mask = read_mask(exemplar_mask, support.shape[:2])
        name = " ".join((name or "").split()) or "exemplar"
        exemplar_class = _optional("groupseg.prompts.exemplars", "Exemplar", "exemplars")
        exemplar_error = _optional("groupseg.prompts.exemplars", "ExemplarError", "exemplars")
        given = vocabulary.strip() if isinstance(vocabulary, str) else vocabulary
        entries, templates = [], None
        if given:
            vocab = parse_vocabulary(read_vocabulary(given), add_background=True)
            entries, templates = list(vocab.to_config()["classes"]), vocab.templates
        if not [e for e in entries if e != BACKGROUND] and (bg_score or self.settings.bg_score) == "probability":
            raise AppInputError("an exemplar class alone needs the cosine background rule (a softmax over one class "
                                "is always 1): choose 'cosine', or keep the vocabulary's classes")  # fmt: skip
        try:
            classes = [*entries, exemplar_class(name, support, mask)]
        except exemplar_error as err:
            raise AppInputError(str(err)) from err
        return self._zero_shot(rgb, classes, templates, bg_thresh, bg_score, mode, short_side, progress)

    # -- shared ------------------------------------------------------------------------------------------------------
    def _zero_shot(self, rgb, classes, templates, bg_thresh, bg_score, mode, short_side, progress) -> Answer:
        s = self.settings
        bg_thresh = s.bg_thresh if bg_thresh is None else float(bg_thresh)
        bg_score, mode = bg_score or s.bg_score, mode or s.mode
        short_side = int(short_side or s.short_side)
        if bg_score not in ("probability", "cosine") or mode not in ("whole", "slide"):
            raise AppInputError(f"unknown background rule {bg_score!r} or mode {mode!r}")
        if short_side < 8:
            raise AppInputError(f"short side {short_side} is too small (at least 8 pixels)")
        with self._lock:
            _report(progress, 0.1, "embedding the vocabulary")
            segmenter = self._segmenter(classes, templates, short_side)
            segmenter.segmentor.test_cfg.update(  # mmseg reads its test_cfg at each call
                bg_thresh=bg_thresh, bg_score=bg_score, mode=mode, crop_size=(short_side,) * 2,
                stride=(max(1, short_side // 2),) * 2,
            )  # fmt: skip
            _report(progress, 0.4, "grouping and labelling the image")
            result = segmenter(rgb)
        regions = label_regions(result.labels, result.scores)
        return Answer(image=rgb, labels=result.labels, names=result.classes, regions=regions)

    def _segmenter(self, classes, templates, short_side: int) -> ZeroShotSegmenter:
        key = (_classes_key(classes), tuple(templates or ()), short_side)
        if key in self._segmenters:
            self._segmenters.move_to_end(key)
            return self._segmenters[key]
        try:
            segmenter = ZeroShotSegmenter(self.model, classes, templates=templates, short_side=short_side,
                                          crop_size=short_side, stride=max(1, short_side // 2))  # fmt: skip
        except (VocabularyError, ValueError) as err:
            raise AppInputError(str(err)) from err
        self._segmenters[key] = segmenter
        while len(self._segmenters) > 4:
            self._segmenters.popitem(last=False)
        return segmenter


# -- reading the inputs -----------------------------------------------------------------------------------------------
def read_image(image: ImageLike | None, what: str = "image") -> np.ndarray:
    if image is None or (isinstance(image, str) and not image.strip()):
        raise AppInputError(f"no {what}: upload one or pick an example")
    try:
        return load_rgb(image)
    except ValueError as err:
        raise AppInputError(f"cannot read the {what}: {err}") from err


def read_vocabulary(vocabulary: str | Sequence[str] | None) -> str:
    """The vocabulary box (the documented syntax of :mod:`groupseg.zeroshot.vocabulary`: one entry a line, or
    ``"cat, dog"`` / ``"person: man, woman; cat"`` on one line) or a list of entries → the file syntax as text, checked.

    Typed text is never taken for a file name: a page must not read the server's files.
    """
    if vocabulary is not None and not isinstance(vocabulary, str):
        vocabulary = "\n".join(vocabulary)
    text = (vocabulary or "").strip()
    if not text:
        raise AppInputError("the vocabulary is empty: type class names (one a line, or 'cat, dog') or pick a preset")
    if any(entry.partition(":")[2].strip().startswith("exemplar=") for entry in text.replace(";", "\n").splitlines()):
        raise AppInputError("the vocabulary box takes names, not files: give an exemplar in the Exemplar tab")
    if "\n" not in text:  # the one-line forms, split here so that parse_vocabulary never looks for a file
        if ";" not in text and ":" in text:
            raise AppInputError(f"cannot tell classes from synonyms in {text!r}: separate classes with ';' "
                                "(e.g. 'person: man, woman; cat') or write one class a line")  # fmt: skip
        text = "\n".join(part.strip() for part in text.split(";" if ";" in text else ","))
    text += "\n"
    try:
        parse_vocabulary(text, add_background=True)
    except VocabularyError as err:
        raise AppInputError(str(err)) from err
    return text


def read_points(
    points: str | Sequence[Sequence[float]] | None, shape: tuple[int, int]
) -> list[tuple[float, float, int]]:
    """``"x,y,1; x,y,0"``, its JSON form ``[[x, y, 1], ...]`` or a list → ``[(x, y, label)]``, each inside the image."""
    rows = _numbers(points, "points")
    height, width = shape
    out = []
    for row in rows:
        if len(row) != 3 or row[2] not in (0, 1):
            raise AppInputError(f"a point is x, y, label (1 positive, 0 negative); got {row}")
        x, y = float(row[0]), float(row[1])
        if not (0 <= x < width and 0 <= y < height):
            raise AppInputError(f"point ({x:g}, {y:g}) is outside the {width}×{height} image")
        out.append((x, y, int(row[2])))
    return out


def read_box(box: str | Sequence[float] | None, shape: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """``"x0, y0, x1, y1"`` (or a list) in pixels → a box clipped to the image, refused when empty."""
    rows = _numbers(box, "box")
    if not rows:
        return None
    if len(rows) > 1:
        raise AppInputError(f"give one box, not {len(rows)}")
    values = rows[0]
    if len(values) != 4:
        raise AppInputError(f"a box is x0, y0, x1, y1; got {values}")
    height, width = shape
    x0, x1 = sorted((min(max(values[0], 0), width), min(max(values[2], 0), width)))
    y0, y1 = sorted((min(max(values[1], 0), height), min(max(values[3], 0), height)))
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise AppInputError(f"the box {values} covers no pixel of the {width}×{height} image")
    return (x0, y0, x1, y1)


def read_mask(mask: ImageLike | np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """A painted mask (non-zero or opaque pixels = the region) → ``[H, W]`` bool of the exemplar image's size."""
    if mask is None:
        raise AppInputError("no exemplar mask: paint the region on the exemplar image")
    if isinstance(mask, np.ndarray) and mask.dtype == bool:
        array = mask
    else:
        from PIL import Image

        try:
            picture = Image.open(mask) if isinstance(mask, (str, os.PathLike)) else None
        except OSError as err:
            raise AppInputError(f"cannot read the exemplar mask: {err}") from err
        array = np.asarray(picture if picture is not None else mask)
        if array.ndim == 3:  # RGBA / LA paint layer: the opaque pixels; RGB: any non-black pixel
            array = array[..., -1] if array.shape[2] in (2, 4) else array.max(axis=2)
        array = array > 0
    if array.shape != tuple(shape):
        raise AppInputError(f"the exemplar mask is {array.shape[1]}×{array.shape[0]}, its image {shape[1]}×{shape[0]}")
    if not array.any():
        raise AppInputError("the exemplar mask is empty: paint the region that shows the class")
    return array


def _numbers(value: Any, what: str) -> list[list[float]]:
    """``"1,2,3; 4,5,6"``, ``"[[1,2,3]]"``, ``[[1, 2, 3]]`` or ``[1, 2, 3]`` → rows of numbers."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.startswith("["):
                value = json.loads(text)
            else:
                value = [row.split(",") for row in text.split(";") if row.strip()]
        except json.JSONDecodeError as err:
            raise AppInputError(f"cannot read the {what} {text!r}: {err.msg}") from err
    rows = list(value)
    if rows and not isinstance(rows[0], (list, tuple, np.ndarray)):
        rows = [rows]  # one flat row: a single point or box
    try:
        return [[float(v) for v in row] for row in rows]
    except (TypeError, ValueError) as err:
        raise AppInputError(f"cannot read the {what} {value!r}: numbers expected") from err


def _decode(segmentation: Any) -> np.ndarray:
    if isinstance(segmentation, dict):  # COCO RLE
        from pycocotools import mask as mask_utils

        return mask_utils.decode(segmentation).astype(bool)
    return np.asarray(segmentation, bool)


def _image_key(rgb: np.ndarray) -> str:
    return hashlib.sha1(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()


def _classes_key(classes: Any) -> Any:
    if isinstance(classes, str):
        return classes
    return tuple(c if isinstance(c, str) else ("exemplar", id(c)) for c in classes)


def _optional(module: str, name: str, mode: str):
    """A class from the promptable-masks / exemplar work, or a clear notice when this checkout does not have it."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise AppInputError(f"{mode} needs {module}.{name}, which this checkout of groupseg does not have") from err


def _report(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)
