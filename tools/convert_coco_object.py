"""Make COCO-Object masks from COCO-Stuff 164k, as GroupViT did: the 80 thing classes become 1-80, all stuff
classes and the 255 'unlabelled' value become background 0 (so COCO-Object has no ignored pixels).

    python tools/convert_coco_object.py data/coco_stuff164k [--nproc 8]

Reads ``annotations/{train2017,val2017}/<id>.png`` (COCO-Stuff ``stuffthingmaps``: value = COCO category id - 1) and
writes ``<id>_instanceTrainIds.png`` beside them (or under ``-o OUT_DIR/annotations/<split>``).
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

SUFFIX = "_instanceTrainIds.png"


def convert(mask_path: str, out_dir: str) -> str:
    from groupseg.zeroshot.label_maps import COCO_OBJECT_81, remap_label_png

    out = osp.join(out_dir, osp.basename(mask_path)[: -len(".png")] + SUFFIX)
    return remap_label_png(mask_path, out, COCO_OBJECT_81)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="COCO-Stuff 164k -> COCO-Object masks (80 things + background)")
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
        out_dir = osp.join(out_root, "annotations", split)
        os.makedirs(out_dir, exist_ok=True)
        work = partial(convert, out_dir=out_dir)
        if args.nproc > 1:
            with Pool(args.nproc) as pool:
                pool.map(work, masks, chunksize=64)
        else:
            list(map(work, masks))
        print(f"{split}: {len(masks)} masks -> {out_dir}")
        total += len(masks)
    if not total:
        print(f"error: no COCO-Stuff label PNGs under {osp.join(args.coco_path, 'annotations', '{train2017,val2017}')}",
              file=sys.stderr)  # fmt: skip
        return 2
    if out_root != args.coco_path and not osp.exists(osp.join(out_root, "images")):
        os.symlink(osp.abspath(osp.join(args.coco_path, "images")), osp.join(out_root, "images"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
