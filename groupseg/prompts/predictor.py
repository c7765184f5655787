"""``GroupPredictor``: SAM's promptable interface (points, boxes) over GroupViT's groups, and text prompts.

    predictor = GroupPredictor(model)                       # a GroupViT or a checkpoint path
    predictor.set_image(image)                              # runs the image tower once
    masks, scores = predictor.predict(point_coords=[[x, y]], point_labels=[1])    # no network: cheap
    masks, scores = predictor.predict(box=[x0, y0, x1, y1])
    masks, scores = predictor.predict(text="red circle")

SAM's conventions: pixel coordinates (x, y) of the original image, label 1 = foreground / 0 = background, box XYXY;
``masks`` ``[C, H, W]`` bool, ``scores`` ``[C]``, best first; ``multimask_output=False`` keeps the best only.

A prompt selects units (:mod:`groupseg.prompts.units`: groups of each grouping stage and their connected pieces),
cut from the soft maps after PAMR has moved them onto the image's edges (``refine="pamr"``, the default;
:mod:`groupseg.prompts.refine`).
One candidate per unit kind, finest first (stage-1 piece, stage-1 group, ..., final piece, final group): for each
positive point the unit of that kind under it, or, if that unit holds a negative point, the coarsest finer unit that
holds none; the units lying mostly (≥ half their area) inside the box (if none, the one with the largest share
inside); minus, for each negative point, the coarsest
unit (of that kind or finer) under it that holds no positive point. So clicks refine: a later click of the other
sign splits a unit into finer ones, and below the finest unit, into the pixels whose soft assignment is nearer to
one click's than to the other's. These are the nested granularities of the
hierarchy; each is scored by its ``predicted_iou`` (agreement of the hard mask with the soft assignment map),
duplicates are dropped, and the rest come best first.

Text. With a ``vocabulary``, the text must be one of its class names and selects what the zero-shot head labels
with it: the whole concept first, then each of its pieces. Without one, any text ranks the final groups by the
cosine similarity of their embeddings to the prompt. With points or a box as well, the geometric candidates are
ranked by their similarity to the text instead.
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from ..models import GroupViT
from ..zeroshot.embeddings import class_embeddings
from ..zeroshot.head import BG_SCORES, BgScore, check_bg_thresh, group_maps, seg_logits
from ..zeroshot.single_image import IMAGENET_MEAN, IMAGENET_STD, ImageLike, load_rgb
from ..zeroshot.vocabulary import Vocabulary, VocabularySpec, parse_vocabulary
from .refine import REFINES, Refine, refine_maps
from .units import EIGHT_CONNECTED, Level, UnitKind

DEFAULT_STABILITY_OFFSET = 0.1  # margin units (the soft map's probabilities): SAM's 1.0 is in logit units
MAX_LONG_SIDE = 2048  # as mmseg's Resize(scale=(2048, short_side)) in the zero-shot pipeline


class PromptError(ValueError):
    """A prompt that cannot be used: outside the image, empty, malformed, or naming an unknown class."""


class GroupPredictor:
    """Masks from point, box and text prompts on one image at a time.

    Args:
        model: a :class:`GroupViT` or anything :func:`groupseg.load_model` reads.
        short_side: resize images so that their short side is this before the tower (e.g. 448, the official
            evaluation size for GroupViT-S); None keeps each image's own size (the synthetic world's 32 px).
        vocabulary: class names that text prompts must come from and that label masks (see
            :func:`groupseg.zeroshot.vocabulary.parse_vocabulary`); None: free text.
        bg_thresh, bg_score: the zero-shot head's background rule for a vocabulary starting with "background".
        refine: ``"pamr"`` moves the groups' soft maps onto the image's edges before masks are cut
            (:mod:`groupseg.prompts.refine`, TCL's inference setting; the tokens are 2-16 px, so an edge is otherwise
            a token off); ``"none"``: the soft maps as the tower gives them.
    """

    def __init__(
        self,
        model: GroupViT | str | os.PathLike | None,
        *,
        short_side: int | None = None,
        vocabulary: VocabularySpec | None = None,
        bg_thresh: float = 0.95,
        bg_score: BgScore = "probability",
        topk: int = 5,
        refine: Refine = "pamr",
        device: str | torch.device | None = None,
    ):
        if model is not None and not isinstance(model, GroupViT):
            from ..models.load import load_model

            model = load_model(model, device or "cpu")
        elif model is not None and device is not None:
            model = model.to(device)
        if bg_score not in BG_SCORES:
            raise ValueError(f"bg_score must be one of {BG_SCORES}, got {bg_score!r}")
        if short_side is not None and short_side < 1:
            raise ValueError(f"short_side must be a positive number of pixels, got {short_side}")
        check_bg_thresh(bg_thresh)  # as ZeroShotSegmenter: -1 or 2 used to be taken silently
        if refine not in REFINES:
            raise ValueError(f"refine must be one of {REFINES}, got {refine!r}")
        self.refine = refine
        self.model = model.eval() if model is not None else None
        self.short_side = short_side
        self.bg_thresh, self.bg_score, self.topk = bg_thresh, bg_score, topk
        self.vocabulary = parse_vocabulary(vocabulary, add_background=False) if vocabulary is not None else None
        self._class_embeds: dict[Vocabulary, torch.Tensor] = {}
        self.reset_image()

    # -- the image --------------------------------------------------------------------------------------------------
    def reset_image(self) -> None:
        self.is_image_set = False
        self.original_size: tuple[int, int] | None = None  # (H, W) of the image given
        self.input_size: tuple[int, int] | None = None  # (h, w) the tower saw; masks are computed at this size
        self.levels: list[Level] = []
        self._tower: dict | None = None  # soft assignments, grid, group and image embeddings (None without a model)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device if self.model is not None else torch.device("cpu")

    @torch.no_grad()
    def set_image(self, image: ImageLike, image_format: str = "RGB") -> None:
        """Run the image tower once and keep what prompts need: per-stage soft maps, group embeddings, sizes.
        ``image_format``: SAM's argument, "BGR" for an array in OpenCV's channel order (``cv2.imread``)."""
        if self.model is None:
            raise RuntimeError("this predictor has no model; set its groups with set_assignments(...)")
        rgb = load_image(image, image_format)
        pixels = self._preprocess(rgb)
        out = self.model.forward_image(pixels)
        self.set_assignments(
            [a.soft[0] for a in out.vision.assignments], out.vision.grid, input_size=tuple(pixels.shape[2:]),
            original_size=rgb.shape[:2], group_embeds=out.group_embeds[0], image_embeds=out.image_embeds[0],
            image=pixels if self.refine == "pamr" else None,
        )  # fmt: skip

    def set_assignments(
        self,
        soft_assignments: Sequence[torch.Tensor],
        grid: tuple[int, int],
        input_size: tuple[int, int],
        original_size: tuple[int, int] | None = None,
        group_embeds: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
    ) -> None:
        """Set the groups directly: per-stage soft assignments ``[G_out, N_in]`` over a ``grid`` of tokens, seen at
        ``input_size``; ``group_embeds [G_last, D]`` (and ``image_embeds [D]``) for text prompts and labels; with
        ``image [1, 3, *input_size]``, each stage's soft map is refined along its edges (PAMR)."""
        if not soft_assignments:
            raise ValueError("need the soft assignments of at least one grouping stage")
        self.reset_image()
        soft = [s.detach().float().cpu()[None] for s in soft_assignments]
        levels = [group_maps(soft[: k + 1], grid, input_size) for k in range(len(soft))]
        if image is not None:
            token = max(input_size[0] / grid[0], input_size[1] / grid[1])  # px of the maps a token spans
            levels = [refine_maps(image.detach().float().cpu(), maps, token) for maps in levels]
        levels = [maps[0].contiguous().numpy() for maps in levels]
        self.set_levels(levels, original_size or input_size)
        embeds = None
        if group_embeds is not None:
            group_embeds = group_embeds.detach().float().cpu()
            image_embeds = image_embeds.detach().float().cpu() if image_embeds is not None else group_embeds.mean(0)
            embeds = dict(group=group_embeds, image=torch.nn.functional.normalize(image_embeds, dim=-1))
        self._tower = dict(soft=soft, grid=tuple(grid), embeds=embeds)

    def set_levels(self, maps: Sequence[np.ndarray], original_size: tuple[int, int]) -> None:
        """Set the soft maps ``[G_k, h, w]`` of each stage directly (finest first), e.g. one-hot regions."""
        self.reset_image()
        self.levels = [Level.from_maps(m) for m in maps]
        self.input_size = tuple(int(s) for s in self.levels[0].labels.shape)
        self.original_size = (int(original_size[0]), int(original_size[1]))
        self.is_image_set = True

    def _preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        height, width = rgb.shape[:2]
        if self.short_side is not None:
            scale = min(self.short_side / min(height, width), MAX_LONG_SIDE / max(height, width))
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            if size != (width, height):
                rgb = np.array(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
        patch = self.model.config.patch_size
        if min(rgb.shape[:2]) < patch:
            raise ValueError(f"the image ({rgb.shape[1]}×{rgb.shape[0]} px) is smaller than one {patch} px patch; "
                             f"use short_side= (--short-side in the tools) to enlarge it")  # fmt: skip
        pixels = torch.from_numpy(rgb.copy()).float().permute(2, 0, 1)
        pixels = (pixels - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
        return pixels[None].to(self.device)

    # -- prompts ----------------------------------------------------------------------------------------------------
    def predict(
        self,
        point_coords: np.ndarray | Sequence[Sequence[float]] | None = None,
        point_labels: np.ndarray | Sequence[int] | None = None,
        box: np.ndarray | Sequence[float] | None = None,
        text: str | None = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(masks [C, H, W] bool, scores [C] float32)`` for the prompts, best first (C = 1 without multimask)."""
        if not self.is_image_set:
            raise RuntimeError("an image must be set with .set_image(...) before mask prediction")
        points, labels = self._check_points(point_coords, point_labels)
        window = self._check_box(box)
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise PromptError(f"a text prompt must be a non-empty string, got {text!r}")
        if points is None and window is None and text is None:
            raise PromptError("give a prompt: point_coords with point_labels, a box, or text")
        if points is not None or window is not None:
            candidates = self._geometric_candidates(points, labels, window)
            if text is not None:
                candidates = _best_first_unique([(mask, self._text_score(mask, text)) for mask, _ in candidates])
        else:
            candidates = self._text_candidates(text)
        # at the original size a unit narrower than a pixel vanishes (short_side upsamples) and two masks may become one
        shown = [(self.to_original(mask), score) for mask, score in candidates]
        shown = _best_first_unique([(mask, score) for mask, score in shown if mask.any()]) or shown[:1]
        if not multimask_output:
            shown = shown[:1]
        return np.stack([mask for mask, _ in shown]), np.array([score for _, score in shown], np.float32)

    def _check_points(self, coords, labels) -> tuple[np.ndarray | None, np.ndarray | None]:
        if coords is None and labels is None:
            return None, None
        if coords is None or labels is None:
            raise PromptError("point_coords and point_labels go together: give both or neither")
        coords = np.asarray(coords, np.float64)
        labels = np.asarray(labels)
        if coords.size == 0 and labels.size == 0:  # no clicks yet, e.g. a box alone in an interactive loop
            return None, None
        if coords.ndim == 1 and coords.size == 2:
            coords = coords[None]
        if coords.ndim != 2 or coords.shape[1] != 2 or coords.shape[0] == 0 or not np.isfinite(coords).all():
            raise PromptError(f"point_coords must be an N×2 array of (x, y) pixel coordinates, got {coords.tolist()}")
        labels = labels.reshape(-1)
        if labels.shape[0] != coords.shape[0] or not np.isin(labels, (0, 1)).all():
            raise PromptError(f"point_labels must hold one 1 (foreground) or 0 (background) per point, got "
                              f"{labels.tolist()} for {coords.shape[0]} points")  # fmt: skip
        height, width = self.original_size
        for x, y in coords:
            if not (0 <= x <= width and 0 <= y <= height):
                raise PromptError(f"point ({x:g}, {y:g}) lies outside the {width}×{height} image "
                                  f"(x in [0, {width}], y in [0, {height}])")  # fmt: skip
        # the working pixel that to_original shows at the clicked pixel (its centre's), so that the clicked pixel is
        # in the mask when the working size differs: the point itself could fall in a unit that misses it there
        h, w = self.input_size
        cols = ((np.minimum(np.floor(coords[:, 0]), width - 1) + 0.5) * w / width).astype(np.int64)
        rows = ((np.minimum(np.floor(coords[:, 1]), height - 1) + 0.5) * h / height).astype(np.int64)
        return np.stack([np.minimum(rows, h - 1), np.minimum(cols, w - 1)], axis=1), labels.astype(np.int64)

    def _check_box(self, box) -> tuple[int, int, int, int] | None:
        if box is None:
            return None
        box = np.asarray(box, np.float64).reshape(-1)
        if box.shape != (4,) or not np.isfinite(box).all():
            raise PromptError(f"box must be 4 numbers x0, y0, x1, y1 (XYXY pixels), got {box.tolist()}")
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            raise PromptError(f"the box {box.tolist()} is empty: need x1 > x0 and y1 > y0 (XYXY)")
        height, width = self.original_size
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise PromptError(f"the box {box.tolist()} lies outside the {width}×{height} image")
        h, w = self.input_size
        c0, r0 = max(0, math.floor(x0 * w / width)), max(0, math.floor(y0 * h / height))
        c1, r1 = min(w, math.ceil(x1 * w / width)), min(h, math.ceil(y1 * h / height))
        return r0, c0, max(r1, r0 + 1), max(c1, c0 + 1)

    # -- candidates -------------------------------------------------------------------------------------------------
    def unit_kinds(self) -> list[tuple[int, UnitKind]]:
        """``(stage, kind)`` of every unit kind, finest first."""
        return [(k, kind) for k in range(len(self.levels)) for kind in ("piece", "group")]

    def _geometric_candidates(self, points, labels, window) -> list[tuple[np.ndarray, float]]:
        positives = points[labels == 1] if points is not None else np.zeros((0, 2), np.int64)
        negatives = points[labels == 0] if points is not None else np.zeros((0, 2), np.int64)
        if len(positives) == 0 and window is None:
            raise PromptError("background points alone select nothing: add a foreground point (label 1) or a box")
        kinds = self.unit_kinds()
        candidates = []
        for rank, (stage, kind) in enumerate(kinds):
            level = self.levels[stage]
            units = level.units(kind)
            ladder = kinds[rank::-1]  # this unit kind, then finer ones
            mask = np.zeros(units.shape, bool)
            for y, x in positives:  # the coarsest unit under the point holding no negative point (else the finest)
                mask |= self._unit_without(ladder, (y, x), negatives)
            chosen = set(units[positives[:, 0], positives[:, 1]].tolist())
            if window is not None:
                inside = self._units_inside(units, window)
                mask |= np.isin(units, inside)
                chosen |= set(inside.tolist())
            removed = np.zeros_like(mask)
            for y, x in negatives:  # the coarsest unit under the point holding no positive point (else nothing)
                removed |= self._unit_without(ladder, (y, x), positives, fallback=False)
            mask &= ~removed
            if mask.any() and chosen:
                groups = level.unit_groups(kind, np.array(sorted(chosen), np.int64))
                predicted_iou, _ = level.score(groups, mask, kind, DEFAULT_STABILITY_OFFSET, removed)
                candidates.append((mask, predicted_iou))
        if not candidates:
            raise PromptError("the prompts select nothing: the negative points remove every unit the others select")
        return _best_first_unique(candidates)

    def _unit_without(self, ladder, point, others: np.ndarray, fallback: bool = True) -> np.ndarray:
        """Mask of the first unit on the ``ladder`` of unit kinds (coarse to fine) under ``point`` that holds none of
        the ``others`` points. If even the finest holds some, its pixels whose first-stage soft assignment is nearer
        to the point's than to any of theirs (connected to the point); if that is empty, with ``fallback`` the
        finest unit, else nothing."""
        y, x = point
        for stage, kind in ladder:
            units = self.levels[stage].units(kind)
            if len(others) == 0 or not (units[others[:, 0], others[:, 1]] == units[y, x]).any():
                return units == units[y, x]
        finest = units == units[y, x]
        split = self._nearer_part(finest, point, others[finest[others[:, 0], others[:, 1]]])
        if split.any():
            return split
        return finest if fallback else split

    def _nearer_part(self, unit: np.ndarray, point, others: np.ndarray) -> np.ndarray:
        """The connected part, around ``point``, of the ``unit``'s pixels whose first-stage membership vector is
        strictly nearer (Euclidean) to the point's than to every one of ``others``' (a split below the units)."""
        maps = self.levels[0].maps
        rows, cols = np.nonzero(unit)
        features = maps[:, rows, cols]  # [G, n]
        mine = ((features - maps[:, point[0], point[1], None]) ** 2).sum(axis=0)
        theirs = np.min([((features - maps[:, r, c, None]) ** 2).sum(axis=0) for r, c in others], axis=0)
        nearer = mine < theirs
        part = np.zeros(unit.shape, bool)
        part[rows[nearer], cols[nearer]] = True
        if not part[point[0], point[1]]:
            return np.zeros(unit.shape, bool)
        pieces, _ = ndimage.label(part, structure=EIGHT_CONNECTED)
        return pieces == pieces[point[0], point[1]]

    @staticmethod
    def _units_inside(units: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
        """Ids of the units with at least half of their pixels inside the box (if none, the one most inside)."""
        r0, c0, r1, c1 = window
        count = int(units.max()) + 1
        inside = np.bincount(units[r0:r1, c0:c1].ravel(), minlength=count)
        total = np.bincount(units.ravel(), minlength=count)
        mostly = np.nonzero((total > 0) & (2 * inside >= total))[0]
        if mostly.size:
            return mostly
        share = inside / np.maximum(total, 1)  # none: the unit with the largest share inside (a box in one unit)
        return np.array([int(np.lexsort((inside, share))[-1])])

    def _text_candidates(self, text: str) -> list[tuple[np.ndarray, float]]:
        if self.vocabulary is not None:
            index = self._class_index(text)
            scores = self.class_scores(self.vocabulary)  # [L, h, w]
            concept = scores.argmax(axis=0) == index
            if not concept.any():  # nothing carries the label: the group that comes closest
                final = self.levels[-1]
                best = max(np.unique(final.labels), key=lambda g: scores[index][final.labels == g].mean())
                concept = final.labels == best
            pieces = [concept]
            parts, n = _pieces(concept)
            if n > 1:  # then its three largest pieces
                pieces += sorted((parts == i for i in range(1, n + 1)), key=lambda m: -int(m.sum()))[:3]
            return [(m, float(scores[index][m].mean())) for m in pieces]
        similarity = self._group_similarity(text)  # [G]
        final = self.levels[-1]
        present = sorted(np.unique(final.labels).tolist(), key=lambda g: -similarity[g])
        return [(final.labels == g, float(similarity[g])) for g in present[:3]]

    def _text_score(self, mask: np.ndarray, text: str) -> float:
        """How well a mask matches the text: its mean class score (vocabulary) or its embedding's cosine."""
        if self.vocabulary is not None:
            return float(self.class_scores(self.vocabulary)[self._class_index(text)][mask].mean())
        final = self.levels[-1]
        weights = torch.from_numpy(final.maps[:, mask].mean(axis=1))  # [G] soft share of each group in the mask
        embed = torch.nn.functional.normalize(weights @ self._embeds()["group"], dim=-1)
        return float(embed @ self._text_embedding(text))

    # -- text and labels --------------------------------------------------------------------------------------------
    def _embeds(self) -> dict:
        if self._tower is None or self._tower["embeds"] is None or self.model is None:
            raise PromptError("text prompts and labels need a GroupViT and its group embeddings; this predictor "
                              "has regions only")  # fmt: skip
        return self._tower["embeds"]

    def _class_index(self, text: str) -> int:
        names = self.vocabulary.names
        lowered = [n.lower() for n in names]
        if text.strip().lower() not in lowered:
            raise PromptError(f"unknown class {text!r}: the vocabulary has {', '.join(names)}")
        return lowered.index(text.strip().lower())

    def _text_embedding(self, text: str) -> torch.Tensor:
        vocab = parse_vocabulary([text], add_background=True)
        return self._class_embeddings(vocab)[0]

    def _class_embeddings(self, vocab: Vocabulary) -> torch.Tensor:
        if vocab not in self._class_embeds:
            self._class_embeds[vocab] = class_embeddings(self.model, vocab).float().cpu()
        return self._class_embeds[vocab]

    def _group_similarity(self, text: str) -> np.ndarray:
        return (self._embeds()["group"] @ self._text_embedding(text)).numpy()

    @torch.no_grad()
    def class_scores(self, vocabulary: VocabularySpec) -> np.ndarray:
        """``[L, h, w]`` the zero-shot head's per-pixel scores for the vocabulary's labels (label 0 = the
        thresholded background indicator when the vocabulary starts with "background")."""
        vocab = vocabulary if isinstance(vocabulary, Vocabulary) else parse_vocabulary(vocabulary)
        embeds = self._embeds()
        logits = seg_logits(
            self._tower["soft"], self._tower["grid"], embeds["group"][None], embeds["image"][None],
            self._class_embeddings(vocab), self.model.scale().detach().float().cpu(), self.input_size,
            bg_thresh=self.bg_thresh if vocab.with_background else None, topk=self.topk, bg_score=self.bg_score,
        )  # fmt: skip
        return logits[0].contiguous().numpy()

    # -- output -----------------------------------------------------------------------------------------------------
    def to_original(self, array: np.ndarray) -> np.ndarray:
        """A working-resolution ``[..., h, w]`` mask or map at the original image size (nearest neighbour)."""
        height, width = self.original_size
        h, w = array.shape[-2:]
        if (h, w) == (height, width):
            return array
        rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
        cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
        return array[..., rows[:, None], cols[None, :]]


def load_image(image: ImageLike, image_format: str = "RGB") -> np.ndarray:
    """:func:`load_rgb`, channels reversed for ``image_format="BGR"`` (SAM's ``set_image`` argument)."""
    if image_format not in ("RGB", "BGR"):
        raise ValueError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
    rgb = load_rgb(image)
    return np.ascontiguousarray(rgb[..., ::-1]) if image_format == "BGR" else rgb


def _pieces(mask: np.ndarray) -> tuple[np.ndarray, int]:
    return ndimage.label(mask, structure=EIGHT_CONNECTED)


def _best_first_unique(candidates: list[tuple[np.ndarray, float]]) -> list[tuple[np.ndarray, float]]:
    """Highest score first (ties keep the finer unit first); a mask equal to a better one is dropped. Scores are
    compared to 5 decimals: a piece and its group share one embedding, and their text scores, computed apart, may
    differ in the last float32 bit, which would otherwise order them differently from one CPU to another."""
    order = sorted(range(len(candidates)), key=lambda i: -round(float(candidates[i][1]), 5))
    kept: list[tuple[np.ndarray, float]] = []
    for i in order:
        mask = candidates[i][0]
        if not any(np.array_equal(mask, other) for other, _ in kept):
            kept.append(candidates[i])
    return kept
