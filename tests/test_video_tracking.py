"""Tracking: ids kept through a generated occlusion, labels decided over time, bounded memory; VideoSegmenter on
generated clips with a real (random, sharpened) GroupViT."""
import numpy as np
import pytest

import groupseg
from groupseg.synthetic.video import MovingShape, VideoConfig, make_clip, render_frame
from groupseg.synthetic.world import WorldConfig
from groupseg.video import Segment, Tracker, TrackerConfig
from groupseg.zeroshot import ZeroShotSegmenter

SIZE = 48


def shape(instance, kind, colour, radius, start, velocity, rgb):
    return MovingShape(instance, kind, colour, radius, start, velocity, 0.0, 0.0, "cross", rgb, 0, 0.0)


def occlusion_clip(frames=24):
    """A red disc passes behind a still blue square (wholly hidden for a few frames) while a second red disc, the
    same colour, stays in a corner: only position and motion tell the two discs apart."""
    config = VideoConfig(world=WorldConfig(image_size=SIZE, patterns=False), frames=frames, noise=0.0)
    shapes = [
        shape(1, "circle", "red", 4.0, (2.0, 24.0), (2.0, 0.0), (215.0, 35.0, 35.0)),  # the moving disc, at the back
        shape(2, "circle", "red", 4.0, (6.0, 6.0), (0.0, 0.0), (215.0, 35.0, 35.0)),  # its twin, still
        shape(3, "square", "blue", 11.0, (24.0, 24.0), (0.0, 0.0), (35.0, 75.0, 215.0)),  # the occluder, in front
    ]
    rng = np.random.default_rng(0)
    background = np.full((SIZE, SIZE, 3), 128.0)
    return [render_frame(shapes, background, t, rng, config) for t in range(frames)]


def colour_segments(frame):
    """Segments straight from the true masks, each embedded by its mean colour (a real, if simple, appearance)."""
    segments = []
    for instance in np.unique(frame.instance).tolist():
        mask = frame.instance == instance
        colour = frame.image[mask].mean(0) - 128.0
        embedding = colour / np.linalg.norm(colour) if instance else np.array([0.0, 0.0, 0.0])
        if instance == 0:
            embedding = np.array([0.577, 0.577, 0.577])
        scores = np.array([1.0, 0.0]) if instance == 0 else np.array([0.0, 0.9])
        segments.append((instance, Segment(mask, embedding, scores, group=instance)))
    return segments


def test_the_tracker_keeps_ids_through_a_generated_occlusion():
    frames = occlusion_clip()
    hidden = [t for t, f in enumerate(frames) if not (f.instance == 1).any()]
    assert len(hidden) >= 3 and 0 < hidden[0] and hidden[-1] < len(frames) - 1  # hidden, then seen again
    tracker = Tracker(TrackerConfig(max_missing=10))
    ids = {1: set(), 2: set(), 3: set()}
    for t, frame in enumerate(frames):
        pairs = colour_segments(frame)
        for (instance, _), track in zip(pairs, tracker.update([s for _, s in pairs], t)):
            if instance:
                ids[instance].add(track.instance)
    assert all(len(found) == 1 for found in ids.values()), ids  # one id per object for the whole clip
    assert len(set.union(*ids.values())) == 3
    assert [s["id"] for s in tracker.summaries()] == [1, 2, 3]


def test_a_track_unseen_longer_than_max_missing_ends_and_the_object_gets_a_new_id():
    frames = occlusion_clip()
    tracker = Tracker(TrackerConfig(max_missing=1))
    seen = []
    for t, frame in enumerate(frames):
        pairs = colour_segments(frame)
        seen += [track.instance for (i, _), track in zip(pairs, tracker.update([s for _, s in pairs], t)) if i == 1]
        assert len(tracker.live) <= 4  # background, two discs, square: memory does not grow with the video
    assert len(set(seen)) == 2  # the disc comes back as a new thing
    assert {s["id"] for s in tracker.summaries()} >= set(seen)


def test_a_tracks_label_comes_from_its_evidence_not_from_the_last_frame():
    tracker = Tracker()  # evidence_decay 0.8: a frame's scores weigh 0.8 of the next frame's
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    flip = {5}  # after five frames of class 1, one frame calls it class 2
    labels, frame_labels, weights = [], [], []
    for t in range(8):
        scores = np.array([0.0, 0.3, 0.7]) if t in flip else np.array([0.0, 0.6, 0.4])
        track = tracker.update([Segment(mask, np.array([1.0, 0.0]), scores, 0)], t)[0]
        labels.append(track.label)
        frame_labels.append(int(np.argmax(scores)))
        weights.append(0.8 ** (7 - t))
    assert frame_labels == [1, 1, 1, 1, 1, 2, 1, 1]
    assert labels == [1] * 8
    mean = (sum(weights) * 0.6 - weights[5] * 0.3) / sum(weights)  # the decayed mean score of class 1
    assert tracker.summaries()[0]["score"] == pytest.approx(mean, abs=1e-4)
    background = Tracker(TrackerConfig(evidence_decay=1.0))  # a plain mean: majority of frames
    votes = [background.update([Segment(mask, np.array([1.0, 0.0]), np.array([b, 0.2, 0.1]), 0)], t)[0].label
             for t, b in enumerate([0.0, 1.0, 1.0, 0.0])]  # fmt: skip
    assert votes == [1, 1, 0, 1]  # background while most of its frames called it background (a tie is not most)


