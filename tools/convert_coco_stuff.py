"""Make COCO-Stuff-171 label maps (mmseg's COCOStuffDataset format) from the COCO-Stuff 164k stuffthingmaps: the 80
thing and 91 stuff classes become train ids 0-170 in COCO id order, unlabelled (255) and unused ids become 255.

    python tools/convert_coco_stuff.py data/coco_stuff164k [-o OUT_DIR] [--nproc 8]

Reads ``annotations/{train2017,val2017}/<id>.png`` (value = COCO category id - 1) and writes
``<id>_labelTrainIds.png`` beside them (or under ``OUT_DIR/annotations/<split>``). The same table as mmseg's
``tools/dataset_converters/coco_stuff164k.py``, which however insists on all 123,287 train + val masks and copies the
images; this one converts whichever splits are there (val2017 alone is enough for the benchmark).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from functools import partial
from glob import glob
from multiprocessing import Pool

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from groupseg.cli import output_dir  # noqa: E402


def convert(mask_path: str, out_dir: str, table: str, suffix: str) -> str:
    from groupseg.zeroshot import label_maps

    out = osp.join(out_dir, osp.basename(mask_path)[: -len(".png")] + suffix)
    return label_maps.remap_label_png(mask_path, out, getattr(label_maps, table))


def main(argv: list[str] | None = None, table: str = "COCO_STUFF_171", suffix: str = "_labelTrainIds.png",
         description: str = "COCO-Stuff 164k stuffthingmaps -> COCO-Stuff-171 train-id masks") -> int:
    """Also tools/convert_coco_object.py's body: the same walk over the splits with another table and suffix."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("coco_path", help="COCO-Stuff 164k root (with annotations/train2017, annotations/val2017)")
    parser.add_argument("-o", "--out-dir", help="output root (default: coco_path, masks written beside the inputs)")
    parser.add_argument("--nproc", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    import groupseg.zeroshot.label_maps  # noqa: F401  (it loads mmseg: once here, not in each of the pool's workers)

    out_root = args.out_dir or args.coco_path
    total = 0
    for split in ("train2017", "val2017"):
        masks = sorted(p for p in glob(osp.join(args.coco_path, "annotations", split, "*.png")) if "TrainIds" not in p)
        if not masks:
            continue
        try:  # a file where the output folder goes, or a mask that is not an 8-bit label PNG: one line
            out_dir = str(output_dir(osp.join(out_root, "annotations", split), "--out-dir"))
            work = partial(convert, out_dir=out_dir, table=table, suffix=suffix)
            if args.nproc > 1:
                with Pool(args.nproc) as pool:
                    pool.map(work, masks, chunksize=64)
            else:
                list(map(work, masks))
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{split}: {len(masks)} masks -> {out_dir}")
        total += len(masks)
    if not total:
        print(f"error: no COCO-Stuff label PNGs under {osp.join(args.coco_path, 'annotations', '{train2017,val2017}')}"
              " (unpack stuffthingmaps_trainval2017.zip there; see data/README.md)", file=sys.stderr)  # fmt: skip
        return 2
    if out_root != args.coco_path and not osp.exists(osp.join(out_root, "images")):
        os.symlink(osp.abspath(osp.join(args.coco_path, "images")), osp.join(out_root, "images"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
