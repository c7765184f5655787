"""groupseg: GroupViT for open-vocabulary zero-shot semantic segmentation, on mmsegmentation 1.x and open_clip."""
from . import compat

compat.apply()

__version__ = "0.1.0"

# Public names import on first use, so that `import groupseg` (and a tool's --help) stays quick.
_LAZY = {
    "GroupViT": "groupseg.models.groupvit",
    "GroupViTConfig": "groupseg.models.groupvit",
    "build_config": "groupseg.models.groupvit",
    "tokenize": "groupseg.tokenizer",
    "load_model": "groupseg.models.load",
    "save_checkpoint": "groupseg.models.checkpoint",
    "ZeroShotSegmenter": "groupseg.zeroshot.single_image",
    "GroupPredictor": "groupseg.prompts.predictor",
    "GroupMaskGenerator": "groupseg.prompts.automatic_mask_generator",
    "Exemplar": "groupseg.prompts.exemplars",
    "VideoSegmenter": "groupseg.video.segmenter",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'groupseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
