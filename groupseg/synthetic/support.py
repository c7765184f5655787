"""The synthetic world's support split: labelled examples to define classes by (exemplars, few-shot supports).

Images come from the world's own ``render``, but from a seed space of their own: image ``i`` of seed ``s`` is drawn
from ``np.random.default_rng([s, SUPPORT_SPACE, i])``, and ``SUPPORT_SPACE`` is no split id of ``world.SPLITS``
(train 0, val 1, dev 2), so no support image is ever a training, held-out or dev image. The folder has the held-out
set's PASCAL VOC layout (``JPEGImages``, ``SegmentationClass``, ``SegmentationClassColour``,
``ImageSets/Segmentation/support.txt``, the text vocabularies) plus vocabularies that define each class by one
exemplar taken from it (``exemplars.txt`` / ``exemplars_colours.txt``) or by its name and that exemplar
(``text_exemplars.txt`` / ``text_exemplars_colours.txt``), ready for ``tools/test.py --vocab``.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .world import Scene, WorldConfig, _jpeg, _png_mask, render, vocabularies

SPLIT = "support"
SUPPORT_SPACE = int.from_bytes(b"support", "big")  # far from every split id in world.SPLITS
# exemplar vocabulary file → (mask folder, text vocabulary it defines by example, also name the class in text,
# exemplars per class)
EXEMPLAR_VOCABULARIES = {
    "exemplars.txt": ("SegmentationClass", "classes.txt", False, 1),
    "exemplars_colours.txt": ("SegmentationClassColour", "colours.txt", False, 1),
    "text_exemplars.txt": ("SegmentationClass", "classes.txt", True, 1),
    "text_exemplars_colours.txt": ("SegmentationClassColour", "colours.txt", True, 1),
    "exemplars_5.txt": ("SegmentationClass", "classes.txt", False, 5),
    "exemplars_5_colours.txt": ("SegmentationClassColour", "colours.txt", False, 5),
}


def support_scene(seed: int, index: int, config: WorldConfig) -> Scene:
    """Support image ``index`` of world ``seed``: a pure function of the two, as every image of the world."""
    return render(np.random.default_rng([seed, SUPPORT_SPACE, index]), config)


def write_support(out_dir: str | Path, num: int, config: WorldConfig, seed: int = 0) -> Path:
    """The support split as a PASCAL VOC folder (module docstring), with its text and exemplar vocabularies."""
    out_dir = Path(out_dir)
    folders = {name: out_dir / name for name in ("JPEGImages", "SegmentationClass", "SegmentationClassColour")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    names, scenes = [], []
    for index in range(num):
        scene = support_scene(seed, index, config)
        name = f"{SPLIT}_{index:06d}"
        (folders["JPEGImages"] / f"{name}.jpg").write_bytes(_jpeg(scene.image))
        (folders["SegmentationClass"] / f"{name}.png").write_bytes(_png_mask(scene.kind_mask))
        (folders["SegmentationClassColour"] / f"{name}.png").write_bytes(_png_mask(scene.colour_mask))
        names.append(name)
        scenes.append(scene)
    split_file = out_dir / "ImageSets" / "Segmentation" / f"{SPLIT}.txt"
    split_file.parent.mkdir(parents=True, exist_ok=True)
    split_file.write_text("\n".join(names) + "\n")
    text_vocabularies = vocabularies(config)
    for filename, (_, classes) in text_vocabularies.items():
        (out_dir / filename).write_text("\n".join(["background", *classes]) + "\n")
    for filename, (masks, text_file, with_text, per_class) in EXEMPLAR_VOCABULARIES.items():
        classes = text_vocabularies[text_file][1]
        lines = [f"# {per_class} exemplar(s) per class from this support split ({masks})"
                 f"{', with the class name' * with_text}", "background"]  # fmt: skip
        for label, class_name in enumerate(classes, 1):
            chosen = examples_of(scenes, masks, label, per_class)
            if not chosen:  # too few support images: the class keeps its name only
                lines.append(f"{class_name}  # no support image holds it: write more support images")
                continue
            lines += [class_name] if with_text else []
            lines += [f"{class_name}: exemplar=JPEGImages/{names[i]}.jpg mask={masks}/{names[i]}.png id={label}"
                      for i in chosen]  # fmt: skip
        (out_dir / filename).write_text("\n".join(lines) + "\n")
    (out_dir / "world.json").write_text(json.dumps({"seed": seed, "split": SPLIT, **asdict(config)}, indent=1))
    return out_dir


def examples_of(scenes: list[Scene], masks: str, label: int, count: int) -> list[int]:
    """The first ``count`` scenes whose only object is of class ``label`` (in the ``masks`` labelling), the cleanest
    examples; then, if there are too few, scenes holding it among others."""
    label_maps = [scene.kind_mask if masks == "SegmentationClass" else scene.colour_mask for scene in scenes]
    holding = [i for i, labels in enumerate(label_maps) if (labels == label).any()]
    alone = [i for i in holding if len(scenes[i].shapes) == 1]
    return (alone + [i for i in holding if i not in alone])[:count]
