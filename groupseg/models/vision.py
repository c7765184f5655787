"""GroupViT's image tower: patches → (stage: transformer blocks over image + group tokens → grouping) × n → segments.

Parameter names follow NVlabs' ``img_encoder`` so official weights load by name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .grouping import Assignment, GroupingBlock
from .layers import AttnBlock, MixerMlp


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Resize a square learned position table ``[1, S*S, C]`` to ``grid`` (bicubic, as the official code)."""
    _, length, dim = pos_embed.shape
    side = math.isqrt(int(length))
    if torch.jit.is_tracing() or torch.compiler.is_exporting():
        # an exported graph takes any size: the same resize as two small matmuls (ONNX Runtime's bicubic Resize is
        # ~50× slower than torch's; this also keeps the native grid on the traced path, where it is the identity)
        rows, cols = bicubic_matrix(grid[0], side), bicubic_matrix(grid[1], side)
        table = (rows @ pos_embed.reshape(side, side * dim)).reshape(-1, side, dim)  # [h, S, C]
        return (cols @ table).reshape(1, -1, dim)  # [h, w, C] → [1, h*w, C]
    if (side, side) == tuple(grid):
        return pos_embed
    table = pos_embed.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    table = F.interpolate(table, size=grid, mode="bicubic", align_corners=False)
    return table.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim)


def bicubic_matrix(out_size: int, in_size: int, a: float = -0.75) -> torch.Tensor:
    """``[out_size, in_size]`` weights of torch's bicubic resize along one axis (``align_corners=False``, Keys'
    kernel with ``a = -0.75``, edge taps clamped): ``F.interpolate(bicubic)`` of a table = rows @ table @ colsᵀ."""
    source = (torch.arange(out_size, dtype=torch.float32) + 0.5) * (in_size / out_size) - 0.5
    base = source.floor()
    frac = source - base
    distance = torch.stack([frac + 1, frac, 1 - frac, 2 - frac], dim=-1)  # to the 4 taps base-1 .. base+2
    near = ((a + 2) * distance - (a + 3)) * distance * distance + 1
    far = ((a * distance - 5 * a) * distance + 8 * a) * distance - 4 * a
    weights = torch.where(distance <= 1, near, far)  # [out, 4]
    taps = (base[:, None] + torch.arange(-1, 3)).clamp(0, in_size - 1)  # [out, 4]
    one_hot = (taps[..., None] == torch.arange(in_size, dtype=taps.dtype)).to(weights.dtype)  # [out, 4, in]
    return (one_hot * weights[..., None]).sum(dim=1)


