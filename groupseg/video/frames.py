"""Frames in: a folder of images (in natural order: 2 before 10) or a video file decoded by PyAV, one frame at a time.

Everything a user can get wrong here is a :class:`FramesError` with one line saying what and where: a path that is
neither, an empty folder, a file no decoder reads, a video without a video stream or without frames, and a frame whose
size differs from the first one (a clip is one size; resize it first).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..zeroshot.single_image import ImageLike, load_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class FramesError(ValueError):
    """Frames that cannot be read as one clip."""


@dataclass
class FrameSource:
    """Where the frames come from: their names (file stems, or 000000, 000001, ... for a video) and the video's rate."""

    path: Path | None
    names: list[str] | None  # known up front for a folder; None for a video (decoded as it goes)
    fps: float  # the video's average rate; 10 for a folder of images


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def image_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=lambda p: _natural_key(p.name))


Frames = Iterator[tuple[str, np.ndarray]]  # (name, [H, W, 3] uint8 RGB)


def open_frames(source: str | os.PathLike | Sequence[ImageLike]) -> tuple[FrameSource, Frames]:
    """``(source info, iterator of (name, [H, W, 3] uint8 RGB))`` for a folder, a video file, or a list of images.

    The folder and the file are checked before the first frame is returned (missing, empty, unreadable container);
    frame sizes are checked as frames arrive.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            files = image_files(path)
            if not files:
                raise FramesError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder {path}")
            info = FrameSource(path, [f.stem for f in files], 10.0)
            return info, _same_size(((f.stem, _read_image(f)) for f in files), path)
        if not path.exists():
            raise FramesError(f"{path} does not exist: give a folder of frames or a video file")
        container, stream = _open_video(path)
        fps = float(stream.average_rate) if stream.average_rate else 25.0
        return FrameSource(path, None, fps), _same_size(_decode(container, stream, path), path)
    frames = list(source)
    if not frames:
        raise FramesError("no frames given")
    names = [f"{i:06d}" for i in range(len(frames))]
    return FrameSource(None, names, 10.0), _same_size(((n, _as_rgb(f, n)) for n, f in zip(names, frames)), None)


def _read_image(path: Path) -> np.ndarray:
    try:
        return load_rgb(path)
    except ValueError as err:
        raise FramesError(str(err)) from None


def _as_rgb(frame: ImageLike, name: str) -> np.ndarray:
    try:
        return load_rgb(frame)
    except ValueError as err:
        raise FramesError(f"frame {name}: {err}") from None


def _open_video(path: Path):
    import av  # PyAV: FFmpeg's decoders; imported here so that image folders need no video stack

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or err
        message = f"cannot read {path} as a video ({reason}); give a video file or a folder of frames"
        raise FramesError(message) from None
    if not container.streams.video:
        container.close()
        raise FramesError(f"{path} has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _decode(container, stream, path: Path) -> Iterator[tuple[str, np.ndarray]]:
    import av

    count = 0
    try:
        for frame in container.decode(stream):
            yield f"{count:06d}", _as_shown(frame.to_ndarray(format="rgb24"), frame.rotation)
            count += 1
    except av.FFmpegError as err:
        raise FramesError(f"cannot decode frame {count} of {path}: {err}") from None
    finally:
        container.close()
    if count == 0:
        raise FramesError(f"{path} holds no video frames")


def _as_shown(rgb: np.ndarray, rotation: float) -> np.ndarray:
    """A decoded frame turned as players show it: phones store portrait video as landscape frames plus a rotation
    (the display matrix), as JPEGs carry an EXIF orientation, which images' frames follow (:func:`load_rgb`).
    ``rotation`` is PyAV's: degrees counterclockwise, a multiple of 90 in practice."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _same_size(frames: Iterator[tuple[str, np.ndarray]], path: Path | None) -> Iterator[tuple[str, np.ndarray]]:
    first = None
    for name, rgb in frames:
        if first is None:
            first = (name, rgb.shape[:2])
        elif rgb.shape[:2] != first[1]:
            where = f" in {path}" if path else ""
            raise FramesError(f"frame {name}{where} is {rgb.shape[1]}x{rgb.shape[0]} but frame {first[0]} is "
                              f"{first[1][1]}x{first[1][0]}: all frames of a clip must have one size")  # fmt: skip
        yield name, rgb
