#!/usr/bin/env python
"""Faster inference paths against eager fp32, side by side: zero-shot label agreement, mIoU, and speed.

    python tools/research/inference_paths.py CHECKPOINT --images data/synthetic/val [--limit 200]
    python tools/research/inference_paths.py CHECKPOINT --random 224 448 [--paths onnx onnx-int8 torch-int8 compiled]

Paths (each a ``GroupViTSegmentor`` with whole inference, the same head and vocabulary; eager fp32 is the reference):
``onnx`` (the tower exported by tools/export.py, run by ONNX Runtime in fp32), ``onnx-int8`` (that file with ONNX
Runtime's dynamic int8 quantisation of its weight matmuls), ``torch-int8`` (``torch.ao`` dynamic int8 quantisation of
the tower's linears), ``compiled`` (inductor, weights frozen: ``test_cfg.compile``). The grouping assignments' q/k
projections stay fp32 in both int8 paths: their logits decide which group each token joins.

``--images DIR``: a VOC-layout set (``JPEGImages/``, ``SegmentationClass/``, ``classes.txt``), e.g. the synthetic
world's held-out set, at its native size: per-pixel agreement with eager fp32 and mIoU against the ground truth
(mmseg's ``IoUMetric``). ``--random SIZES``: random normalised images of those sizes (agreement only), a VOC-sized
vocabulary. Speed: each path's per-image time, interleaved with eager (ratios matter; absolute times depend on load).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import groupseg  # noqa: E402

if TYPE_CHECKING:  # imported where used, after the arguments are parsed: --help answers without loading torch
    import torch

    from groupseg.zeroshot import GroupViTSegmentor

PATHS = ("onnx", "onnx-int8", "torch-int8", "compiled")


def fp32_layer_names(module: torch.nn.Module) -> set[str]:
    """Names of the linears a module keeps in fp32 (``fp32_layers``: the assignment logits' q/k projections)."""
    return {f"{name}.{child}" if name else child for name, sub in module.named_modules()
            for child in getattr(sub, "fp32_layers", ())}  # fmt: skip


def torch_int8(model: groupseg.GroupViT) -> groupseg.GroupViT:
    """A copy with the image tower's linears dynamically quantised to int8 (torch.ao, fbgemm)."""
    import torch

    quantized = copy.deepcopy(model)
    for tower in ("img_encoder", "img_projector"):
        module = getattr(quantized, tower)
        keep = fp32_layer_names(module)
        spec = {name: torch.ao.quantization.default_dynamic_qconfig for name, sub in module.named_modules()
                if isinstance(sub, torch.nn.Linear) and name not in keep}  # fmt: skip
        setattr(quantized, tower, torch.ao.quantization.quantize_dynamic(module, spec, dtype=torch.qint8))
    return quantized


def onnx_int8(source: Path, target: Path) -> Path:
    """ONNX Runtime's dynamic int8 quantisation of the weight matmuls (per output channel), assignment q/k kept."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    proto = onnx.load(str(source))
    weights = {init.name for init in proto.graph.initializer}
    kept = lambda name: name.split("/")[-2:] in (["assign", "MatMul"], ["assign", "MatMul_1"])  # noqa: E731
    nodes = [n.name for n in proto.graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in weights
             and not kept(n.name)]  # fmt: skip
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, nodes_to_quantize=nodes,
                     extra_options={"DefaultTensorType": 1})  # fmt: skip
    quantized = onnx.load(str(target))  # the quantiser drops the metadata: the file still holds this model
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(proto.metadata_props)
    onnx.save(quantized, str(target))
    return target


def build_segmentors(model, paths, vocabulary, test_cfg, workdir: Path) -> dict[str, GroupViTSegmentor]:
    from groupseg.models.export import export_image_tower
    from groupseg.zeroshot import GroupViTSegmentor

    base = dict(mode="whole", precision="fp32", **test_cfg)
    segs = {"eager": GroupViTSegmentor(model=model, vocabulary=vocabulary, test_cfg=base)}
    if {"onnx", "onnx-int8"} & set(paths):
        tower = export_image_tower(model, workdir / "tower.onnx")
    for path in paths:
        if path == "onnx":
            cfg = dict(base, backend="onnx", onnx_path=str(tower))
        elif path == "onnx-int8":
            cfg = dict(base, backend="onnx", onnx_path=str(onnx_int8(tower, workdir / "tower_int8.onnx")))
        elif path == "compiled":
            cfg = dict(base, compile=True)
        if path == "torch-int8":
            segs[path] = GroupViTSegmentor(model=torch_int8(model), vocabulary=vocabulary, test_cfg=base)
        else:
            segs[path] = GroupViTSegmentor(model=model, vocabulary=vocabulary, test_cfg=cfg)
    return {name: seg.eval() for name, seg in segs.items()}


def load_voc(root: Path, limit: int | None):
    """(normalised image [1, 3, H, W], ground-truth labels [H, W] uint8) pairs of a VOC-layout folder."""
    import torch
    from PIL import Image

    from groupseg.zeroshot.single_image import IMAGENET_MEAN, IMAGENET_STD

    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    images = sorted((root / "JPEGImages").glob("*.jpg"))[:limit]
    for path in images:
        rgb = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1).float()
        label = np.asarray(Image.open(root / "SegmentationClass" / f"{path.stem}.png"))
        yield ((rgb - mean) / std)[None], label


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="a VOC-layout folder with classes.txt (e.g. the synthetic val)")
    source.add_argument("--random", type=int, nargs="+", metavar="PX", help="random images of these sizes")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--limit", type=int, help="first N images of --images")
    parser.add_argument("--bg-thresh", type=float, default=0.95)
    parser.add_argument("--bg-score", choices=("probability", "cosine"), default="probability")
    parser.add_argument("--timed", type=int, default=8, help="images timed per path, interleaved (default 8)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from torch._inductor import config as inductor_config

    inductor_config.compile_threads = 1
    model = groupseg.load_model(args.checkpoint).float().eval()
    if args.images:
        vocabulary = (args.images / "classes.txt").read_text().split("\n")
        vocabulary = [name for name in vocabulary if name.strip()]
        samples = list(load_voc(args.images, args.limit))
    else:
        vocabulary = ["background"] + [f"class {i}" for i in range(20)]
        generator = torch.Generator().manual_seed(0)
        samples = [(torch.randn(1, 3, s, s, generator=generator), None) for s in args.random for _ in range(4)]
    test_cfg = dict(bg_thresh=args.bg_thresh, bg_score=args.bg_score)
    with tempfile.TemporaryDirectory() as tmp:
        segs = build_segmentors(model, args.paths, vocabulary, test_cfg, Path(tmp))
        with torch.no_grad():
            report(segs, samples, len(vocabulary), args.timed)
    return 0


def report(segs: dict[str, GroupViTSegmentor], samples, num_classes: int, timed: int) -> None:
    import torch
    from mmseg.evaluation.metrics import IoUMetric

    agree = {name: [0, 0] for name in segs}
    areas = {name: [] for name in segs}
    times = {name: {} for name in segs}
    for index, (image, truth) in enumerate(samples):
        labels = {}
        rounds = 3 if index < timed else 1
        for round_ in range(rounds):  # interleaved, the order flipped each round; the first round untimed
            for name in segs if round_ % 2 == 0 else list(segs)[::-1]:
                start = time.perf_counter()
                labels[name] = segs[name].encode_decode(image).max(dim=1).indices[0]
                if round_ > 0:
                    times[name].setdefault(tuple(image.shape[2:]), []).append(time.perf_counter() - start)
        for name, label in labels.items():
            agree[name][0] += (label == labels["eager"]).sum().item()
            agree[name][1] += label.numel()
            if truth is not None:
                areas[name].append(IoUMetric.intersect_and_union(label, torch.from_numpy(truth.astype(np.int64)),
                                                                 num_classes, 255))  # fmt: skip
    for name in segs:
        line = f"{name:>10}: labels agree with eager fp32 on {100 * agree[name][0] / agree[name][1]:.3f}% of pixels"
        if areas[name]:
            inter, union = (torch.stack([a[i] for a in areas[name]]).sum(0) for i in (0, 1))
            iou = inter / union
            line += f", mIoU {100 * iou[~iou.isnan()].mean().item():.2f}"
        for size, values in times[name].items():
            ratio = statistics.median(times["eager"][size]) / statistics.median(values)
            line += f"; {size[0]}x{size[1]} {1e3 * statistics.median(values):.1f} ms ({ratio:.2f}× eager)"
        print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
