"""The synthetic world: a procedural stand-in for CC12M + PASCAL VOC that trains and evaluates on a laptop CPU.

Images hold a few coloured shapes (several kinds, sizes, rotations, overlaps) on muted textured backgrounds; captions
describe them in varied natural English (synonyms, plurals, adjectives, distractor words). Training pairs are written
as img2dataset webdataset shards, exactly what real training reads; the held-out segmentation set is a PASCAL VOC
directory read by mmseg's own VOC dataset class. Every image is a pure function of ``(seed, split, index)``.
"""
from __future__ import annotations

import io
import json
import math
import tarfile
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
from PIL import Image, ImageDraw

# -- the world's vocabulary -----------------------------------------------------------------------------------------
# kind → (singular synonyms, plural of each). The first synonym is the class name used for evaluation.
KINDS: dict[str, tuple[tuple[str, str], ...]] = {
    "circle": (("circle", "circles"), ("disc", "discs"), ("disk", "disks")),
    "square": (("square", "squares"), ("box", "boxes"), ("block", "blocks")),
    "triangle": (("triangle", "triangles"), ("wedge", "wedges")),
    "star": (("star", "stars"), ("starburst", "starbursts")),
    "cross": (("cross", "crosses"), ("plus sign", "plus signs")),
    "heart": (("heart", "hearts"), ("love heart", "love hearts")),
}
# Relative drawing radius per kind, so that kinds of the same nominal size cover similar areas.
KIND_RADIUS = {"circle": 0.9, "square": 1.0, "triangle": 1.2, "star": 1.25, "cross": 1.1, "heart": 1.05}
# Each kind also has its own surface pattern: a local cue, as real categories have texture as well as outline.
KIND_PATTERN = {"circle": "solid", "square": "stripes", "triangle": "dots", "star": "checker", "cross": "grid",
                "heart": "speckle"}  # fmt: skip
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 170, 60),
    "blue": (35, 75, 215),
    "yellow": (240, 215, 40),
    "purple": (140, 55, 195),
    "orange": (245, 135, 25),
    "pink": (245, 120, 190),
    # more hues, for worlds with a finer colour vocabulary (WorldConfig.colours)
    "lime": (150, 230, 40),
    "teal": (30, 190, 160),
    "cyan": (40, 205, 235),
    "magenta": (220, 40, 230),
    "brown": (140, 80, 30),
}
HYPERNYMS = (("shape", "shapes"), ("object", "objects"), ("thing", "things"))
BACKGROUNDS = {  # texture → words a caption may use for it
    "plain": ("plain", "grey", "simple"),
    "noise": ("noisy", "grainy", "speckled"),
    "stripes": ("striped", "lined"),
    "checker": ("checkered", "tiled"),
    "clouds": ("cloudy", "blotchy", "mottled"),
    "gradient": ("shaded", "gradient"),
}
NUMBERS = {2: "two", 3: "three", 4: "four"}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
STYLE_WORDS = ("bright", "flat", "shiny", "plain", "solid", "colourful")
JOINERS = (" and ", " and ", " with ", " next to ", " beside ", " near ")
FRAMES = (
    "{}", "{}", "{}", "{}.", "a picture of {}", "an image of {}", "a photo of {}", "a drawing of {}",
    "there is {} in the picture", "here we see {}", "{} in a picture", "a simple scene with {}",
    "{} on a {bg} background", "{} on a {bg} background", "{}, drawn on {bg} paper", "{} against a {bg} backdrop",
    "a {bg} background with {}", "look at {}!", "my drawing: {}", "{} floating in space",
)  # fmt: skip


