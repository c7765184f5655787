"""Promptable segmentation from GroupViT's groups, with SAM's interface: points, boxes, text, and segment everything."""
from .automatic_mask_generator import GroupMaskGenerator
from .predictor import GroupPredictor, PromptError
from .regions import RegionPredictor

__all__ = ["GroupMaskGenerator", "GroupPredictor", "PromptError", "RegionPredictor"]
