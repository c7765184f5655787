"""PAMR: pixel-adaptive mask refinement (Araslanov & Roth, "Single-Stage Semantic Segmentation from Image Labels",
CVPR 2020), as TCL (Cha et al., CVPR 2023) applies it to a text-grounded segmenter's masks at inference.

GroupViT's soft maps are computed per token (2 px on the synthetic world, 16 px for GroupViT-S) and upsampled, so a
group's edge can be a token off the object's. PAMR moves each pixel's membership towards that of its neighbours of
similar colour, several times: every pixel's new map is a convex combination of its neighbours' maps (8 neighbours at
each dilation), weighted by a softmax over their colour affinities ``-|I_p - I_q| / (0.1 σ_p)`` (σ_p: the local
colour spread), averaged over channels. Memberships stay in [0, 1] and sum to 1. No training, no parameters learned:
the image guides the groups' edges, the groups still decide what belongs together.

TCL's dilations (1, 2, 4, 8, 12, 24 px) are for 16-px tokens (ViT-B/16 at 448 px), where the largest reaches a token
and a half. On small tokens the large ones reach across objects (24 px is 12 of the synthetic world's 2-px tokens),
so :func:`refine_maps` keeps those that reach at most ``PAMR_REACH`` tokens: (1, 2, 4, 8) on the synthetic world,
(1, 2, 4, 8, 12) for GroupViT-S at 448 px refined at 128 px, all of TCL's at its own setting. The reach was chosen on
the synthetic world's dev split (docs/prompts.md, "Choosing the dilations").
"""
from __future__ import annotations

from typing import Literal, Sequence, get_args

import torch
import torch.nn.functional as F

Refine = Literal["pamr", "none"]  # what GroupPredictor(refine=...) does to the soft maps: PAMR, or nothing
REFINES: tuple[str, ...] = get_args(Refine)
PAMR_ITERATIONS = 10  # TCL's inference setting
PAMR_DILATIONS = (1, 2, 4, 8, 12, 24)
PAMR_REACH = 4  # tokens: TCL's dilations reaching further are left out (chosen on the synthetic dev split)
MAX_SIDE = 128  # refine at most this many pixels along the long side: 4 px per 16 px token at 448, ~1 s on a CPU
_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _shifted(x: torch.Tensor, dilation: int) -> list[torch.Tensor]:
    """The 8 neighbours at ``dilation`` of every pixel of ``x [B, C, H, W]`` (edges replicated), each like ``x``."""
    height, width = x.shape[-2:]
    padded = F.pad(x, [dilation] * 4, mode="replicate")
    return [padded[..., dilation + dy * dilation : dilation + dy * dilation + height,
                   dilation + dx * dilation : dilation + dx * dilation + width] for dy, dx in _OFFSETS]  # fmt: skip


@torch.no_grad()
def pamr(
    image: torch.Tensor,
    maps: torch.Tensor,
    iterations: int = PAMR_ITERATIONS,
    dilations: Sequence[int] = PAMR_DILATIONS,
) -> torch.Tensor:
    """Refine ``maps [B, K, H, W]`` (soft masks) along the edges of ``image [B, C, H, W]`` (same size, any
    normalisation: affinities are relative to the local colour spread); returns ``[B, K, H, W]``."""
    if image.shape[0] != maps.shape[0] or image.shape[-2:] != maps.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape)} and maps {tuple(maps.shape)} must share batch and size")
    if iterations < 0 or not dilations or min(dilations) < 1:
        raise ValueError(f"PAMR needs iterations >= 0 and dilations >= 1, got {iterations}, {list(dilations)}")
    image = image.float()
    neighbours = [around for dilation in dilations for around in _shifted(image, dilation)]
    # σ: per channel, over the 3 × 3 windows of every dilation, centres included (the reference's LocalStDev)
    spread = torch.stack([image] * len(dilations) + neighbours, 2).std(2)
    affinity = torch.stack([-(n - image).abs() for n in neighbours], 2) / (1e-8 + 0.1 * spread[:, :, None])
    weights = affinity.mean(1).softmax(1)  # [B, P, H, W]: over the P neighbours
    maps = maps.float()
    for _ in range(iterations):
        refined = torch.zeros_like(maps)
        p = 0
        for dilation in dilations:
            for around in _shifted(maps, dilation):
                refined += weights[:, p : p + 1] * around
                p += 1
        maps = refined
    return maps


def dilations_for(token: float) -> tuple[int, ...]:
    """TCL's dilations that reach at most ``PAMR_REACH`` tokens of ``token`` px (at least dilation 1)."""
    return tuple(d for d in PAMR_DILATIONS if d <= PAMR_REACH * token) or (1,)


def refine_maps(image: torch.Tensor, maps: torch.Tensor, token: float = 16, max_side: int = MAX_SIDE) -> torch.Tensor:
    """:func:`pamr` with TCL's setting for tokens of ``token`` px in ``maps``, at a working size of at most
    ``max_side`` px (the cost grows with pixels × groups: GroupViT-S's 72 maps at 448 px took 25 s on a CPU), resized
    back to the maps' size."""
    size = tuple(maps.shape[-2:])
    scale = min(1.0, max_side / max(size))
    dilations = dilations_for(token * scale)
    if scale == 1:
        return pamr(image, maps, dilations=dilations)
    small = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    refined = pamr(F.interpolate(image.float(), small, mode="area"), F.interpolate(maps.float(), small, mode="area"),
                   dilations=dilations)  # fmt: skip
    return F.interpolate(refined, size, mode="bilinear", align_corners=False)
