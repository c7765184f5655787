"""The synthetic video world: clips of the image world's shapes moving, rotating, occluding, entering and leaving.

Each clip is a static textured background (the image world's) with a few objects (the image world's kinds, colours,
sizes and surface patterns), each on its own straight path at its own speed and spin, drawn back to front:
- *bouncing* objects stay in view, reflected at the borders;
- *entering* objects start outside the frame and cross it; *leaving* objects start inside and move out;
- one object is sent through another's position at mid-clip, so every clip with two objects or more has an occlusion
  (the back one is partly or wholly hidden for some frames, then reappears).

Clips are written in VIPSeg's layout (``images/CLIP/NNNNN.jpg``, ``panomasks/CLIP/NNNNN.png``, the category list and
``val.txt``), read back by :mod:`groupseg.video.vipseg` like the real dataset, with the same vocabularies as the
image world: ``panomasks`` name the shape kinds (``classes.txt``), ``panomasks_colours`` the colours
(``colours.txt``). Label 0 is the background (a stuff class); objects are things whose instance id (1, 2, ...) is
the same in every frame of their clip. Every clip is a pure function of ``(seed, index)``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from .world import COLOURS, KIND_RADIUS, WorldConfig, _background, _coverage, _jpeg, pattern_shading, vocabularies

VIDEO_STREAM = 10  # seeds clips apart from the image world's splits (world.SPLITS)
# the two ways of naming the objects: mask folder → (category file, vocabulary file)
LABELINGS = {"panomasks": ("panoVIPSeg_categories.json", "classes.txt"),
             "panomasks_colours": ("categories_colours.json", "colours.txt")}  # fmt: skip


@dataclass
class VideoConfig:
    """The clips' motion; ``world`` sets their look (image size, kinds, colours, sizes, textures, patterns)."""

    world: WorldConfig = field(default_factory=WorldConfig)
    frames: int = 32
    objects: tuple[int, int] = (2, 3)  # objects per clip, inclusive range
    speed: tuple[float, float] = (0.4, 1.2)  # pixels per frame
    max_spin: float = 0.08  # radians per frame
    p_enter: float = 0.25  # an object enters from outside the frame
    p_leave: float = 0.25  # an object leaves the frame
    noise: float = 3.0  # per-frame sensor noise (grey levels), so that no two frames are the same

    def __post_init__(self):
        if isinstance(self.world, dict):
            self.world = WorldConfig(**self.world)
        self.objects, self.speed = tuple(self.objects), tuple(self.speed)
        if self.frames < 1 or not 1 <= self.objects[0] <= self.objects[1] <= 99:
            raise ValueError(f"need frames >= 1 and 1 <= objects <= 99 per clip, got {self.frames}, {self.objects}")


class MovingShape(NamedTuple):
    instance: int  # 1, 2, ... in drawing order (back to front)
    kind: str
    colour: str
    radius: float  # pixels
    start: tuple[float, float]  # centre at frame 0
    velocity: tuple[float, float]  # pixels per frame
    angle: float
    spin: float
    motion: str  # "bounce" (reflected at the borders) | "enter" | "leave" | "cross" (straight paths)
    rgb: tuple[float, float, float]
    shading_axis: int
    shading: float

    def centre(self, t: int, size: int) -> tuple[float, float]:
        x, y = self.start[0] + self.velocity[0] * t, self.start[1] + self.velocity[1] * t
        if self.motion == "bounce":  # reflect inside [r, size - r]
            x, y = (_reflect(v, self.radius, size - self.radius) for v in (x, y))
        return x, y


class Frame(NamedTuple):
    image: np.ndarray  # [H, W, 3] uint8
    instance: np.ndarray  # [H, W] int: 0 background, else the object's instance id
    kind_mask: np.ndarray  # [H, W] uint8: 0 background, 1 + index into world.kinds
    colour_mask: np.ndarray  # [H, W] uint8: 0 background, 1 + index into world.colours


def _reflect(value: float, low: float, high: float) -> float:
    if high <= low:
        return (low + high) / 2
    period = 2 * (high - low)
    offset = (value - low) % period
    return low + (offset if offset <= high - low else period - offset)


