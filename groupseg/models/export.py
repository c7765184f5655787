"""The image tower as an ONNX file: everything the zero-shot head and the prompt tools read from
``GroupViT.forward_image``, for ONNX Runtime (or any ONNX runtime) to run without groupseg's Python model.

Inputs ``images [B, 3, H, W]`` (normalised pixels; batch, height and width are dynamic), outputs, in this order:
``image_embeds [B, D]`` and ``group_embeds [B, G, D]`` (projected, L2-normalised), ``tokens [B, G, C]`` (the final
segment tokens), ``grid [2]`` (int64 patch grid h, w) and ``soft_1 .. soft_S`` (each grouping stage's soft
assignment ``[B, G_out, N_in]``). The file's metadata names the architecture and a fingerprint of the image tower's
weights, so that a runner can refuse a file exported from another model (see :mod:`groupseg.models.onnx_tower`).

The exporter is torch's TorchScript-based one (``dynamo=False``): on this stack it exports GroupViT-S in seconds
with dynamic batch, height and width, and its graph runs in ONNX Runtime with outputs equal to eager fp32 to ~1e-6;
the ``torch.export`` exporter gives the same graph but needs onnxscript and takes minutes.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .groupvit import GroupViT

OPSET = 17
FIXED_OUTPUTS = ("image_embeds", "group_embeds", "tokens", "grid")


def output_names(num_stages: int) -> list[str]:
    return [*FIXED_OUTPUTS, *(f"soft_{i + 1}" for i in range(num_stages))]


def num_grouping_stages(model: GroupViT) -> int:
    return sum(layer.downsample is not None for layer in model.img_encoder.layers)


def tower_fingerprint(model: GroupViT) -> str:
    """sha256 of the image tower's weights and buffers (fp32 bytes, in ``state_dict`` order): which model a file
    holds, independent of how it is stored or quantised."""
    digest = hashlib.sha256()
    for tower in (model.img_encoder, model.img_projector):
        for name, value in tower.state_dict().items():
            digest.update(name.encode())
            digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


class ImageTowerGraph(nn.Module):
    """``GroupViT.forward_image`` with its outputs as a flat tuple of tensors (what an exporter can write). The
    image embedding and the segment embeddings go through the projection in one call (the same numbers: its
    BatchNorm is per-sample at eval), so the exported graph uses each projection weight once."""

    def __init__(self, model: GroupViT):
        super().__init__()
        self.encoder, self.projector = model.img_encoder, model.img_projector
        self.patch_size = model.config.patch_size

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vision = self.encoder(images)
        embeds = self.projector(torch.cat([vision.pooled[:, None], vision.tokens], dim=1))
        embeds = F.normalize(embeds.float(), dim=-1)
        grid = torch._shape_as_tensor(images)[2:] // self.patch_size  # traced from the input: any H, W
        return (embeds[:, 0], embeds[:, 1:], vision.tokens, grid, *(a.soft for a in vision.assignments))


def export_image_tower(model: GroupViT, path: str | os.PathLike, *, image_size: tuple[int, int] | None = None) -> Path:
    """Write ``model``'s image tower (fp32, in eval mode) to ``path`` as ONNX with dynamic batch, height and width;
    trace it at ``image_size`` (default: the model's native size). Returns the path."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"the output should be a .onnx file, got {path}")
    if not path.parent.is_dir():
        raise ValueError(f"the output folder {path.parent} does not exist")
    if next(model.parameters()).dtype != torch.float32:
        raise ValueError("export the fp32 model (the ONNX tower runs in fp32); load it again or call model.float()")
    was_training = model.training
    graph = ImageTowerGraph(model).eval()
    height, width = image_size or (model.config.image_size,) * 2
    example = torch.zeros(1, 3, height, width, device=next(model.parameters()).device)
    stages = num_grouping_stages(model)
    names = output_names(stages)
    dynamic = {"images": {0: "batch", 2: "height", 3: "width"}}
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns about Python ints read off shapes: the pos-table side (a constant of the model) and the
        # native-grid shortcut, which is skipped while tracing (see vision.interpolate_pos_embed)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice (see the top)
        torch.onnx.export(graph, (example,), str(path), dynamo=False, opset_version=OPSET, input_names=["images"],
                          output_names=names, dynamic_axes=dynamic)  # fmt: skip
    model.train(was_training)
    write_metadata(path, model, stages)
    return path


def write_metadata(path: Path, model: GroupViT, stages: int) -> None:
    """Name the model in the file: groupseg's config, grouping stages, and the tower fingerprint."""
    import onnx

    proto = onnx.load(str(path))
    values = {"groupseg.config": json.dumps(model.config.to_dict()), "groupseg.stages": str(stages),
              "groupseg.tower_sha256": tower_fingerprint(model)}  # fmt: skip
    for key, value in values.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))

