#!/usr/bin/env python
"""Export a GroupViT's image tower to ONNX, for ONNX Runtime (or any ONNX runtime) to run.

    python tools/export.py CHECKPOINT --out tower.onnx [--image-size 448] [--no-check]

The file takes normalised pixels ``images [B, 3, H, W]`` (batch, height and width dynamic) and returns what the
zero-shot head and the prompt tools need: ``image_embeds``, ``group_embeds`` (projected, normalised), ``tokens``,
``grid`` and each grouping stage's soft assignment ``soft_1 ..`` (see groupseg/models/export.py). It is checked
against the eager model (fp32) on two random images, at the traced size and at another size, unless ``--no-check``.
Use it in evaluation with ``--cfg-options model.test_cfg.backend=onnx model.test_cfg.onnx_path=tower.onnx``, in
Python with ``ZeroShotSegmenter(ckpt, classes, onnx_path="tower.onnx")`` or ``OnnxImageTower`` (docs/performance.md).
CHECKPOINT is anything ``groupseg.load_model`` reads. Bad input exits with code 2 and one line on stderr.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import groupseg  # noqa: E402

TOLERANCE = 1e-3  # embeddings and soft assignments, fp32 eager vs ONNX Runtime (measured: ~1e-6)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="GroupViT weights (anything groupseg.load_model reads)")
    parser.add_argument("--out", required=True, help="the .onnx file to write (refused if it exists)")
    parser.add_argument("--image-size", type=int, nargs="+", metavar="PX",
                        help="trace at this size: one side (square) or H W (default: the model's native size); "
                        "the file takes any size")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with the eager model")
    return parser.parse_args(argv)


def check(model: groupseg.GroupViT, path: str, sizes: list[tuple[int, int]]) -> float:
    """Largest difference between ONNX Runtime and eager fp32 over embeddings and soft assignments."""
    import torch

    from groupseg.models.onnx_tower import OnnxImageTower

    tower = OnnxImageTower(path, model=model)
    worst = 0.0
    generator = torch.Generator().manual_seed(0)
    for size in sizes:
        images = torch.randn(2, 3, *size, generator=generator)
        with torch.no_grad():
            expected = model.forward_image(images)
        got = tower(images)
        if got.vision.grid != expected.vision.grid:
            raise RuntimeError(f"exported grid {got.vision.grid} != eager {expected.vision.grid} at {size}")
        pairs = [(got.image_embeds, expected.image_embeds), (got.group_embeds, expected.group_embeds),
                 *((a.soft, b.soft) for a, b in zip(got.vision.assignments, expected.vision.assignments))]  # fmt: skip
        worst = max(worst, *((a - b).abs().max().item() for a, b in pairs))
    return worst


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from groupseg.cli import output_file
    from groupseg.models.checkpoint import CheckpointError
    from groupseg.models.export import export_image_tower

    try:
        if args.image_size is not None and (len(args.image_size) > 2 or min(args.image_size) < 1):
            raise ValueError(f"--image-size takes one or two positive sides, got {args.image_size}")
        output_file(args.out, "--out")  # a folder is refused, a missing parent folder made
        if osp.exists(args.out) and not args.overwrite:
            raise ValueError(f"{args.out} exists; pass --overwrite to replace it")
        if not osp.exists(args.checkpoint):
            raise CheckpointError(f"checkpoint {args.checkpoint} does not exist")
        model = groupseg.load_model(args.checkpoint).float().eval()
        patch = model.config.patch_size
        height, width = (args.image_size * 2)[:2] if args.image_size else (model.config.image_size,) * 2
        if min(height, width) < patch:
            raise ValueError(f"--image-size must be at least the patch size ({patch} px)")
        start = time.perf_counter()
        path = export_image_tower(model, args.out, image_size=(height, width))
        print(f"wrote {path} ({osp.getsize(path) / 2**20:.1f} MB) in {time.perf_counter() - start:.1f} s")
    except (CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.no_check:
        other = (height + 2 * patch, width + 4 * patch)  # another size, not a multiple of the traced one
        worst = check(model, str(path), [(height, width), other])
        verdict = "ok" if worst <= TOLERANCE else "TOO LARGE"
        print(f"check: ONNX Runtime vs eager fp32 at {height}x{width} and {other[0]}x{other[1]}: max |diff| "
              f"{worst:.1e} ({verdict}, tolerance {TOLERANCE:g})")  # fmt: skip
        if worst > TOLERANCE:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