@dataclass
class WorldConfig:
    """Everything that shapes the world. Defaults are the world the synthetic configs train on."""

    image_size: int = 32
    kinds: tuple[str, ...] = tuple(KINDS)
    backgrounds: tuple[str, ...] = tuple(BACKGROUNDS)  # background textures to draw from
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange", "pink")
    num_objects: tuple[float, ...] = (0.5, 0.35, 0.15)  # P(1 object), P(2), P(3) ...
    size_range: tuple[float, float] = (0.45, 0.7)  # object diameter as a fraction of the image side
    p_duplicate: float = 0.1  # an extra object repeats one already placed (same kind and colour) → plural
    max_occlusion: float = 0.35  # an object may lose at most this fraction of its area to later objects
    p_name_all: float = 0.9  # the caption names every object; otherwise a random non-empty subset
    p_synonym: float = 0.25  # a named kind uses one of its synonyms instead of its class name
    p_hypernym: float = 0.05  # a named kind is only called "shape" / "object" / "thing"
    p_colour_word: float = 0.9  # a named object gets its colour adjective
    p_size_word: float = 0.2
    p_style_word: float = 0.1
    p_frame: float = 0.5  # the phrase list is wrapped in a frame ("a picture of ...", "... on a striped background")
    patterns: bool = True  # kinds carry their surface pattern (see pattern_frame); False: flat fills, outline only
    # "pixel": each kind's pattern at a 2 px period on the pixel grid (KIND_PIXEL_PATTERN: rows, columns, checker,
    # ...), whole inside any 2 x 2 patch whatever the object's angle; "object" (before 2026-12-02): KIND_PATTERN
    # turning with the object at pattern_period
    pattern_frame: Literal["pixel", "object"] = "pixel"
    pattern_period: float = 4.0  # pixels (pattern_frame "object")
    supersample: int = 4  # shapes are drawn at this factor and box-filtered down: antialiased edges, exact coverage

    def __post_init__(self):
        from ..schema import check_value  # every value of its field's type (e.g. image_size=abc is refused here)

        hints = typing.get_type_hints(WorldConfig)
        for f in fields(self):
            setattr(self, f.name, check_value(getattr(self, f.name), hints[f.name], f.name))
        low, high = self.size_range
        if self.image_size < 8 or self.supersample < 1 or self.pattern_period <= 0:
            raise ValueError(f"need image_size >= 8, supersample >= 1 and pattern_period > 0, got {self.image_size}, "
                             f"{self.supersample}, {self.pattern_period}")  # fmt: skip
        if not 0 < low <= high <= 1:
            raise ValueError(f"size_range must be (low, high) with 0 < low <= high <= 1, got {self.size_range}")
        for name in ("p_duplicate", "max_occlusion", "p_name_all", "p_synonym", "p_hypernym", "p_colour_word",
                     "p_size_word", "p_style_word", "p_frame", "num_objects"):  # fmt: skip
            values = getattr(self, name)
            if not all(0 <= v <= 1 for v in (values if isinstance(values, tuple) else (values,))):
                raise ValueError(f"{name} must be probabilities in [0, 1], got {values}")
        vocabularies = (("shape kind", self.kinds, KINDS), ("background texture", self.backgrounds, BACKGROUNDS),
                        ("colour", self.colours, COLOURS))  # fmt: skip
        for what, names, known in vocabularies:
            for name in names:
                if name not in known:
                    raise ValueError(f"unknown {what} {name!r}; the world knows {sorted(known)}")
        if not self.num_objects or abs(sum(self.num_objects) - 1) > 1e-6:
            raise ValueError(
                f"num_objects must be probabilities of 1, 2, ... objects summing to 1, got {self.num_objects}"
            )


class Shape(NamedTuple):
    kind: str
    colour: str
    size: float  # diameter / image side
    pixels: int  # visible pixels in the label mask


class Scene(NamedTuple):
    image: np.ndarray  # [H, W, 3] uint8
    kind_mask: np.ndarray  # [H, W] uint8: 0 background, 1 + index into config.kinds
    colour_mask: np.ndarray  # [H, W] uint8: 0 background, 1 + index into config.colours
    shapes: list[Shape]  # in drawing order, only those still visible
    background: str
    instance_mask: np.ndarray  # [H, W] uint8: 0 background, 1 + index into shapes (one id per visible object)


