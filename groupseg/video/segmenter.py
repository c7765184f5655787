"""``VideoSegmenter``: zero-shot video segmentation with labels and instance ids that hold over time.

    seg = groupseg.VideoSegmenter("CKPT", ["cat", "dog", "grass"], stuff=["grass"])
    video = seg.track("clip.mp4")              # or a folder of frames, or a list of images
    for frame in video:                        # online: one frame at a time, memory bounded by the live tracks
        frame.labels, frame.instances          # [H, W] label ids and instance ids (0 = none)
        frame.panoptic                         # [H, W] label × 1000 + instance (Cityscapes-VPS style)
    video.tracks                               # [{id, class, label, score, first_frame, last_frame, frames}, ...]

Per frame the image goes through the same preprocessing as :class:`~groupseg.ZeroShotSegmenter` (short side
``short_side``, ImageNet mean/std, one whole pass) and the same official head: every pixel's final group and every
group's label scores and background decision. Each group's pixels are split into connected pieces (two objects in one
group become two segments; pieces under ``min_area`` of the frame stay with their group's largest piece), and the
segments go to the :class:`~groupseg.video.tracker.Tracker`. A track's label is decided from its evidence over time;
things get an instance id for life, stuff and background get none.

Panoptic ids: ``label * 1000 + instance`` (``label_divisor``), with label 0 = background when the vocabulary has one;
stuff pixels have instance 0. ``frame.instances`` and ``video.tracks`` hold the ids without a limit; ``panoptic``
refuses a video with 1000 things or more (pass a larger ``label_divisor``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from scipy import ndimage

from ..models import GroupViT
from ..zeroshot.head import BgScore, group_scores, pixel_groups
from ..zeroshot.single_image import ImageLike, ZeroShotSegmenter
from ..zeroshot.vocabulary import VocabularyError, VocabularySpec
from .frames import FrameSource, open_frames
from .tracker import Segment, Track, Tracker, TrackerConfig
from .visualize import overlay_ids

EIGHT_CONNECTED = np.ones((3, 3), bool)


@dataclass
class FrameSegments:
    """One frame, segmented alone: its segments at the working resolution and the map of which pixel is which."""

    segments: list[Segment]
    index_map: np.ndarray  # [h, w] int: each pixel's segment (position in `segments`)
    frame_size: tuple[int, int]  # (H, W) of the input frame
    background: bool  # label 0 is the thresholded background

    def labels(self, segment_labels: Sequence[int]) -> np.ndarray:
        """``[H, W]`` map of one value per segment, at the frame's size."""
        return _to_frame(np.asarray(segment_labels, np.int64)[self.index_map], self.frame_size)

    def independent(self) -> tuple[np.ndarray, np.ndarray]:
        """This frame alone (no tracking): each segment's own label (the head's per-pixel labels) and, for things,
        its position among the frame's segments + 1 as instance id (group-token order): ``(labels, instances)``."""
        labels = [int(np.argmax(s.scores)) for s in self.segments]  # the head's label: seg_logits' argmax
        instances = [i + 1 if not (self.background and label == 0) else 0 for i, label in enumerate(labels)]
        return self.labels(labels), self.labels(instances)

    def tracked(self, tracks: Sequence[Track], stuff: frozenset[int]) -> tuple[np.ndarray, np.ndarray]:
        """The segments' tracks' labels and instance ids (none for ``stuff`` labels): ``(labels, instances)``."""
        instances = [0 if t.label in stuff else t.instance for t in tracks]
        return self.labels([t.label for t in tracks]), self.labels(instances)


