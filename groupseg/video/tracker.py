"""Online tracking of segments: each frame's segments continue live tracks by Hungarian matching, MinVIS-style.

MinVIS (Huang et al., NeurIPS 2022) links the query embeddings of consecutive frames by bipartite matching on their
cosine similarity; GroupViT's segment (group) embeddings play the queries' part. Each segment is scored against each
live track as

    cosine(segment embedding, track embedding) + iou_weight · IoU(segment mask, the track's last mask moved by its
    last velocity) + label_weight · [the head labels the segment as the track is labelled]

and ``scipy.optimize.linear_sum_assignment`` picks the best one-to-one matching; a pair below ``min_similarity``
cosine never matches (defaults chosen on held-out synthetic clips, ``tools/research/sweep_video_tracking.py``; the
label term keeps a track from drifting onto a segment the head calls something else, e.g. from an object onto
background). Unmatched segments start tracks; a track unseen for more than ``max_missing`` frames ends, so
memory is bounded by the live tracks (one mask, one embedding and one score sum each), however long the video.

A track's label comes from its evidence over time, not from the current frame: it is background while most of its
frames called it background (the head's per-frame rule), otherwise the class with the highest mean score over its
frames; both means are exponentially weighted (``evidence_decay``: recent frames count more, so that a track
continued onto another object follows it, while one odd frame after a stable history does not flip it).

A track gets its public instance id (1, 2, ... in order of appearance) the first time it is a *thing*; the id never
changes and is never reused within a video.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

MATCH_SIDE = 128  # masks are compared on a grid of about this many pixels a side


@dataclass
class Segment:
    """One frame's segment: a group's connected piece of the frame."""

    mask: np.ndarray  # [h, w] bool, at the working resolution
    embedding: np.ndarray  # [D] L2-normalised group embedding
    scores: np.ndarray  # [L] label scores of its group; with background, column 0 is the 0/1 background decision
    group: int  # index of the group (token) it came from
    centroid: np.ndarray | None = None  # (y, x) mean pixel position; computed from the mask when not given

    def __post_init__(self):
        if self.centroid is None:
            self.centroid = _centroid(self.mask)


@dataclass(frozen=True)
class TrackerConfig:
    """How segments continue tracks."""

    iou_weight: float = 1.0  # match score = cosine + iou_weight · IoU with the track's predicted mask
    min_similarity: float = 0.8  # a segment never continues a track whose embedding is less similar than this
    max_missing: int = 10  # a track unseen for more frames than this ends (bounded memory)
    momentum: float = 0.5  # a track's embedding ← momentum · old + (1 − momentum) · new, renormalised
    motion: bool = True  # IoU against the last mask moved by the track's last velocity (constant-velocity guess)
    label_weight: float = 1.0  # added to the match score when the segment's own frame label is the track's label
    evidence_decay: float = 0.8  # past frames' evidence is multiplied by this each frame (1: plain mean over all)

    def __post_init__(self):
        if not (0 <= self.momentum < 1 and self.max_missing >= 0 and self.iou_weight >= 0 and self.label_weight >= 0
                and -1 <= self.min_similarity <= 1 and 0 <= self.evidence_decay <= 1):  # fmt: skip
            raise ValueError(f"need 0 <= momentum < 1, max_missing >= 0, iou_weight >= 0, label_weight >= 0, "
                             f"-1 <= min_similarity <= 1 (a cosine) and 0 <= evidence_decay <= 1; got {self}")


@dataclass
class Track:
    key: int  # internal, every track has one
    embedding: np.ndarray
    mask: np.ndarray
    centroid: np.ndarray  # (y, x)
    first_frame: int
    last_frame: int
    background_votes: float = 0.0  # (decayed) count of frames whose head called it background
    class_score_sum: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (decayed) sum of class scores
    weight: float = 0.0  # (decayed) count of frames: the denominator of both means
    frames: int = 0
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    instance: int = 0  # public id, given the first time the track is a thing; 0 before
    label: int = 0


class Tracker:
    """Frame-by-frame matching of :class:`Segment` lists to tracks (module docstring).

    Args:
        background: column 0 of the segments' scores is the background decision (label 0).
        stuff: labels whose tracks get no instance id (besides the background).
    """

    def __init__(
        self, config: TrackerConfig | None = None, *, background: bool = True, stuff: frozenset[int] = frozenset()
    ):
        self.config = config or TrackerConfig()
        self.background = background
        self.stuff = frozenset(stuff) | ({0} if background else frozenset())
        self.live: list[Track] = []
        self.ended: list[dict] = []
        self._next_key = 0
        self._next_instance = 1
        self._frame_now = 0

    def update(self, segments: list[Segment], frame: int) -> list[Track]:
        """Continue or start a track for every segment of ``frame``; returns each segment's track (same order)."""
        self._frame_now = frame
        matches = self._match(segments)
        tracks = []
        for index, segment in enumerate(segments):
            track = matches.get(index)
            if track is None:
                track = self._start(segment, frame)
                self.live.append(track)
            else:
                self._continue(track, segment, frame)
            self._add_evidence(track, segment)
            tracks.append(track)
        for track in self.live:
            if frame - track.last_frame > self.config.max_missing:
                self._end(track)
        self.live = [t for t in self.live if frame - t.last_frame <= self.config.max_missing]
        return tracks

    def _match(self, segments: list[Segment]) -> dict[int, Track]:
        if not segments or not self.live:
            return {}
        similarity = np.stack([s.embedding for s in segments]) @ np.stack([t.embedding for t in self.live]).T
        score = similarity.astype(np.float64)
        if self.config.iou_weight:
            score = score + self.config.iou_weight * self._ious(segments)
        if self.config.label_weight:
            own = np.array([int(np.argmax(s.scores)) for s in segments])  # the head's label in this frame
            score = score + self.config.label_weight * (own[:, None] == np.array([t.label for t in self.live])[None])
        forbidden = similarity < self.config.min_similarity
        rows, cols = linear_sum_assignment(np.where(forbidden, -1e6, score), maximize=True)
        return {int(r): self.live[c] for r, c in zip(rows, cols) if not forbidden[r, c]}

    def _ious(self, segments: list[Segment]) -> np.ndarray:
        step = max(1, max(segments[0].mask.shape) // MATCH_SIDE)  # overlaps of large frames on a coarser grid
        masks = np.stack([s.mask[::step, ::step].ravel() for s in segments]).astype(np.float32)  # [S, N]
        predicted = np.stack([self._predicted_mask(t)[::step, ::step].ravel() for t in self.live]).astype(np.float32)
        inter = masks @ predicted.T
        union = masks.sum(1, keepdims=True) + predicted.sum(1)[None] - inter
        return inter / np.maximum(union, 1)

    def _predicted_mask(self, track: Track) -> np.ndarray:
        if not self.config.motion or not track.velocity.any():
            return track.mask
        dy, dx = np.round(track.velocity * (self._frame_now - track.last_frame)).astype(int)
        return _shift(track.mask, dy, dx)

    def _start(self, segment: Segment, frame: int) -> Track:
        track = Track(self._next_key, segment.embedding.copy(), segment.mask, segment.centroid, frame, frame)
        self._next_key += 1
        return track

    def _continue(self, track: Track, segment: Segment, frame: int) -> None:
        centroid = segment.centroid
        track.velocity = (centroid - track.centroid) / max(frame - track.last_frame, 1)
        track.centroid, track.mask, track.last_frame = centroid, segment.mask, frame
        mixed = self.config.momentum * track.embedding + (1 - self.config.momentum) * segment.embedding
        track.embedding = mixed / max(float(np.linalg.norm(mixed)), 1e-12)

    def _add_evidence(self, track: Track, segment: Segment) -> None:
        scores = np.asarray(segment.scores, np.float64)
        classes = scores[1:] if self.background else scores
        decay = self.config.evidence_decay
        if track.frames == 0:
            track.class_score_sum = np.zeros_like(classes)
        track.frames += 1
        track.weight = decay * track.weight + 1
        track.class_score_sum = decay * track.class_score_sum + classes
        track.background_votes = decay * track.background_votes + float(self.background and scores[0] >= 0.5)
        offset = 1 if self.background else 0
        is_background = self.background and 2 * track.background_votes > track.weight + 1e-9
        track.label = 0 if is_background else offset + int(np.argmax(track.class_score_sum))
        if track.instance == 0 and track.label not in self.stuff:
            track.instance = self._next_instance
            self._next_instance += 1

    def _end(self, track: Track) -> None:
        if track.instance:
            self.ended.append(summary(track, self.background))

    def summaries(self) -> list[dict]:
        """Every track that ever had an instance id: ended ones and live ones, by id."""
        live = [summary(t, self.background) for t in self.live if t.instance]
        return sorted(self.ended + live, key=lambda s: s["id"])


def summary(track: Track, background: bool) -> dict:
    offset = 1 if background else 0
    label = track.label
    score = float(track.class_score_sum[label - offset] / track.weight) if label >= offset else 0.0
    return {"id": track.instance, "label": label, "score": round(score, 4), "first_frame": track.first_frame,
            "last_frame": track.last_frame, "frames": track.frames}  # fmt: skip


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([ys.mean(), xs.mean()]) if len(ys) else np.zeros(2)


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` moved by (dy, dx) pixels; what leaves the frame is lost, what enters is empty."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[max(-dy, 0) : h - max(dy, 0),
                                                                         max(-dx, 0) : w - max(dx, 0)]  # fmt: skip
    return out