SPLITS = {"train": 0, "val": 1, "dev": 2}


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Each image has its own generator, so any image can be made alone, in any order, by any worker."""
    return np.random.default_rng([seed, SPLITS[split], index])


# -- drawing --------------------------------------------------------------------------------------------------------
def _outline(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]] | None:
    """Polygon vertices of a shape of circumradius ``r``; ``None`` for the circle (drawn as an ellipse)."""
    if kind == "circle":
        return None
    if kind == "square":
        t = np.arange(4) * (math.pi / 2) + math.pi / 4
        rad = np.full(4, r)
    elif kind == "triangle":
        t = np.arange(3) * (2 * math.pi / 3) - math.pi / 2
        rad = np.full(3, r)
    elif kind == "star":
        t = np.arange(10) * (math.pi / 5) - math.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    elif kind == "cross":
        w = 0.34  # half arm width / r
        xs = np.array([w, w, 1, 1, w, w, -w, -w, -1, -1, -w, -w])
        ys = np.array([1, w, w, -w, -w, -1, -1, -w, -w, w, w, 1])
        t, rad = np.arctan2(ys, xs), np.hypot(xs, ys) * r / math.sqrt(1 + w * w)
    elif kind == "heart":
        s = np.linspace(0, 2 * math.pi, 40, endpoint=False)
        xs = 16 * np.sin(s) ** 3
        ys = -(13 * np.cos(s) - 5 * np.cos(2 * s) - 2 * np.cos(3 * s) - np.cos(4 * s)) - 2.5
        t, rad = np.arctan2(ys, xs), np.hypot(xs, ys) * r / 16.5
    else:
        raise ValueError(f"unknown shape kind {kind!r}")
    t = t + angle
    return list(zip((cx + rad * np.cos(t)).tolist(), (cy + rad * np.sin(t)).tolist()))


def _coverage(kind: str, cx: float, cy: float, r: float, angle: float, size: int, ss: int) -> np.ndarray:
    """Fraction of each pixel covered by the shape, ``[size, size]`` float32 in [0, 1]."""
    canvas = Image.new("L", (size * ss, size * ss), 0)
    draw = ImageDraw.Draw(canvas)
    points = _outline(kind, cx * ss, cy * ss, r * ss, angle)
    if points is None:
        draw.ellipse([(cx - r) * ss, (cy - r) * ss, (cx + r) * ss, (cy + r) * ss], fill=255)
    else:
        draw.polygon(points, fill=255)
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a random ``cells × cells`` grid, bilinearly upsampled."""
    grid = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    return np.asarray(grid.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def _background(rng: np.random.Generator, size: int, textures: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """A muted (low-saturation) textured background, so object colours stay the only saturated pixels."""
    texture = textures[int(rng.integers(len(textures)))]
    base = rng.uniform(70, 190)
    tint = rng.uniform(-18, 18, size=3)
    tone_a, tone_b = base + tint, base + tint + rng.choice([-1, 1]) * rng.uniform(25, 60)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if texture == "plain":
        mix = np.zeros((size, size), np.float32)
    elif texture == "noise":
        mix = rng.random((size, size), dtype=np.float32)
    elif texture == "stripes":
        theta, period = rng.uniform(0, math.pi), rng.uniform(0.12, 0.3)
        mix = (np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period) > 0).astype(np.float32)
    elif texture == "checker":
        cells = rng.integers(3, 7)
        mix = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2).astype(np.float32)
    elif texture == "clouds":
        mix = _smooth_noise(rng, size, int(rng.integers(3, 6)))
    else:  # gradient
        theta = rng.uniform(0, 2 * math.pi)
        mix = xx * math.cos(theta) + yy * math.sin(theta)
        mix = (mix - mix.min()) / max(float(mix.max() - mix.min()), 1e-6)
    image = tone_a + mix[..., None] * (tone_b - tone_a)
    image += rng.normal(0, 4, size=image.shape)  # sensor grain on every background
    return image, texture


# The kinds' patterns on the pixel grid (pattern_frame "pixel"): period 2 px, so one 2 x 2 patch holds a whole
# period whatever the object's position and angle, and flips keep each pattern what it is.
KIND_PIXEL_PATTERN = {"circle": "solid", "square": "rows", "triangle": "dots", "star": "checker", "cross": "columns",
                      "heart": "holes"}  # fmt: skip


def _pixel_pattern(name: str, size: int, phase: tuple[int, int]) -> np.ndarray:
    """A kind's 2-pixel pattern in [0, 1] (1 = darker tone), shifted by ``phase`` (rows, columns; 0 or 1 each)."""
    yy, xx = np.mgrid[0:size, 0:size]
    row, col = (yy + phase[0]) % 2, (xx + phase[1]) % 2
    patterns = {"solid": 0 * row, "rows": row, "columns": col, "checker": (row + col) % 2, "dots": row * col,
                "holes": 1 - row * col}  # fmt: skip
    if name not in patterns:
        raise ValueError(f"unknown pixel pattern {name!r}")
    return patterns[name].astype(np.float32)


