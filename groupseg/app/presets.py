"""What the page offers to start from: vocabularies of the benchmarks and of the synthetic world, and held-out images.

The benchmark vocabularies are read from the evaluation configs (``configs/_base_/datasets``: the official prompt
names), the synthetic world's from :func:`groupseg.synthetic.world.vocabularies`, so the page never has a copy of its
own to drift.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..synthetic.world import WorldConfig, vocabularies


@dataclass(frozen=True)
class Preset:
    text: str  # the vocabulary, one entry a line
    bg_thresh: float | None = None  # the official background threshold for this benchmark (softmax-score rule)


BENCHMARK_CONFIGS = {  # preset name → (dataset config, official bg_thresh)
    "PASCAL VOC": ("pascal_voc12.py", 0.95),
    "PASCAL Context": ("pascal_context.py", 0.35),
    "COCO-Object": ("coco_object.py", 0.95),
}
SYNTHETIC_VOCABULARIES = {"synthetic world: colours": "colours.txt", "synthetic world: shapes": "classes.txt"}


def vocabulary_presets(config_dir: str | Path | None = None) -> dict[str, Preset]:
    """The synthetic world's two vocabularies, then VOC, Context and COCO-Object where ``config_dir`` (a checkout's
    ``configs/``) has their dataset configs."""
    world = vocabularies(WorldConfig())
    presets = {name: Preset("\n".join(["background", *world[file][1]]))
               for name, file in SYNTHETIC_VOCABULARIES.items()}  # fmt: skip
    if config_dir is not None:
        from mmengine.config import Config

        for name, (file, bg_thresh) in BENCHMARK_CONFIGS.items():
            path = Path(config_dir) / "_base_" / "datasets" / file
            if path.is_file():
                presets[name] = Preset("\n".join(Config.fromfile(str(path)).class_names), bg_thresh)
    return presets


def held_out_images(val_dir: str | Path, limit: int = 12) -> list[str]:
    """The first ``limit`` images of a synthetic held-out set (PASCAL VOC layout), in its split order; [] if absent."""
    val_dir = Path(val_dir)
    split = val_dir / "ImageSets" / "Segmentation" / "val.txt"
    if not split.is_file():
        return []
    names = split.read_text().split()[:limit]
    return [str(p) for p in (val_dir / "JPEGImages" / f"{n}.jpg" for n in names) if p.is_file()]