@dataclass
class VideoFrame:
    index: int
    name: str  # file stem, or the frame number of a video
    image: np.ndarray  # [H, W, 3] uint8 RGB
    labels: np.ndarray  # [H, W] int64 label ids (tracked)
    instances: np.ndarray  # [H, W] int64 instance ids, 0 where none (background, stuff)
    classes: tuple[str, ...]
    segments: FrameSegments | None = field(default=None, repr=False)  # the frame segmented alone
    label_divisor: int = 1000

    @property
    def panoptic(self) -> np.ndarray:
        """``[H, W]`` int64 ``label * label_divisor + instance``."""
        if self.instances.max(initial=0) >= self.label_divisor:
            raise ValueError(f"instance id {self.instances.max()} does not fit under label_divisor "
                             f"{self.label_divisor}: pass a larger label_divisor to VideoSegmenter")  # fmt: skip
        return self.labels * self.label_divisor + self.instances

    def overlay(self, scale: int = 1, opacity: float = 0.55, annotate: bool = True) -> np.ndarray:
        """The frame with each instance in its id's own colour (the same in every frame) and stuff in its label's;
        ``annotate``: each instance's id and class written on it."""
        return overlay_ids(self.image, self.labels, self.instances, self.classes, scale=scale, opacity=opacity,
                           with_background=self.classes[0] == "background", annotate=annotate)  # fmt: skip


class TrackedVideo:
    """The frames of one video, segmented and tracked as they are read; ``tracks`` once iterated (or while)."""

    def __init__(self, segmenter: "VideoSegmenter", source, tracking: bool):
        self.segmenter = segmenter
        self.source: FrameSource
        self.source, self._frames = open_frames(source)
        self.tracker = Tracker(segmenter.tracker_config, background=segmenter.with_background,
                               stuff=segmenter.stuff_labels)  # fmt: skip
        self.tracking = tracking

    def __iter__(self) -> Iterator[VideoFrame]:
        seg = self.segmenter
        for index, (name, rgb) in enumerate(self._frames):
            alone = seg.segment_frame(rgb)
            if self.tracking:
                labels, instances = alone.tracked(self.tracker.update(alone.segments, index), self.tracker.stuff)
            else:
                labels, instances = alone.independent()
            yield VideoFrame(index, name, rgb, labels, instances, seg.classes, alone, seg.label_divisor)

    @property
    def tracks(self) -> list[dict]:
        """Every thing track so far: ``id``, ``class``, ``label``, ``score`` (its mean score for its class),
        ``first_frame``, ``last_frame`` (0-based frames where it was seen) and ``frames`` (how many)."""
        names = self.segmenter.classes
        return [{"id": s["id"], "class": names[s["label"]], **{k: v for k, v in s.items() if k != "id"}}
                for s in self.tracker.summaries()]  # fmt: skip


