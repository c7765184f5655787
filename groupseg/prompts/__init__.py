"""Promptable segmentation from GroupViT's groups, with SAM's interface: points, boxes, text, and segment everything;
and exemplars (an image and a mask) that define a class in the text embeddings' space (``exemplars``)."""
from .automatic_mask_generator import GroupMaskGenerator
from .predictor import GroupPredictor, PromptError
from .regions import RegionPredictor

__all__ = ["GroupMaskGenerator", "GroupPredictor", "PromptError", "RegionPredictor"]
