#!/usr/bin/env python
"""Write any GroupViT weights groupseg can read as a groupseg checkpoint (model.safetensors + config.json).

    python tools/convert_checkpoint.py group_vit_gcc_yfcc_30e-879422e0.pth checkpoints/groupvit-gcc-yfcc
    python tools/convert_checkpoint.py path/to/hf-groupvit-dir checkpoints/groupvit-hf

SRC: an official NVlabs .pth (only its weights are read; none of its pickled objects run), a Hugging Face
GroupViTModel directory, or a groupseg checkpoint (a training run's ``latest`` or work dir included). Official files do
not record head counts: groupseg uses width // 64 (right for the released models); pass --vision-heads / --text-heads
for others. DST must be new or empty; an existing groupseg checkpoint is replaced only with --overwrite, and anything
else (a file, a folder with other files) never.
"""
from __future__ import annotations

import argparse
import sys

import groupseg  # noqa: F401  (applies the stack's compatibility shims first)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="weights to convert: .pth file, Hugging Face directory or groupseg checkpoint")
    parser.add_argument("dst", help="output directory (new or empty)")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it is a groupseg checkpoint")
    parser.add_argument("--device", default="cpu", help="device to load the model on while converting (default: cpu)")
    parser.add_argument("--vision-heads", type=int, help="image tower heads (official .pth: default width // 64)")
    parser.add_argument("--text-heads", type=int, help="text tower heads (official .pth: default width // 64)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from groupseg.models.checkpoint import CheckpointError, check_replaceable, save_checkpoint
    from groupseg.models.convert import detect_format, read_checkpoint
    from groupseg.models.load import check_device, resolve_checkpoint

    overrides = {k: v for k, v in [("vision_heads", args.vision_heads), ("text_heads", args.text_heads)]
                 if v is not None}  # fmt: skip
    try:
        check_replaceable(args.dst, overwrite=args.overwrite)  # before the (possibly long) read
        device = check_device(args.device)
        src = resolve_checkpoint(args.src)
        fmt = detect_format(src)[0]
        checkpoint = read_checkpoint(src, **(overrides if fmt == "nvlabs" else {}))
        recorded = {k: getattr(checkpoint.config, k) for k in overrides}
        if recorded != overrides:  # the other formats record their head counts: a different one is another model
            raise CheckpointError(f"{src} ({fmt} format) records {recorded}; --vision-heads / --text-heads set the "
                                  "head counts of official .pth files, which do not record them")  # fmt: skip
        model = checkpoint.build_model().to(device).eval()
        out = save_checkpoint(model, args.dst, extra={"converted_from": {"format": checkpoint.format,
                                                                        "path": str(checkpoint.path)}})  # fmt: skip
    except (CheckpointError, OSError, ValueError) as err:  # ValueError: an unknown or absent --device
        print(f"convert_checkpoint: error: {err}", file=sys.stderr)
        return 2
    config = checkpoint.config
    print(f"detected format: {checkpoint.format} ({checkpoint.path})")
    print(f"model: image {config.image_size}px / patch {config.patch_size}, width {config.vision_width}, "
          f"depths {config.vision_depths}, heads {config.vision_heads}, group tokens {config.num_group_tokens}, "
          f"output groups {config.num_output_groups}; text width {config.text_width} x {config.text_layers} layers, "
          f"heads {config.text_heads}, context {config.context_length}; embed dim {config.embed_dim}")  # fmt: skip
    print(f"parameters: {sum(p.numel() for p in model.parameters()):,}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
