"""Make Cityscapes train-id label maps (mmseg's CityscapesDataset format) from the label-id PNGs that gtFine ships:
the 19 evaluated classes become train ids 0-18 and every other label 255.

    python tools/convert_cityscapes.py data/cityscapes [--gt-dir gtFine] [--nproc 8]

Reads every ``<gt-dir>/<split>/<city>/*_gtFine_labelIds.png`` and writes ``*_gtFine_labelTrainIds.png`` beside it.
The result is what mmseg's ``tools/dataset_converters/cityscapes.py`` draws from the ``*_polygons.json`` files with
``cityscapesscripts`` (same polygons, same drawing order, the label-id -> train-id table of
``cityscapesscripts/helpers/labels.py``), without that package.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from multiprocessing import Pool

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

SOURCE, TARGET = "_gtFine_labelIds.png", "_gtFine_labelTrainIds.png"


def convert(mask_path: str) -> str:
    from groupseg.zeroshot.label_maps import CITYSCAPES_19, remap_label_png

    return remap_label_png(mask_path, mask_path[: -len(SOURCE)] + TARGET, CITYSCAPES_19)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cityscapes *_gtFine_labelIds.png -> *_gtFine_labelTrainIds.png")
    parser.add_argument("cityscapes_path", help="Cityscapes root (with leftImg8bit/ and gtFine/)")
    parser.add_argument("--gt-dir", default="gtFine", help="annotation folder under the root (default gtFine)")
    parser.add_argument("--nproc", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    import groupseg.zeroshot.label_maps  # noqa: F401  (it loads mmseg: once here, not in each of the pool's workers)

    gt_dir = osp.join(args.cityscapes_path, args.gt_dir)
    masks = sorted(osp.join(d, f) for d, _, files in os.walk(gt_dir) for f in files if f.endswith(SOURCE))
    if not masks:
        print(f"error: no *{SOURCE} under {gt_dir} (unpack gtFine_trainvaltest.zip into {args.cityscapes_path}; "
              "see data/README.md)", file=sys.stderr)  # fmt: skip
        return 2
    try:
        if args.nproc > 1:
            with Pool(args.nproc) as pool:
                pool.map(convert, masks, chunksize=16)
        else:
            list(map(convert, masks))
    except ValueError as err:  # a mask that is not an 8-bit label PNG
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(masks)} masks -> *{TARGET} under {gt_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
