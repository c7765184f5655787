"""The official GroupViT zero-shot segmentation head, as pure functions of the image tower's outputs.

Faithful to ``GroupViTSegInference.encode_decode`` (NVlabs ``segmentation/evaluation/group_vit_seg.py``):

1. chain the soft assignments (patches → 64 → 8 groups), bilinearly upsample to the input size, one-hot argmax group
   per pixel;
2. A = softmax over classes of ``scale · cos(group, class)``;
3. keep the top-5 classes of the image-level embedding; B = softmax over those only; group scores = B ⊙ A;
4. each pixel takes its group's scores; with a background label (label 0), a pixel is background where its best score
   is below ``min(bg_thresh, max of the image's group scores)``: background logit 1 there, 0 elsewhere.

``bg_score="cosine"`` (a deviation, off by default) applies the same rule to each group's best raw cosine similarity to
the classes instead of its softmax score: a softmax over classes is confident for a segment that matches no class a
little less badly than the others, a cosine similarity is not (see the synthetic recipe in the README).

Everything is batched; every image (or slide crop) gets its own top-5 and its own threshold.
"""
from __future__ import annotations

from typing import Literal, Sequence, get_args

import torch
import torch.nn.functional as F

# what bg_thresh thresholds: the official softmax score, or a cosine similarity
BgScore = Literal["probability", "cosine"]
BG_SCORES = get_args(BgScore)


def check_bg_thresh(bg_thresh: float) -> None:
    """A background threshold is a number in [0, 1] (the segmenters' shared rule); a ValueError otherwise."""
    if isinstance(bg_thresh, bool) or not isinstance(bg_thresh, (int, float)) or not 0 <= bg_thresh <= 1:
        raise ValueError(f"bg_thresh must be a number in [0, 1], got {bg_thresh!r}")  # nan fails the range too


def group_maps(soft_assignments: Sequence[torch.Tensor], grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """``[B, G, H, W]`` soft membership of each pixel in each last-stage group (sums to 1 over groups): the per-stage
    soft assignments ``[B, Gout, N]`` chained and bilinearly upsampled. Channels-last memory."""
    chained = soft_assignments[0].transpose(1, 2)  # [B, N, G1]
    for soft in soft_assignments[1:]:
        chained = chained @ soft.transpose(1, 2)  # [B, N, G_next]
    batch, _, groups = chained.shape
    # [B, N, G] is already channels-last memory: upsampling that layout is ~5× faster on CPU than NCHW (same values
    # up to the last bit of rounding; the head parity tests compare labels on every pixel)
    maps = chained.reshape(batch, *grid, groups).permute(0, 3, 1, 2)
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)


def pixel_groups(
    soft_assignments: Sequence[torch.Tensor], grid: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """``[B, H, W]`` index of each pixel's final group, from the per-stage soft assignments ``[B, Gout, N]``."""
    maps = group_maps(soft_assignments, grid, size)
    # = argmax(dim=1) (first maximum), 3-5× faster than argmax over a non-last dim on CPU
    return maps.max(dim=1).indices


def group_masks(soft_assignments: Sequence[torch.Tensor], grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """``[B, G, H, W]`` one-hot map of each pixel's final group, from the per-stage soft assignments
    ``[B, Gout, N]``."""
    groups = pixel_groups(soft_assignments, grid, size)
    return F.one_hot(groups, soft_assignments[-1].shape[1]).permute(0, 3, 1, 2).to(soft_assignments[-1].dtype)


def group_class_scores(
    group_embeds: torch.Tensor, image_embeds: torch.Tensor, class_embeds: torch.Tensor, logit_scale: torch.Tensor,
    topk: int = 5,
) -> torch.Tensor:
    """``[B, G, K]`` = B ⊙ A: group→class softmax, times the softmax restricted to the image's top-k classes."""
    logits = logit_scale * group_embeds @ class_embeds.T  # [B, G, K]
    affinity = logits.softmax(dim=-1)
    image_probs = (logit_scale * image_embeds @ class_embeds.T).softmax(dim=-1)  # [B, K]
    top = image_probs.topk(min(topk, class_embeds.shape[0]), dim=-1).indices
    keep = torch.zeros_like(image_probs, dtype=torch.bool).scatter_(-1, top, True)
    filtered = logits.masked_fill(~keep[:, None, :], float("-inf")).softmax(dim=-1)
    return filtered * affinity


def group_scores(
    group_embeds: torch.Tensor, image_embeds: torch.Tensor, class_embeds: torch.Tensor, logit_scale: torch.Tensor,
    bg_thresh: float | None = None, topk: int = 5, bg_score: BgScore = "probability",
) -> torch.Tensor:
    """``[B, G, (1 +) K]`` each group's label scores (B ⊙ A); with ``bg_thresh``, label 0 first: 1 where the group is
    background, 0 elsewhere (step 4 of the module docstring; a pixel takes its group's row)."""
    if bg_score not in BG_SCORES:
        raise ValueError(f"bg_score must be one of {BG_SCORES}, got {bg_score!r}")
    scores = group_class_scores(group_embeds, image_embeds, class_embeds, logit_scale, topk)  # [B, G, K]
    if bg_thresh is None:
        return scores
    # a pixel's best score is its group's best score, so background is decided per group, not per pixel
    best = scores.amax(dim=2) if bg_score == "probability" else (group_embeds @ class_embeds.T).amax(dim=2)
    thresh = best.amax(dim=1, keepdim=True).clamp(max=bg_thresh)  # per image: min(bg_thresh, max group score)
    return torch.cat([(best < thresh).to(scores.dtype)[..., None], scores], dim=2)  # [B, G, 1 + K]


def seg_logits(
    soft_assignments: Sequence[torch.Tensor],
    grid: tuple[int, int],
    group_embeds: torch.Tensor,
    image_embeds: torch.Tensor,
    class_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    size: tuple[int, int],
    bg_thresh: float | None = None,
    topk: int = 5,
    bg_score: BgScore = "probability",
) -> torch.Tensor:
    """``[B, (1 +) K, H, W]`` per-pixel class scores; with ``bg_thresh`` label 0 is the thresholded background.

    ``bg_score``: what is thresholded, each group's best ``"probability"`` (the official head) or ``"cosine"``.
    """
    groups = pixel_groups(soft_assignments, grid, size)  # [B, H, W]
    scores = group_scores(group_embeds, image_embeds, class_embeds, logit_scale, bg_thresh, topk, bg_score)
    # each pixel takes its group's row of scores (the one-hot product without the multiply-adds) by one row gather:
    # the result is channels-last memory, so the per-pixel max over labels in post-processing reduces a contiguous
    # row (3× faster on CPU than over the leading axis of a [labels, H, W] tensor), as does bilinear resizing
    batch, height, width = groups.shape
    num_groups, labels = scores.shape[1:]
    index = groups + num_groups * torch.arange(batch, device=groups.device).view(-1, 1, 1)
    return F.embedding(index, scores.reshape(batch * num_groups, labels)).permute(0, 3, 1, 2)
