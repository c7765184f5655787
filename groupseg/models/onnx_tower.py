"""``OnnxImageTower``: an exported image tower (``tools/export.py``) run by ONNX Runtime, returning the same
:class:`ImageOutput` as ``GroupViT.forward_image``, so the zero-shot head and the prompt tools take it unchanged.

    tower = OnnxImageTower("tower.onnx", model=model)     # model: checks the file holds this model's image tower
    out = tower(images)                                   # images [B, 3, H, W], normalised pixels, any H, W
    seg_logits([a.soft for a in out.vision.assignments], out.vision.grid, out.group_embeds, out.image_embeds, ...)
    GroupPredictor(use_onnx_tower(model, "tower.onnx"))   # every tool that calls model.forward_image runs it

ONNX Runtime runs on the CPU here, with as many threads as torch uses (``torch.get_num_threads()``) unless told.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .checkpoint import CheckpointError
from .export import FIXED_OUTPUTS, tower_fingerprint
from .groupvit import GroupViT, ImageOutput
from .grouping import Assignment, _one_hot_straight_through
from .vision import VisionOutput


class OnnxImageTower:
    """An image tower exported by :func:`groupseg.models.export.export_image_tower`, run by ONNX Runtime.

    Args:
        path: the ``.onnx`` file.
        model: if given, the file must hold this model's image tower (same weights fingerprint).
        Raises FileNotFoundError for a missing file, ``CheckpointError`` for an unreadable or mismatched one.
        threads: ONNX Runtime intra-op threads (default: ``torch.get_num_threads()``).
    """

    def __init__(self, path: str | os.PathLike, *, model: GroupViT | None = None, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX image tower {path} does not exist; write one with: "
                                    f"python tools/export.py CHECKPOINT --out {path}")  # fmt: skip
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ORT raises its own Fail / InvalidProtobuf / ... for unreadable files
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"cannot load ONNX image tower {path}: {first_line}") from err
        self.path = path
        self.metadata = self.session.get_modelmeta().custom_metadata_map
        self.output_names = [o.name for o in self.session.get_outputs()]
        if "groupseg.tower_sha256" not in self.metadata or self.output_names[:4] != list(FIXED_OUTPUTS):
            raise CheckpointError(f"{path} is not a groupseg image tower (write one with tools/export.py)")
        if model is not None and tower_fingerprint(model) != self.metadata["groupseg.tower_sha256"]:
            raise CheckpointError(f"{path} holds another model's image tower (its weights differ from this model's); "
                             "export this checkpoint with tools/export.py")  # fmt: skip

    def __call__(self, images: torch.Tensor) -> ImageOutput:
        """``[B, 3, H, W]`` normalised pixels → :class:`ImageOutput` on the images' device (fp32)."""
        pixels = images.detach().to("cpu", torch.float32).contiguous().numpy()
        values = dict(zip(self.output_names, self.session.run(None, {"images": pixels})))
        as_tensor = lambda name: torch.from_numpy(values[name]).to(images.device)  # noqa: E731
        soft = [as_tensor(name) for name in self.output_names[len(FIXED_OUTPUTS) :]]
        tokens = as_tensor("tokens")
        grid = tuple(int(side) for side in values["grid"])
        assignments = [Assignment(hard=_one_hot_straight_through(s, dim=-2), soft=s) for s in soft]  # eval's hard
        vision = VisionOutput(tokens=tokens, pooled=tokens.mean(dim=1), assignments=assignments, grid=grid)
        return ImageOutput(image_embeds=as_tensor("image_embeds"), group_embeds=as_tensor("group_embeds"),
                           vision=vision)  # fmt: skip

    forward_image = __call__  # the name GroupViT uses, for code written against a model


def use_onnx_tower(model: GroupViT, path: str | os.PathLike, *, threads: int | None = None) -> GroupViT:
    """``model``, in place, with ``forward_image`` run by the exported tower at ``path`` (checked to hold its
    weights). ``forward_image`` is where every inference tool meets the image tower (``GroupPredictor``,
    ``GroupMaskGenerator``, exemplar classes, the video segmenter through its segmentor), so they all run the ONNX
    tower unchanged; text embeddings still come from the model. For inference only: training uses the torch tower."""
    model.forward_image = OnnxImageTower(path, model=model, threads=threads)
    return model
