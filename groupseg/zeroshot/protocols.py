"""Evaluation protocols: how an image is resized and cropped and how class names are prompted, as three codebases do it.

The same checkpoint scores differently under different protocols, so a table compares like with like only when the
protocol is named. The dataset configs (``configs/zeroshot/groupvit_*.py``) hold the GroupViT protocol;
``apply_protocol`` rewrites a loaded config to another one (``tools/test.py --protocol``, ``tools/benchmark_table.py``).

* ``groupvit``: NVlabs/GroupViT ``segmentation/configs/_base_/datasets/*.py``: short side 448 (long side at most 2048),
  slide window 448, stride 224; the renamed prompt names of the configs; the single template "a photo of a {}.".
* ``tcl``: kakaobrain/tcl ``segmentation/configs/_base_/datasets/*.py`` and ``configs/eval.yml``: the same resize and
  window for all eight datasets; the datasets' own label names, not renamed (TCL prompts mmseg's ``CLASSES``); TCL's
  ``custom`` templates (seven ImageNet templates and two plural ones).
* ``sclip``: wangf3014/SCLIP ``configs/cfg_*.py`` (followed by NACLIP and ProxyCLIP): short side 336, 448 for
  COCO-Stuff and 560 for Cityscapes; slide window 224, stride 112; the 80 OpenAI ImageNet templates.

Only the inputs change: GroupViT's head, with its background thresholds, stays as it is (TCL's threshold applies to
TCL's own mask scores; SCLIP's class-name synonym lists prompt a background that GroupViT thresholds instead).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping, get_args

from mmengine.config import Config
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from .datasets import dataset_classes

ProtocolName = Literal["groupvit", "tcl", "sclip"]
PROTOCOL_NAMES: tuple[str, ...] = get_args(ProtocolName)

# kakaobrain/tcl datasets/templates.py: custom = sub_imagenet_template + two plural templates
TCL_TEMPLATES: tuple[str, ...] = (
    "itap of a {}.", "a bad photo of a {}.", "a origami {}.", "a photo of the large {}.", "a {} in a video game.",
    "art of the {}.", "a photo of the small {}.", "a photo of many {}.", "a photo of {}s.",
)  # fmt: skip
IMAGENET_TEMPLATES: tuple[str, ...] = tuple(template("{}") for template in OPENAI_IMAGENET_TEMPLATES)


class ProtocolError(ValueError):
    """A protocol name that does not exist, or a config it cannot be applied to."""


@dataclass(frozen=True)
class Protocol:
    short_side: int  # images are resized (aspect kept) to this short side, long side at most 2048
    crop: int  # slide-inference window ...
    stride: int  # ... and its stride
    templates: tuple[str, ...]
    class_names: Literal["config", "dataset"]  # the config's (renamed) prompt names, or the dataset's label names
    short_side_by_dataset: Mapping[str, int] = field(default_factory=dict)  # mmseg dataset type -> short side

    def short_side_for(self, dataset_type: str) -> int:
        return self.short_side_by_dataset.get(dataset_type, self.short_side)


PROTOCOLS: dict[str, Protocol] = {
    "groupvit": Protocol(short_side=448, crop=448, stride=224, templates=("a photo of a {}.",), class_names="config"),
    "tcl": Protocol(short_side=448, crop=448, stride=224, templates=TCL_TEMPLATES, class_names="dataset"),
    "sclip": Protocol(
        short_side=336, crop=224, stride=112, templates=IMAGENET_TEMPLATES, class_names="config",
        short_side_by_dataset={"COCOStuffDataset": 448, "CityscapesDataset": 560},
    ),
}  # fmt: skip


def apply_protocol(cfg: Config, name: ProtocolName) -> Config:
    """Rewrite a zero-shot test config (in place, and returned) to evaluate under protocol ``name``."""
    if name not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOL_NAMES)}")
    protocol = PROTOCOLS[name]
    dataset = cfg.test_dataloader.dataset
    resizes = [step for step in dataset.get("pipeline", []) if step.get("type") == "Resize"]
    if len(resizes) != 1:
        raise ProtocolError(f"the test pipeline has {len(resizes)} Resize steps; a protocol needs exactly one")
    resizes[0].scale = (2048, protocol.short_side_for(str(dataset.type)))
    resizes[0].keep_ratio = True
    test_cfg = cfg.model.setdefault("test_cfg", {})
    test_cfg.update(mode="slide", crop_size=(protocol.crop, protocol.crop), stride=(protocol.stride, protocol.stride))
    cfg.model.vocabulary.templates = list(protocol.templates)
    if protocol.class_names == "dataset":
        labels = dataset_classes(dataset)
        if labels is None:
            raise ProtocolError(f"{dataset.type} has no label names of its own; the {name} protocol prompts them")
        cfg.model.vocabulary.classes = [label.strip() for label in labels]
    return cfg
