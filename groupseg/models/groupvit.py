"""The two-tower GroupViT: grouping image tower + CLIP text tower, each with a projection head into a shared space."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .vision import GroupViTVisionTransformer, VisionOutput
from .text import build_text_tower

MAX_LOGIT_SCALE = 100.0


@dataclass
class GroupViTConfig:
    """Every size knob of the model; saved as JSON beside groupseg checkpoints. Defaults are the official GroupViT-S."""

    image_size: int = 224
    patch_size: int = 16
    patch_kernel: int | None = None  # patch conv kernel; None = patch_size (non-overlapping, the reference)
    vision_width: int = 384
    vision_depths: list[int] = field(default_factory=lambda: [6, 3, 3])
    vision_heads: int = 6
    num_group_tokens: list[int] = field(default_factory=lambda: [64, 8, 0])
    num_output_groups: list[int] = field(default_factory=lambda: [64, 8])
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    assign_eps: float = 1.0
    gumbel: bool = True  # Gumbel noise in training assignments (False: plain straight-through argmax)
    group_token_residual: bool = True  # segment token = its tokens' mean + its group token (False: the mean only)
    text_width: int = 256
    text_layers: int = 12
    text_heads: int = 4
    context_length: int = 77
    vocab_size: int = 49408
    embed_dim: int = 256
    proj_hidden_dim: int = 4096
    logit_scale_init: float = math.log(1 / 0.07)

    def __post_init__(self) -> None:
        for tower in ("vision", "text"):
            width, heads = getattr(self, f"{tower}_width"), getattr(self, f"{tower}_heads")
            if heads < 1 or width % heads:
                raise ValueError(f"{tower}_heads={heads} does not divide {tower}_width={width}")
        if len(self.num_group_tokens) != len(self.vision_depths):
            raise ValueError(f"num_group_tokens {self.num_group_tokens} needs one entry per stage {self.vision_depths}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "GroupViTConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown GroupViT config keys {unknown}; known keys: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # The released NVlabs model (gcc+yfcc / gcc+redcaps), ~55.7M parameters.
    "groupvit-s": {},
    # A few hundred thousand parameters: fast enough for unit tests on 2 cores.
    "groupvit-tiny": dict(
        image_size=32, patch_size=4, vision_width=32, vision_depths=[1, 1, 1], vision_heads=2,
        num_group_tokens=[8, 4, 0], num_output_groups=[8, 4], drop_path_rate=0.0, text_width=32, text_layers=1,
        text_heads=2, context_length=16, embed_dim=16, proj_hidden_dim=64,
    ),
}  # fmt: skip


def build_config(preset: str | None = None, **overrides: Any) -> GroupViTConfig:
    """A config from a named preset (see ``PRESETS``) with keyword overrides."""
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown GroupViT preset {preset!r}; choose from {sorted(PRESETS)}")
        values.update(PRESETS[preset])
    values.update(overrides)
    return GroupViTConfig.from_dict(values)


class ProjectionHead(nn.Module):
    """Linear → BatchNorm → ReLU → Linear (the official ``ProjectMLP``, with Linear in place of Conv1d k=1).

    Accepts ``[N, C]`` or ``[B, L, C]``; token inputs share the BatchNorm statistics over B·L, as Conv1d does.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.linear_hidden = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU())
        self.linear_out = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = self.linear_out(self.linear_hidden(x.reshape(-1, shape[-1])))
        return x.reshape(*shape[:-1], x.shape[-1])


def _normalize(embeds: torch.Tensor) -> torch.Tensor:
    """L2-normalised in at least fp32, also under bf16 autocast: cosine similarities ×100 feed softmaxes downstream."""
    return F.normalize(embeds.to(torch.promote_types(embeds.dtype, torch.float32)), dim=-1)


@dataclass
class ImageOutput:
    image_embeds: torch.Tensor  # [B, D] L2-normalised projected mean of the segment tokens
    group_embeds: torch.Tensor  # [B, G, D] L2-normalised projected segment tokens
    vision: VisionOutput  # raw tower output: tokens, assignments per stage, patch grid