def _pattern(
    name: str, cx: float, cy: float, angle: float, size: int, period: float, rng: np.random.Generator
) -> np.ndarray:
    """A kind's surface pattern in [0, 1] (1 = darker tone), in the object's own rotated frame."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
    v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
    if name == "solid":
        return np.zeros((size, size), np.float32)
    if name == "stripes":
        return (np.floor(u / (period / 2)) % 2).astype(np.float32)
    if name == "checker":
        return ((np.floor(u / (period / 2)) + np.floor(v / (period / 2))) % 2).astype(np.float32)
    if name == "dots":
        du, dv = (u % period) - period / 2, (v % period) - period / 2
        return (du * du + dv * dv < (0.3 * period) ** 2).astype(np.float32)
    if name == "grid":
        return (((u % period) < period / 4) | ((v % period) < period / 4)).astype(np.float32)
    if name == "speckle":
        return (rng.random((size, size)) < 0.35).astype(np.float32)
    raise ValueError(f"unknown pattern {name!r}")


def pattern_shading(kind: str, config: WorldConfig, cx: float, cy: float, angle: float, rng: np.random.Generator,
                    phase: tuple[int, int] | None = None) -> np.ndarray | float:  # fmt: skip
    """The factor a kind's surface pattern puts on an object's fill: 1 - 0.45 on the pattern's darker tone (1 with
    ``patterns`` off). On the pixel grid the pattern's phase is ``phase`` (a video keeps one per object, so it does
    not flicker) or drawn from ``rng``; in the object's frame it turns with ``angle`` about (``cx``, ``cy``)."""
    if not config.patterns:
        return 1.0
    if config.pattern_frame == "pixel":
        phase = tuple(rng.integers(2, size=2)) if phase is None else phase
        pattern = _pixel_pattern(KIND_PIXEL_PATTERN[kind], config.image_size, phase)
    else:
        pattern = _pattern(KIND_PATTERN[kind], cx, cy, angle, config.image_size, config.pattern_period, rng)
    return 1 - 0.45 * pattern


def render(rng: np.random.Generator, config: WorldConfig) -> Scene:
    """Draw one scene; the label masks hold, per pixel, the topmost object covering at least half of it."""
    size, ss = config.image_size, config.supersample
    image, texture = _background(rng, size, config.backgrounds)
    kind_mask = np.zeros((size, size), np.uint8)
    colour_mask = np.zeros((size, size), np.uint8)
    owner = np.full((size, size), -1, np.int16)  # which placed object each pixel shows
    count = 1 + int(rng.choice(len(config.num_objects), p=config.num_objects))
    placed: list[tuple[str, str, float, int]] = []  # kind, colour, size, full pixel area
    for _ in range(count):
        if placed and rng.random() < config.p_duplicate:
            kind, colour = placed[int(rng.integers(len(placed)))][:2]
        else:
            kind = config.kinds[int(rng.integers(len(config.kinds)))]
            colour = config.colours[int(rng.integers(len(config.colours)))]
        for _attempt in range(8):
            diameter = rng.uniform(*config.size_range)
            r = 0.5 * diameter * size * KIND_RADIUS[kind]
            cx, cy = rng.uniform(r, size - r, size=2) if r < size / 2 else (size / 2, size / 2)
            angle = rng.uniform(0, 2 * math.pi)
            cover = _coverage(kind, cx, cy, r, angle, size, ss)
            inside = cover >= 0.5
            if inside.sum() < 4:
                continue
            # Would drawing this hide too much of an earlier object?
            hidden = np.bincount(owner[inside & (owner >= 0)], minlength=len(placed))
            visible = np.bincount(owner[owner >= 0], minlength=len(placed))
            if all(
                h <= config.max_occlusion * p[3] and visible[i] - h > 0 for i, (h, p) in enumerate(zip(hidden, placed))
            ):
                break
        else:
            continue  # no room for this object
        rgb = np.array(COLOURS[colour], np.float32) + rng.uniform(-20, 20, size=3)
        shading = 1 + rng.uniform(-0.15, 0.15) * (np.mgrid[0:size, 0:size][int(rng.integers(2))] / size - 0.5)
        shading = shading * pattern_shading(kind, config, cx, cy, angle, rng)
        fill = rgb * shading[..., None] + rng.normal(0, 5, size=(size, size, 3))
        image = image * (1 - cover[..., None]) + fill * cover[..., None]
        owner[inside] = len(placed)
        kind_mask[inside] = 1 + config.kinds.index(kind)
        colour_mask[inside] = 1 + config.colours.index(colour)
        placed.append((kind, colour, diameter, int(inside.sum())))
    pixels = np.bincount(owner[owner >= 0], minlength=len(placed))
    shapes = [Shape(k, c, d, int(n)) for (k, c, d, _), n in zip(placed, pixels) if n > 0]
    visible_id = np.concatenate([np.cumsum(pixels > 0) * (pixels > 0), [0]]).astype(np.uint8)  # owner -1 → last → 0
    return Scene(np.clip(image, 0, 255).astype(np.uint8), kind_mask, colour_mask, shapes, texture, visible_id[owner])