def clip_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, VIDEO_STREAM, index])


def plan_clip(rng: np.random.Generator, config: VideoConfig) -> list[MovingShape]:
    """The objects of one clip and their paths; the last one is sent through the first one's mid-clip position."""
    world, size, frames = config.world, config.world.image_size, config.frames
    shapes: list[MovingShape] = []
    count = int(rng.integers(config.objects[0], config.objects[1] + 1))
    for index in range(count):
        kind = world.kinds[int(rng.integers(len(world.kinds)))]
        colour = world.colours[int(rng.integers(len(world.colours)))]
        radius = 0.5 * rng.uniform(*world.size_range) * size * KIND_RADIUS[kind]
        speed = rng.uniform(*config.speed)
        heading = rng.uniform(0, 2 * math.pi)
        velocity = (speed * math.cos(heading), speed * math.sin(heading))
        motion = rng.choice(["bounce", "enter", "leave"], p=[1 - config.p_enter - config.p_leave, config.p_enter,
                                                              config.p_leave])  # fmt: skip
        start = _free_start(rng, radius, size, shapes)
        if motion == "enter":  # start just outside the border it is heading away from; cross within the clip
            travel = max(frames - 1, 1)
            velocity = _at_least(velocity, (size + 2 * radius) / travel * 0.8)
            start = _outside(start, velocity, radius, size)
        elif motion == "leave":  # straight on, fast enough to be out of the frame by the end of the clip
            velocity = _at_least(velocity, (size / 2 + radius) / max(frames / 2, 1))
        if index == count - 1 and count > 1:  # cross the first object's mid-clip position: an occlusion
            target = shapes[0].centre(frames // 2, size)
            start = (target[0] - velocity[0] * (frames // 2), target[1] - velocity[1] * (frames // 2))
            motion = "cross"
        rgb = tuple((np.array(COLOURS[colour], np.float32) + rng.uniform(-20, 20, size=3)).tolist())
        shapes.append(MovingShape(index + 1, kind, colour, float(radius), tuple(map(float, start)), velocity,
                                  float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(-1, 1) * config.max_spin),
                                  str(motion), rgb, int(rng.integers(2)), float(rng.uniform(-0.15, 0.15))))  # fmt: skip
    return shapes


def _free_start(rng: np.random.Generator, radius: float, size: int, shapes: list[MovingShape]) -> tuple[float, float]:
    """A start inside the frame, away from the shapes placed so far when there is room (a few tries)."""
    start = (size / 2, size / 2)
    for _attempt in range(8):
        if radius < size / 2:
            start = tuple(rng.uniform(radius, size - radius, size=2))
        if all(math.dist(start, s.centre(0, size)) >= 0.8 * (radius + s.radius) for s in shapes):
            break
    return start


def _at_least(velocity: tuple[float, float], speed: float) -> tuple[float, float]:
    norm = math.hypot(*velocity)
    scale = max(1.0, speed / max(norm, 1e-6))
    return velocity[0] * scale, velocity[1] * scale


def _outside(start: tuple[float, float], velocity: tuple[float, float], radius: float, size: int) -> tuple[float, ...]:
    """Move ``start`` back along ``velocity`` until the shape is wholly outside the frame."""
    x, y = start
    while -radius < x < size + radius and -radius < y < size + radius:
        x, y = x - velocity[0], y - velocity[1]
    return x, y


def render_frame(shapes: list[MovingShape], background: np.ndarray, t: int, rng: np.random.Generator,
                 config: VideoConfig) -> Frame:  # fmt: skip
    """Frame ``t``: shapes drawn back to front; a pixel belongs to the topmost shape covering at least half of it."""
    world = config.world
    size = world.image_size
    image = background + rng.normal(0, config.noise, size=background.shape)
    instance = np.zeros((size, size), np.int32)
    kinds = np.zeros((size, size), np.uint8)
    colours = np.zeros((size, size), np.uint8)
    for shape in shapes:
        cx, cy = shape.centre(t, size)
        angle = shape.angle + shape.spin * t
        cover = _coverage(shape.kind, cx, cy, shape.radius, angle, size, world.supersample)
        inside = cover >= 0.5
        if not cover.any():
            continue
        shading = 1 + shape.shading * (np.mgrid[0:size, 0:size][shape.shading_axis] / size - 0.5)
        phase = (shape.instance % 2, shape.instance // 2 % 2)  # fixed per object: no flicker between frames
        shading = shading * pattern_shading(shape.kind, world, cx, cy, angle, rng, phase)
        fill = np.array(shape.rgb, np.float32) * shading[..., None] + rng.normal(0, 5, size=(size, size, 3))
        image = image * (1 - cover[..., None]) + fill * cover[..., None]
        instance[inside] = shape.instance
        kinds[inside] = 1 + world.kinds.index(shape.kind)
        colours[inside] = 1 + world.colours.index(shape.colour)
    return Frame(np.clip(image, 0, 255).astype(np.uint8), instance, kinds, colours)


def make_clip(seed: int, index: int, config: VideoConfig) -> tuple[list[MovingShape], list[Frame]]:
    rng = clip_rng(seed, index)
    shapes = plan_clip(rng, config)
    background, _texture = _background(rng, config.world.image_size, config.world.backgrounds)
    return shapes, [render_frame(shapes, background, t, rng, config) for t in range(config.frames)]


def panomask(labels: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """VIPSeg's panomask encoding (uint16): 0 void, ``c + 1`` for stuff class ``c`` (here the background),
    ``(c + 1) * 100 + instance`` for things (decoded by :func:`groupseg.video.vipseg.decode_panomask`)."""
    raw = np.where(instance > 0, (labels.astype(np.int64) + 1) * 100 + instance, labels.astype(np.int64) + 1)
    return raw.astype(np.uint16)


def categories(names: list[str]) -> list[dict]:
    """VIPSeg's category list: id, name, isthing (the background is stuff, every object class a thing)."""
    return [{"id": i, "name": name, "isthing": int(i > 0)} for i, name in enumerate(["background", *names])]


def write_clips(out_dir: str | Path, num: int, config: VideoConfig | None = None, seed: int = 0,
                split: str = "val") -> Path:  # fmt: skip
    """``num`` clips in VIPSeg's layout under ``out_dir`` (module docstring), plus ``clips.json`` describing each
    clip's objects and ``world.json`` with the settings."""
    config = config or VideoConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names, described = [], {}
    vocab = vocabularies(config.world)
    for index in range(num):
        name = f"clip_{index:04d}"
        shapes, frames = make_clip(seed, index, config)
        folders = {sub: out_dir / sub / name for sub in ("images", *LABELINGS)}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        visible = {s.instance: [] for s in shapes}
        for t, frame in enumerate(frames):
            (folders["images"] / f"{t:05d}.jpg").write_bytes(_jpeg(frame.image))
            for sub, mask in (("panomasks", frame.kind_mask), ("panomasks_colours", frame.colour_mask)):
                Image.fromarray(panomask(mask, frame.instance)).save(folders[sub] / f"{t:05d}.png")
            for instance in np.unique(frame.instance[frame.instance > 0]).tolist():
                visible[instance].append(t)
        names.append(name)
        described[name] = [dict(instance=s.instance, kind=s.kind, colour=s.colour, motion=s.motion,
                                frames_visible=len(visible[s.instance]),
                                first_frame=visible[s.instance][0] if visible[s.instance] else None,
                                last_frame=visible[s.instance][-1] if visible[s.instance] else None)
                           for s in shapes]  # fmt: skip
    (out_dir / f"{split}.txt").write_text("\n".join(names) + "\n")
    for sub, (category_file, vocab_file) in LABELINGS.items():
        (out_dir / category_file).write_text(json.dumps(categories(vocab[vocab_file][1]), indent=1))
    for filename, (_, classes) in vocab.items():
        (out_dir / filename).write_text("\n".join(["background", *classes]) + "\n")
    (out_dir / "clips.json").write_text(json.dumps(described, indent=1))
    (out_dir / "world.json").write_text(json.dumps({"seed": seed, "split": split, **asdict(config)}, indent=1))
    return out_dir
