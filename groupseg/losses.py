"""GroupViT's two training losses over the global batch: image–text InfoNCE and the multi-label contrastive loss.

Both follow the reference's *local* formulation: each rank scores its own rows against every rank's columns, which
are all-gathered with gradient (open_clip's ``gather_features``). With DDP's gradient averaging this gives exactly the
gradient of the loss over the global batch computed in one process.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss, gather_features
from torch import nn


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def image_text_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE, 0.5·(image→text + text→image), for L2-normalised ``[B, D]`` embeddings."""
    rank, world_size = _dist_info()
    loss_fn = ClipLoss(local_loss=True, gather_with_grad=True, rank=rank, world_size=world_size)
    return loss_fn(image_embeds, text_embeds, scale)


def _similarity(images: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """``[N, P]`` cosine similarity of images ``[N, D]`` or, for segments ``[N, G, D]``, of each image's best
    segment."""
    if images.ndim == 2:
        return images @ prompts.T
    return torch.einsum("ngd,pd->ngp", images, prompts).amax(dim=1)


def multi_label_loss(image_embeds: torch.Tensor, prompt_embeds: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Multi-label contrastive loss between images ``[B, D]`` and their K noun prompts ``[B, K, D]``.

    image → prompt: soft target 1/K on the image's own K prompts, every other prompt (duplicates included) a negative;
    prompt → image: one-hot on its own image. Returns 0.5·(image→prompt + prompt→image).
    ``image_embeds`` may also be segment embeddings ``[B, G, D]``: an image then scores a prompt by its best segment.
    """
    batch, num_prompts, dim = prompt_embeds.shape
    rank, world_size = _dist_info()
    prompts = prompt_embeds.reshape(batch * num_prompts, dim)
    all_images, all_prompts = image_embeds, prompts
    if world_size > 1:
        all_images, all_prompts = gather_features(
            image_embeds, prompts, gather_with_grad=True, rank=rank, world_size=world_size
        )
    logits_per_image = scale * _similarity(image_embeds, all_prompts)  # [B, W·B·K]
    logits_per_prompt = scale * _similarity(all_images, prompts).T  # [B·K, W·B]

    own = torch.arange(batch, device=image_embeds.device) + rank * batch  # global index of each local image
    target = torch.zeros_like(logits_per_image).view(batch, -1, num_prompts)
    target[torch.arange(batch), own] = 1.0 / num_prompts
    loss_image = -(target.view(batch, -1) * F.log_softmax(logits_per_image, dim=-1)).sum(-1).mean()
    loss_prompt = F.cross_entropy(logits_per_prompt, own.repeat_interleave(num_prompts))
    return 0.5 * (loss_image + loss_prompt)


class GroupViTLoss(nn.Module):
    """Total training loss: image–text InfoNCE + ``multi_label_weight`` × multi-label loss (off when weight is 0).

    Takes the output dict of ``GroupViT.forward(images, tokens, with_groups=loss.with_groups)`` with ``tokens``
    ``[B, 1+K, L]`` (the caption, then K noun prompts), so the model runs through its (possibly DDP-wrapped)
    ``forward``. ``multi_label_on="image"`` is the reference: prompts are scored against the image embedding.
    ``"groups"`` (a deviation) scores each prompt against the image's best-matching segment, so that a prompt is only
    matched when one segment holds its object: the objective the zero-shot head evaluates.
    """

    def __init__(self, multi_label_weight: float = 1.0, multi_label_on: str = "image"):
        super().__init__()
        if multi_label_on not in ("image", "groups"):
            raise ValueError(f"multi_label_on must be 'image' or 'groups', got {multi_label_on!r}")
        self.multi_label_weight = multi_label_weight
        self.multi_label_on = multi_label_on

    @property
    def with_groups(self) -> bool:
        """Whether the model must also return its segment embeddings."""
        return self.multi_label_weight > 0 and self.multi_label_on == "groups"

    def forward(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        text = outputs["text_embeds"]
        if text.ndim == 2:
            text = text[:, None]
        losses = {"loss_image_text": image_text_loss(outputs["image_embeds"], text[:, 0], outputs["logit_scale"])}
        if self.multi_label_weight > 0 and text.shape[1] > 1:
            images = outputs["group_embeds"] if self.multi_label_on == "groups" else outputs["image_embeds"]
            ml = multi_label_loss(images, text[:, 1:], outputs["multi_label_logit_scale"])
            losses["loss_multi_label"] = self.multi_label_weight * ml
        losses["loss"] = sum(losses.values())
        return losses
