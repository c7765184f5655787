"""Video: zero-shot segmentation whose labels and instance ids hold over time (online tracking of GroupViT's segments).

frames.py reads a folder or a video file; segmenter.py turns each frame into segments with the official head;
tracker.py matches them to tracks; visualize.py draws ids in fixed colours; vipseg.py reads VIPSeg's layout.
"""
from .frames import FramesError, open_frames
from .segmenter import FrameSegments, TrackedVideo, VideoFrame, VideoSegmenter
from .tracker import Segment, Tracker, TrackerConfig
from .visualize import OverlayWriter, overlay_ids
from .vipseg import Category, Clip, decode_panomask, list_clips, read_categories, read_panomask

__all__ = [
    "Category", "Clip", "FrameSegments", "FramesError", "OverlayWriter", "Segment", "TrackedVideo", "Tracker",
    "TrackerConfig", "VideoFrame", "VideoSegmenter", "decode_panomask", "list_clips", "open_frames", "overlay_ids",
    "read_categories", "read_panomask",
]  # fmt: skip