# -- captions -------------------------------------------------------------------------------------------------------
def _choice(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def caption(scene: Scene, rng: np.random.Generator, config: WorldConfig) -> str:
    """A varied English description naming all (usually) or some of the scene's objects."""
    groups: dict[tuple[str, str], list[Shape]] = {}
    for shape in scene.shapes:
        groups.setdefault((shape.kind, shape.colour), []).append(shape)
    keys = list(groups)
    order = rng.permutation(len(keys))
    keys = [keys[i] for i in order]
    if len(keys) > 1 and rng.random() >= config.p_name_all:
        keys = keys[: int(rng.integers(1, len(keys)))]
    phrases = []
    for kind, colour in keys:
        members = groups[(kind, colour)]
        if rng.random() < config.p_hypernym:
            noun = _choice(rng, HYPERNYMS)
        elif rng.random() < config.p_synonym:
            noun = _choice(rng, KINDS[kind][1:])
        else:
            noun = KINDS[kind][0]
        words = []
        if rng.random() < config.p_size_word:
            mean_size = sum(s.size for s in members) / len(members)
            low, high = config.size_range
            words.append(_choice(rng, SIZE_WORDS["small" if mean_size < (low + high) / 2 else "large"]))
        if rng.random() < config.p_style_word:
            words.append(_choice(rng, STYLE_WORDS))
        if rng.random() < config.p_colour_word:
            words.append(colour)
        plural = len(members) > 1
        words.append(noun[1] if plural else noun[0])
        article = NUMBERS.get(len(members), "many") if plural else ("an" if words[0][0] in "aeiou" else "a")
        phrases.append(" ".join([article, *words]))
    if len(phrases) == 1:
        body = phrases[0]
    elif rng.random() < 0.5:
        body = ", ".join(phrases[:-1]) + " and " + phrases[-1]
    else:
        body = phrases[0]
        for phrase in phrases[1:]:
            body += _choice(rng, JOINERS) + phrase
    if rng.random() < config.p_frame:
        body = _choice(rng, FRAMES).format(body, bg=_choice(rng, BACKGROUNDS[scene.background]))
    return body[0].upper() + body[1:] if rng.random() < 0.3 else body


def sample(seed: int, split: str, index: int, config: WorldConfig) -> tuple[Scene, str]:
    rng = scene_rng(seed, split, index)
    scene = render(rng, config)
    return scene, caption(scene, rng, config)


# -- writers --------------------------------------------------------------------------------------------------------
def _voc_palette() -> list[int]:
    """PASCAL VOC's colour map (bit-interleaved), so masks look like VOC's in any viewer."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


VOC_PALETTE = _voc_palette()


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95, subsampling=0)  # 4:4:4 keeps small shapes' colours
    return buffer.getvalue()


def _png_mask(mask: np.ndarray) -> bytes:
    image = Image.fromarray(mask, mode="P")
    image.putpalette(VOC_PALETTE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # fixed metadata: byte-identical shards for a seed
    tar.addfile(info, io.BytesIO(data))


def write_pairs(
    out_dir: str | Path, num: int, config: WorldConfig, seed: int = 0, shard_size: int = 5000, first_shard: int = 0
) -> list[Path]:
    """img2dataset-layout shards ``out_dir/{00000..}.tar`` of ``KEY.jpg``, ``KEY.txt``, ``KEY.json`` (+ the
    ``_stats.json`` img2dataset writes beside each shard). ``first_shard`` lets several processes write one set."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards, digits = [], max(4, len(str(shard_size - 1)))  # img2dataset: key = shard number + index in shard
    for shard in range(first_shard, first_shard + math.ceil(num / shard_size)):
        path = out_dir / f"{shard:05d}.tar"
        start = shard * shard_size
        count = min(shard_size, first_shard * shard_size + num - start)
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for offset in range(count):
                scene, text = sample(seed, "train", start + offset, config)
                key = f"{shard:05d}{offset:0{digits}d}"
                meta = {
                    "key": key, "caption": text, "status": "success", "width": config.image_size,
                    "height": config.image_size, "background": scene.background,
                    "objects": [s._asdict() for s in scene.shapes],
                }  # fmt: skip
                _add(tar, f"{key}.jpg", _jpeg(scene.image))
                _add(tar, f"{key}.txt", text.encode())
                _add(tar, f"{key}.json", json.dumps(meta).encode())
        stats = {"count": count, "successes": count, "failed_to_download": 0, "failed_to_resize": 0}
        (out_dir / f"{shard:05d}_stats.json").write_text(json.dumps(stats))
        shards.append(path)
    return shards


class EvalVocabulary(NamedTuple):
    """One of the two ways the held-out set is evaluated: its vocabulary file (in the val folder), the folder of its
    masks, and the mmseg config (relative to the repository) that evaluates it with its own background threshold."""

    file: str
    masks: str
    config: str


EVAL_VOCABULARIES = {
    "shapes": EvalVocabulary("classes.txt", "SegmentationClass", "configs/synthetic/zeroshot_synthetic.py"),
    "colours": EvalVocabulary("colours.txt", "SegmentationClassColour",
                              "configs/synthetic/zeroshot_synthetic_colours.py"),
}


# Vocabularies written beside the segmentation set: file name → (mask folder, class names after "background").
def vocabularies(config: WorldConfig) -> dict[str, tuple[str, list[str]]]:
    return {
        "classes.txt": ("SegmentationClass", [KINDS[k][0][0] for k in config.kinds]),
        "synonyms.txt": ("SegmentationClass", [KINDS[k][1][0] for k in config.kinds]),
        "colours.txt": ("SegmentationClassColour", [f"{c} shape" for c in config.colours]),
    }


def write_segmentation(
    out_dir: str | Path, num: int, config: WorldConfig, seed: int = 0, split: str = "val"
) -> Path:
    """A PASCAL VOC directory: JPEGImages, SegmentationClass (shape kinds), SegmentationClassColour (colours),
    ImageSets/Segmentation/<split>.txt and one vocabulary file per way of naming the masks."""
    out_dir = Path(out_dir)
    folders = {name: out_dir / name for name in ("JPEGImages", "SegmentationClass", "SegmentationClassColour")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(num):
        scene, _ = sample(seed, split, index, config)
        name = f"{split}_{index:06d}"
        (folders["JPEGImages"] / f"{name}.jpg").write_bytes(_jpeg(scene.image))
        (folders["SegmentationClass"] / f"{name}.png").write_bytes(_png_mask(scene.kind_mask))
        (folders["SegmentationClassColour"] / f"{name}.png").write_bytes(_png_mask(scene.colour_mask))
        names.append(name)
    split_file = out_dir / "ImageSets" / "Segmentation" / f"{split}.txt"
    split_file.parent.mkdir(parents=True, exist_ok=True)
    split_file.write_text("\n".join(names) + "\n")
    for filename, (_, classes) in vocabularies(config).items():
        (out_dir / filename).write_text("\n".join(["background", *classes]) + "\n")
    (out_dir / "world.json").write_text(json.dumps({"seed": seed, "split": split, **asdict(config)}, indent=1))
    return out_dir


def all_background_miou(mask_dir: str | Path, num_classes: int) -> float:
    """The all-background baseline: mIoU of predicting label 0 everywhere, as mmseg's IoUMetric scores it (classes
    absent from both ground truth and prediction are left out of the mean; 255 is ignored)."""
    inter, union = np.zeros(num_classes), np.zeros(num_classes)
    for png in sorted(Path(mask_dir).glob("*.png")):
        gt = np.asarray(Image.open(png)).astype(np.int64)
        valid = gt != 255
        counts = np.bincount(gt[valid], minlength=num_classes)[:num_classes]
        inter[0] += counts[0]
        union += counts
        union[0] += valid.sum() - counts[0]  # background predicted on every valid pixel
    present = union > 0
    return float(100 * (inter[present] / union[present]).mean())


def all_background_baselines(val_dir: str | Path) -> dict[str, float]:
    """``all_background_miou`` of a held-out set under each of ``EVAL_VOCABULARIES``, labels counted as the
    evaluation counts them (by the vocabulary parser: comments and ``template:`` lines are not labels)."""
    from ..zeroshot.vocabulary import parse_vocabulary  # imported here: groupseg.zeroshot loads mmseg

    val_dir = Path(val_dir)
    return {name: all_background_miou(val_dir / masks, len(parse_vocabulary(val_dir / vocab).names))
            for name, (vocab, masks, _) in EVAL_VOCABULARIES.items()}  # fmt: skip