class GroupViT(nn.Module):
    def __init__(self, config: GroupViTConfig | None = None, **overrides: Any):
        super().__init__()
        config = config or GroupViTConfig()
        if overrides:
            config = GroupViTConfig.from_dict({**config.to_dict(), **overrides})
        self.config = config
        self.img_encoder = GroupViTVisionTransformer(
            image_size=config.image_size,
            patch_size=config.patch_size,
            patch_kernel=config.patch_kernel,
            width=config.vision_width,
            depths=tuple(config.vision_depths),
            num_heads=config.vision_heads,
            num_group_tokens=tuple(config.num_group_tokens),
            num_output_groups=tuple(config.num_output_groups),
            mlp_ratio=config.mlp_ratio,
            drop_path_rate=config.drop_path_rate,
            assign_eps=config.assign_eps,
            gumbel=config.gumbel,
            group_token_residual=config.group_token_residual,
        )
        self.text_encoder = build_text_tower(
            config.text_width, config.text_layers, config.text_heads, config.context_length, config.vocab_size
        )
        self.img_projector = ProjectionHead(config.vision_width, config.proj_hidden_dim, config.embed_dim)
        self.text_projector = ProjectionHead(config.text_width, config.proj_hidden_dim, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init))
        self.multi_label_logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init))

    # -- towers -------------------------------------------------------------------------------------------------
    def forward_image(self, images: torch.Tensor) -> ImageOutput:
        """Everything the loss and the zero-shot head need from one pass of the image tower."""
        vision = self.img_encoder(images)
        image_embeds = _normalize(self.img_projector(vision.pooled))
        group_embeds = _normalize(self.img_projector(vision.tokens))
        return ImageOutput(image_embeds=image_embeds, group_embeds=group_embeds, vision=vision)

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """``[B, 3, H, W]`` normalised pixels (any H, W) → ``[B, D]`` image embeddings."""
        embeds = self.img_projector(self.img_encoder(images).pooled)
        return _normalize(embeds) if normalize else embeds

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """``[..., context_length]`` token ids → ``[..., D]`` text embeddings."""
        if tokens.shape[-1] != self.config.context_length:
            raise ValueError(
                f"text tokens have length {tokens.shape[-1]}, this model's context length is "
                f"{self.config.context_length}; "
                "use groupseg.tokenize(texts, context_length=model.config.context_length)"
            )
        embeds = self.text_projector(self._encode_texts(tokens.reshape(-1, tokens.shape[-1])))
        embeds = embeds.reshape(*tokens.shape[:-1], embeds.shape[-1])
        return _normalize(embeds) if normalize else embeds

    def _encode_texts(self, flat: torch.Tensor) -> torch.Tensor:
        """The text tower over ``[N, L]`` token ids, each distinct text once and each no longer than it must be.

        The tower sees one text at a time (causal attention, per-token norms, no dropout), so its output for a text
        does not depend on the batch: identical texts (a batch's prompts repeat: "a photo of a dog.") are encoded
        once and shared (their gradients add up, as they would over copies), and the padding after a text's end
        token, which causal attention never lets reach the end token the tower pools, is cut per bucket of similar
        lengths, not only after the batch's longest text (prompts are often half a caption's length). The same
        embeddings; the batch-dependent projection head (BatchNorm) still sees every row."""
        if not flat.numel():
            return self.text_encoder(flat)
        texts, inverse = torch.unique(flat, dim=0, return_inverse=True)
        lengths = texts.argmax(1) + 1  # up to the end token, where the tower pools (id 0 is padding, and also "!")
        lengths, order = lengths.sort()
        # two buckets, split where the padded tokens are fewest (short prompts, long captions)
        count, shorter = len(lengths), torch.arange(1, len(lengths) + 1, device=lengths.device)
        split = int((shorter * lengths + (count - shorter) * lengths[-1]).argmin()) + 1  # texts in the short bucket
        encoded = torch.cat([self.text_encoder(texts[order[start:end], : int(lengths[end - 1])])
                             for start, end in ((0, split), (split, count)) if end > start])  # fmt: skip
        return encoded[order.argsort()[inverse]]

    # -- temperatures -------------------------------------------------------------------------------------------
    def scale(self) -> torch.Tensor:
        """exp(logit_scale), clamped at 100 as in the reference."""
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def multi_label_scale(self) -> torch.Tensor:
        return self.multi_label_logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, with_groups: bool = False) -> dict[str, torch.Tensor]:
        """Normalised image ``[B, D]`` and text ``[..., D]`` embeddings plus both clamped temperatures; with
        ``with_groups`` also the normalised segment embeddings ``[B, G, D]`` (for ``GroupViTLoss(multi_label_on=
        "groups")``; only then, since projecting them also moves the projection's BatchNorm statistics)."""
        if with_groups:
            image = self.forward_image(images)
            outputs = {"image_embeds": image.image_embeds, "group_embeds": image.group_embeds}
        else:
            outputs = {"image_embeds": self.encode_image(images)}
        return {
            **outputs,
            "text_embeds": self.encode_text(tokens),
            "logit_scale": self.scale(),
            "multi_label_logit_scale": self.multi_label_scale(),
        }
