"""Make COCO-Object masks from COCO-Stuff 164k, as GroupViT did: the 80 thing classes become 1-80, all stuff
classes and the 255 'unlabelled' value become background 0 (so COCO-Object has no ignored pixels).

    python tools/convert_coco_object.py data/coco_stuff164k [--nproc 8]

Reads ``annotations/{train2017,val2017}/<id>.png`` (COCO-Stuff ``stuffthingmaps``: value = COCO category id - 1) and
writes ``<id>_instanceTrainIds.png`` beside them (or under ``-o OUT_DIR/annotations/<split>``).
"""
from __future__ import annotations

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # tools/convert_coco_stuff.py: the same walk over the splits

from convert_coco_stuff import main as convert_splits  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return convert_splits(argv, table="COCO_OBJECT_81", suffix="_instanceTrainIds.png",
                          description="COCO-Stuff 164k -> COCO-Object masks (80 things + background)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