def test_unlike_embeddings_never_match():
    tracker = Tracker(TrackerConfig(min_similarity=0.5))
    mask = np.ones((4, 4), bool)
    first = tracker.update([Segment(mask, np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0)], 0)[0]
    second = tracker.update([Segment(mask, np.array([0.0, 1.0]), np.array([0.0, 1.0]), 0)], 1)[0]
    assert first.key != second.key and first.instance != second.instance  # same place, different thing


@pytest.fixture(scope="module")
def clip_frames():
    _, frames = make_clip(0, 3, VideoConfig(frames=6))
    return [f.image for f in frames]


def test_per_frame_labels_are_the_single_image_segmenters(sharp_tiny_model, clip_frames):
    vocab = ["circle", "square", "triangle", "star"]
    video = groupseg.VideoSegmenter(sharp_tiny_model, vocab, short_side=32, bg_thresh=0.5)
    image = ZeroShotSegmenter(sharp_tiny_model, vocab, short_side=32, bg_thresh=0.5)
    frames = list(video.track(clip_frames, tracking=False))
    assert len(frames) == len(clip_frames)
    for frame, rgb in zip(frames, clip_frames):
        np.testing.assert_array_equal(frame.labels, image(rgb).labels)
    assert max(len(np.unique(f.labels)) for f in frames) > 1  # a real segmentation, not one label


def test_tracked_frames_hold_panoptic_ids_tracks_and_any_frame_size(sharp_tiny_model, clip_frames):
    vocab = ["circle", "square", "triangle", "star"]
    seg = groupseg.VideoSegmenter(sharp_tiny_model, vocab, short_side=40, bg_thresh=0.5, stuff=["star"])
    resized = [np.ascontiguousarray(np.repeat(f, 2, axis=1)[:, :56]) for f in clip_frames]  # 32 × 56, non-square
    video = seg.track(resized)
    frames = list(video)
    assert frames[0].labels.shape == (32, 56)
    for frame in frames:
        np.testing.assert_array_equal(frame.panoptic, frame.labels * 1000 + frame.instances)
        assert not frame.instances[(frame.labels == 0) | (frame.labels == 4)].any()  # background, stuff: no id
        assert (frame.instances[(frame.labels > 0) & (frame.labels != 4)] > 0).all()  # every thing pixel has one
    ids = sorted({int(i) for f in frames for i in np.unique(f.instances) if i})
    tracks = video.tracks
    assert [t["id"] for t in tracks] == list(range(1, len(tracks) + 1))
    assert set(ids) <= {t["id"] for t in tracks}
    for track in tracks:
        assert track["class"] == seg.classes[track["label"]] and 0 <= track["first_frame"] <= track["last_frame"] < 6
    for segment in frames[0].segments.segments:  # centroids from one pass over the frame = from each mask
        ys, xs = np.nonzero(segment.mask)
        np.testing.assert_allclose(segment.centroid, [ys.mean(), xs.mean()])
    overlay = frames[-1].overlay(scale=4)
    assert overlay.shape == (128, 224, 3)
    with pytest.raises(groupseg.zeroshot.VocabularyError, match="stuff"):
        groupseg.VideoSegmenter(sharp_tiny_model, vocab, stuff=["sky"])


def test_the_label_term_keeps_an_object_track_from_drifting_onto_background():
    def mask(x0, x1):
        m = np.zeros((8, 8), bool)
        m[2:6, x0:x1] = True
        return m

    unit = np.array([1.0, 0.0])
    near = np.array([0.9, np.sqrt(1 - 0.81)])
    obj, bg = np.array([0.0, 0.9]), np.array([1.0, 0.1])
    continued = {}
    for weight in (0.0, 1.0):
        tracker = Tracker(TrackerConfig(label_weight=weight, min_similarity=0.5, motion=False))
        first = tracker.update([Segment(mask(2, 6), unit, obj, 0)], 0)[0]
        # the same embedding but called background, overlapping more; or a slightly different embedding, an object
        second = tracker.update([Segment(mask(2, 7), unit, bg, 0), Segment(mask(4, 8), near, obj, 1)], 1)
        continued[weight] = [t.key == first.key for t in second]
    assert continued[0.0] == [True, False] and continued[1.0] == [False, True]


@pytest.mark.parametrize("option", [dict(min_similarity=1.5), dict(evidence_decay=1.2), dict(label_weight=-1),
                                    dict(momentum=1.0), dict(max_missing=-1), dict(iou_weight=-0.5)])  # fmt: skip
def test_tracker_settings_out_of_range_are_refused(option):
    with pytest.raises(ValueError, match=next(iter(option))):
        TrackerConfig(**option)
