"""groupseg: GroupViT for open-vocabulary zero-shot semantic segmentation, on mmsegmentation 1.x and open_clip."""
from . import compat

compat.apply()

from .models import GroupViT, GroupViTConfig, build_config  # noqa: E402
from .tokenizer import tokenize  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name: str):
    # Heavier entry points import lazily, so `import groupseg` stays quick for the model-only user.
    if name == "load_model":
        from .models.load import load_model

        return load_model
    if name == "save_checkpoint":
        from .models.checkpoint import save_checkpoint

        return save_checkpoint
    if name == "ZeroShotSegmenter":
        from .zeroshot.single_image import ZeroShotSegmenter

        return ZeroShotSegmenter
    if name == "VideoSegmenter":
        from .video.segmenter import VideoSegmenter

        return VideoSegmenter
    raise AttributeError(f"module 'groupseg' has no attribute {name!r}")


__all__ = ["GroupViT", "GroupViTConfig", "VideoSegmenter", "ZeroShotSegmenter", "build_config", "load_model",
           "save_checkpoint", "tokenize"]  # fmt: skip