class VideoSegmenter:
    """Zero-shot GroupViT video segmentation with tracked instance ids (module docstring).

    Args:
        model: a :class:`GroupViT` or anything :func:`groupseg.load_model` reads.
        classes: vocabulary (see :func:`groupseg.zeroshot.parse_vocabulary`).
        stuff: class names that have no instances (regions like "grass", "sky"); the background never has.
        bg_thresh, bg_score, background, templates, short_side, device: as :class:`~groupseg.ZeroShotSegmenter`.
        min_area: connected pieces of a group smaller than this fraction of the frame stay with its largest piece.
        tracker: matching options (:class:`~groupseg.video.tracker.TrackerConfig`).
        label_divisor: panoptic id = label × label_divisor + instance.
    """

    def __init__(
        self,
        model: GroupViT | str | os.PathLike,
        classes: VocabularySpec,
        *,
        stuff: Sequence[str] = (),
        templates: Sequence[str] | None = None,
        bg_thresh: float = 0.95,
        bg_score: BgScore = "probability",
        background: bool = True,
        short_side: int = 448,
        min_area: float = 0.002,
        tracker: TrackerConfig | None = None,
        label_divisor: int = 1000,
        device: str | torch.device | None = None,
    ):
        if not 0 <= min_area < 1:
            raise ValueError(f"min_area is a fraction of the frame in [0, 1), got {min_area}")
        self.image = ZeroShotSegmenter(
            model, classes, templates=templates, bg_thresh=bg_thresh, bg_score=bg_score, background=background,
            mode="whole", short_side=short_side, device=device,
        )  # fmt: skip
        unknown = [name for name in stuff if name not in self.classes]
        if unknown:
            raise VocabularyError(f"stuff classes {unknown} are not in the vocabulary {list(self.classes)}")
        self.with_background = self.image.segmentor.vocabulary.with_background
        self.stuff_labels = frozenset(self.classes.index(name) for name in stuff)
        self.min_area = min_area
        self.tracker_config = tracker or TrackerConfig()
        self.label_divisor = label_divisor

    @property
    def classes(self) -> tuple[str, ...]:
        return self.image.classes

    def track(self, frames: str | os.PathLike | Sequence[ImageLike], *, tracking: bool = True) -> TrackedVideo:
        """The video (folder, file or list of frames) as an iterable of :class:`VideoFrame`, tracked online
        (``tracking=False``: every frame alone, ids in group-token order, for comparison)."""
        return TrackedVideo(self, frames, tracking)

    @torch.no_grad()
    def segment_frame(self, rgb: np.ndarray) -> FrameSegments:
        """One ``[H, W, 3]`` uint8 RGB frame → its segments (groups split into connected pieces)."""
        segmentor = self.image.segmentor
        data = pseudo_collate([self.image.pipeline(dict(img=np.ascontiguousarray(rgb[..., ::-1])))])  # mmseg: BGR
        inputs = segmentor.data_preprocessor(data, False)["inputs"]
        out = segmentor.forward_image(inputs)
        size = tuple(inputs.shape[2:])
        groups = pixel_groups([a.soft for a in out.vision.assignments], out.vision.grid, size)[0].cpu().numpy()
        bg_thresh = segmentor.test_cfg.bg_thresh if self.with_background else None
        scores = group_scores(out.group_embeds, out.image_embeds, segmentor.class_embeds, segmentor.model.scale(),
                              bg_thresh, segmentor.test_cfg.get("topk", 5), segmentor.test_cfg.bg_score)[0]  # fmt: skip
        embeds = out.group_embeds[0].float().cpu().numpy()
        scores = scores.float().cpu().numpy()
        segments, index_map = [], np.zeros(groups.shape, np.int64)
        min_pixels = self.min_area * groups.size
        for group in np.unique(groups).tolist():
            pieces, count = ndimage.label(groups == group, structure=EIGHT_CONNECTED)
            areas = np.bincount(pieces.ravel(), minlength=count + 1)
            largest = int(np.argmax(areas[1:])) + 1
            keep = [p for p in range(1, count + 1) if areas[p] >= min_pixels or p == largest]
            small = np.isin(pieces, [p for p in range(1, count + 1) if p not in keep])
            for piece in keep:
                mask = (pieces == piece) | (small if piece == largest else False)
                index_map[mask] = len(segments)
                segments.append(Segment(mask, embeds[group], scores[group], group, centroid=np.zeros(2)))
        area = np.bincount(index_map.ravel(), minlength=len(segments))
        for axis, coords in enumerate(np.indices(index_map.shape)):  # all centroids in one pass over the pixels
            sums = np.bincount(index_map.ravel(), weights=coords.ravel(), minlength=len(segments))
            for segment, total, count in zip(segments, sums, area):
                segment.centroid[axis] = total / count
        return FrameSegments(segments, index_map, rgb.shape[:2], self.with_background)


def _to_frame(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A working-resolution map at the frame's size (nearest: labels and ids are not averaged)."""
    if values.shape == tuple(size):
        return values
    resized = F.interpolate(torch.from_numpy(values)[None, None].double(), size=tuple(size), mode="nearest-exact")
    return resized[0, 0].long().numpy()


__all__ = ["FrameSegments", "TrackedVideo", "VideoFrame", "VideoSegmenter"]
