"""Video overlays: each instance in its id's own colour (the same in every frame, so a kept id is a kept colour),
stuff in its label's colour, background left as is; and a writer for GIF (Pillow) or MP4 (PyAV) files."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..zeroshot.visualize import make_palette

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")


def id_colours(ids: np.ndarray) -> np.ndarray:
    """``[..., 3]`` uint8 colour of each id: a fixed golden-ratio hue per id, whatever else is in the frame."""
    table = make_palette(int(ids.max(initial=0)) + 1, with_background=False)
    return table[ids]


def overlay_ids(
    image: np.ndarray, labels: np.ndarray, instances: np.ndarray, class_names: Sequence[str], *, scale: int = 1,
    opacity: float = 0.55, with_background: bool = True, annotate: bool = True,
) -> np.ndarray:  # fmt: skip
    """RGB ``[H·scale, W·scale, 3]``: instances tinted by id, stuff by label, segment borders white, and (``annotate``)
    each instance's id and class written at its centre when the picture is large enough to read them."""
    colour = np.where(instances[..., None] > 0, id_colours(instances),
                      make_palette(len(class_names), with_background)[labels])  # fmt: skip
    tint = (instances > 0) | (labels != 0 if with_background else True)
    blended = image.astype(np.float32)
    blended[tint] = blended[tint] * (1 - opacity) + colour[tint].astype(np.float32) * opacity
    if scale > 1:
        blended = blended.repeat(scale, 0).repeat(scale, 1)
        labels, instances = (a.repeat(scale, 0).repeat(scale, 1) for a in (labels, instances))
    segment = labels.astype(np.int64) * (1 << 32) + instances
    border = np.zeros(segment.shape, bool)
    border[1:] |= segment[1:] != segment[:-1]
    border[:, 1:] |= segment[:, 1:] != segment[:, :-1]
    blended[border] = 255
    picture = Image.fromarray(blended.round().astype(np.uint8))
    if annotate and picture.height >= 96:
        draw, font = ImageDraw.Draw(picture), ImageFont.load_default()
        for instance in np.unique(instances[instances > 0]).tolist():
            ys, xs = np.nonzero(instances == instance)
            label = int(np.bincount(labels[ys, xs]).argmax())
            draw.text((float(xs.mean()), float(ys.mean())), f"{instance} {class_names[label]}", fill=(255, 255, 255),
                      font=font, anchor="mm", stroke_width=1, stroke_fill=(0, 0, 0))  # fmt: skip
    return np.asarray(picture)


class OverlayWriter:
    """Frames → an animated GIF (kept in memory until ``close``: for short clips) or a video file (streamed, H.264).

        with OverlayWriter("overlay.mp4", fps=25) as writer:
            writer.write(frame.overlay())
    """

    def __init__(self, path: str | os.PathLike, fps: float = 10.0):
        self.path, self.fps = Path(path), fps
        suffix = self.path.suffix.lower()
        if suffix not in (".gif", *VIDEO_SUFFIXES):
            raise ValueError(f"overlay file {self.path} must end in .gif or one of {', '.join(VIDEO_SUFFIXES)}")
        self._gif: list[Image.Image] | None = [] if suffix == ".gif" else None
        self._container = self._stream = None

    def write(self, rgb: np.ndarray) -> None:
        if self._gif is not None:
            self._gif.append(Image.fromarray(rgb))
            return
        import av

        if self._container is None:
            self._container = av.open(str(self.path), mode="w")
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            self._stream = self._container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1000))
            self._stream.width, self._stream.height = rgb.shape[1] + rgb.shape[1] % 2, rgb.shape[0] + rgb.shape[0] % 2
            self._stream.pix_fmt = "yuv420p"
        padded = np.zeros((self._stream.height, self._stream.width, 3), np.uint8)  # yuv420p needs even sides
        padded[: rgb.shape[0], : rgb.shape[1]] = rgb
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
            self._container.mux(packet)

    def close(self) -> None:
        if self._gif:
            self._gif[0].save(self.path, save_all=True, append_images=self._gif[1:], duration=round(1000 / self.fps),
                              loop=0)  # fmt: skip
            self._gif = []
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None

    def __enter__(self) -> "OverlayWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