class PatchEmbed(nn.Module):
    """Patches → tokens, followed by LayerNorm. ``kernel`` > ``patch_size``: overlapping patches (each token also
    sees ``(kernel - patch_size) / 2`` pixels of its neighbours on every side; the token grid is unchanged)."""

    def __init__(self, patch_size: int, in_chans: int, dim: int, eps: float = 1e-5, kernel: int | None = None):
        super().__init__()
        kernel = kernel or patch_size
        if kernel < patch_size or (kernel - patch_size) % 2:
            raise ValueError(f"patch_kernel={kernel} must be patch_size={patch_size} plus an even number of pixels")
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=kernel, stride=patch_size, padding=(kernel - patch_size) // 2)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        (kernel, _), (stride, _) = self.proj.kernel_size, self.proj.stride
        batch, channels, height, width = images.shape
        if not torch.onnx.is_in_onnx_export() and min(height, width) < stride:  # the conv's error names no image
            raise ValueError(f"the image ({width}×{height} px as the model sees it) is smaller than one {stride} px "
                             f"patch; resize it larger (short_side=, or --short-side in the tools)")  # fmt: skip
        # overlapping or ragged patches, and ONNX export (whose graph must not bake in this image's size): the conv
        if kernel != stride or height % stride or width % stride or torch.onnx.is_in_onnx_export():
            x = self.proj(images)
            grid = (x.shape[2], x.shape[3])
            return self.norm(x.flatten(2).transpose(1, 2)), grid
        # Non-overlapping patches are one matmul over the flattened patches, with the convolution's own weight: the
        # tokens come out contiguous (no copy before the LayerNorm) and, at the synthetic world's 2 px patches, the
        # forward and backward cost a fifth of the convolution's on a CPU.
        grid = (height // stride, width // stride)
        patches = images.reshape(batch, channels, grid[0], stride, grid[1], stride).permute(0, 2, 4, 1, 3, 5)
        x = F.linear(patches.reshape(batch, grid[0] * grid[1], -1), self.proj.weight.flatten(1), self.proj.bias)
        return self.norm(x), grid


class GroupingStage(nn.Module):
    """Transformer blocks over [image tokens; group tokens], then (optionally) a grouping block."""

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        num_group_token: int,
        num_output_group: int | None,
        num_prev_group_token: int,
        mlp_ratio: float,
        drop_path: list[float],
        assign_eps: float,
        eps: float = 1e-5,
        gumbel: bool = True,
        group_token_residual: bool = True,
    ):
        super().__init__()
        self.num_group_token = num_group_token
        self.group_token = nn.Parameter(torch.zeros(1, num_group_token, dim)) if num_group_token > 0 else None
        self.blocks = nn.ModuleList(AttnBlock(dim, num_heads, mlp_ratio, drop_path[i], eps) for i in range(depth))
        self.downsample = (
            GroupingBlock(
                dim=dim, num_heads=num_heads, num_group_token=num_group_token, num_output_group=num_output_group,
                assign_eps=assign_eps, eps=eps, gumbel=gumbel, group_token_residual=group_token_residual,
            )
            if num_group_token > 0 and num_output_group
            else None
        )
        # Later stages' group tokens also see the previous stage's groups (token-mixing MLP 64 → dim/2 → 8).
        self.group_projector = (
            nn.Sequential(nn.LayerNorm(dim, eps=eps), MixerMlp(num_prev_group_token, dim // 2, num_group_token))
            if num_prev_group_token > 0 and num_group_token > 0
            else None
        )

    def forward(
        self, x: torch.Tensor, prev_group_tokens: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, Assignment | None]:
        group_tokens = None
        if self.group_token is not None:
            group_tokens = self.group_token.expand(x.shape[0], -1, -1)
            if self.group_projector is not None:
                group_tokens = group_tokens + self.group_projector(prev_group_tokens)
        if self.blocks and group_tokens is not None:  # joined only for blocks to attend over (a copy of every token)
            x = torch.cat([x, group_tokens], dim=1)
            for block in self.blocks:
                x = block(x)
            x, group_tokens = x[:, : -self.num_group_token], x[:, -self.num_group_token :]
        else:
            for block in self.blocks:
                x = block(x)
        assignment = None
        if self.downsample is not None:
            x, assignment = self.downsample(x, group_tokens)
        return x, group_tokens, assignment


@dataclass
class VisionOutput:
    tokens: torch.Tensor  # [B, G, C] final segment tokens after the last LayerNorm
    pooled: torch.Tensor  # [B, C] mean of the segment tokens
    assignments: list[Assignment]  # one per grouping stage, each [B, G_out, N_in]
    grid: tuple[int, int]  # patch grid (h, w) of the input


class GroupViTVisionTransformer(nn.Module):
    def __init__(
        self,
        *,
        image_size: int = 224,
        patch_size: int = 16,
        patch_kernel: int | None = None,
        in_chans: int = 3,
        width: int = 384,
        depths: tuple[int, ...] = (6, 3, 3),
        num_heads: int = 6,
        num_group_tokens: tuple[int, ...] = (64, 8, 0),
        num_output_groups: tuple[int, ...] = (64, 8),
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
        assign_eps: float = 1.0,
        gumbel: bool = True,
        eps: float = 1e-5,
        group_token_residual: bool = True,
    ):
        super().__init__()
        if len(num_group_tokens) != len(depths):
            raise ValueError(f"num_group_tokens {num_group_tokens} needs one entry per stage of depths {depths}")
        self.image_size, self.patch_size, self.width = image_size, patch_size, width
        self.patch_embed = PatchEmbed(patch_size, in_chans, width, eps, kernel=patch_kernel)
        side = image_size // patch_size
        self.pos_embed = nn.Parameter(torch.zeros(1, side * side, width))
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(
                GroupingStage(
                    dim=width,
                    depth=depth,
                    num_heads=num_heads,
                    num_group_token=num_group_tokens[i],
                    num_output_group=num_output_groups[i] if i < len(num_output_groups) else None,
                    num_prev_group_token=num_group_tokens[i - 1] if i > 0 else 0,
                    mlp_ratio=mlp_ratio,
                    drop_path=rates[start : start + depth],
                    assign_eps=assign_eps,
                    eps=eps,
                    gumbel=gumbel,
                    group_token_residual=group_token_residual,
                )
            )
        self.norm = nn.LayerNorm(width, eps=eps)
        self.apply(_init_weights)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for layer in self.layers:
            # as the official code: group tokens that also receive projected earlier groups start at zero
            if layer.group_token is not None and layer.group_projector is None:
                nn.init.trunc_normal_(layer.group_token, std=0.02)

    def forward(self, images: torch.Tensor) -> VisionOutput:
        x, grid = self.patch_embed(images)
        x = x + interpolate_pos_embed(self.pos_embed, grid)
        group_tokens, assignments = None, []
        for layer in self.layers:
            x, group_tokens, assignment = layer(x, group_tokens)
            if assignment is not None:
                assignments.append(assignment)
        x = self.norm(x)
        return VisionOutput(tokens=x, pooled=x.mean(dim=1), assignments=assignments, grid=grid)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
