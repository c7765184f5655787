"""GroupViT model family: blocks (layers, grouping), towers (vision, text), the two-tower model, weight formats."""
from .groupvit import PRESETS, GroupViT, GroupViTConfig, ImageOutput, build_config
from .vision import VisionOutput

__all__ = ["GroupViT", "GroupViTConfig", "ImageOutput", "PRESETS", "VisionOutput", "build_config"]
