#!/usr/bin/env python
"""One-shot / few-shot segmentation, the field's protocol: fixed episodes, foreground IoU per class, mean over classes.

    python tools/eval_fewshot.py synthetic data/synthetic --checkpoint CKPT [--labels shapes|colours] [--support DIR]
    python tools/eval_fewshot.py fss1000 data/FSS-1000 --split-file test.txt --checkpoint CKPT
    python tools/eval_fewshot.py coco20i data/COCO2014 --fold 0 --checkpoint CKPT [--episodes 1000] [--split-file PKL]
    python tools/eval_fewshot.py pascal5i data/VOCdevkit/VOC2012 --fold 0 --checkpoint CKPT [--split-file fold0.txt]
        [--shots 1 5] [--seed 0] [--method exemplar|colour] [--bg-thresh T] [--short-side N] [--json FILE]

Each episode defines the class by its support images and masks (one exemplar each, averaged) and segments the query:
foreground where a segment's cosine similarity to the class beats ``--bg-thresh`` (the head's background rule).
``--method colour`` is the pixel-colour baseline (no model). Episodes: synthetic and FSS-1000 query every image of
every class once (synthetic: queries from ``val/``, supports from ``support/``); COCO-20i draws ``--episodes``
(default 1000) from ``--seed``; PASCAL-5i takes its list's (image, class) pairs in order, cycled to ``--episodes``
(default 1000; HSNet's order), supports from ``--seed``. PASCAL-5i: VOC2012's 20 classes, fold i = labels
5i+1..5i+5; queries and supports from VOC2012 val (``ImageSets/Segmentation/val.txt``, or HSNet's
``data/splits/pascal/val/fold<i>.txt`` with ``--split-file``); masks from ``SegmentationClassAug`` if the folder has
it, else ``SegmentationClass``; 255 is not scored. Without HSNet's lists, an image holds a class where the class
covers ``--min-area`` pixels (PFENet's 2·32·32, COCO-20i and PASCAL-5i alike). Protocol and readers:
groupseg/metrics/few_shot.py, groupseg/data/few_shot.py.
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import groupseg  # noqa: E402,F401  (first: applies the compat shims)
from groupseg.data.few_shot import PFENET_MIN_AREA  # noqa: E402
from groupseg.synthetic.world import EVAL_VOCABULARIES  # noqa: E402

DEFAULT_BG_THRESH = 0.5  # cosine; chosen on the synthetic world's dev split (docs/exemplars.md)
VOC_CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), "configs/_base_/datasets/pascal_voc12.py")
FOLD_LAYOUTS = ("coco20i", "pascal5i")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=("synthetic", "fss1000", *FOLD_LAYOUTS), help="dataset layout")
    parser.add_argument("root", help="dataset folder (pascal5i: VOC2012, or the folder holding it)")
    parser.add_argument("--checkpoint", help="GroupViT weights (anything groupseg.load_model reads)")
    parser.add_argument("--method", choices=("exemplar", "colour"), default="exemplar",
                        help="exemplar embeddings (default) or the pixel-colour baseline (no model)")  # fmt: skip
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5], help="support images per episode (default 1 5)")
    parser.add_argument("--episodes", type=int,
                        help="episodes drawn at random (default: every query once; COCO-20i and PASCAL-5i 1000)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    parser.add_argument("--labels", choices=tuple(EVAL_VOCABULARIES), help="synthetic: which labels (default shapes)")
    parser.add_argument("--support", help="synthetic: the support split (default ROOT/support)")
    parser.add_argument("--split-file", help="FSS-1000: class folder names to evaluate, one a line (default: all); "
                        "COCO-20i: HSNet's data/splits/coco/val/fold<i>.pkl (default: images where the class covers "
                        "2·32·32 pixels); PASCAL-5i: HSNet's data/splits/pascal/val/fold<i>.txt (NAME__LABEL lines) "
                        "or a VOC image list (default ROOT/ImageSets/Segmentation/val.txt)")  # fmt: skip
    parser.add_argument("--fold", type=int, help="COCO-20i / PASCAL-5i fold 0-3 (default 0)")
    parser.add_argument("--min-area", type=int, metavar="PIXELS",
                        help="COCO-20i / PASCAL-5i: an image holds a class when the class covers this many "
                             f"pixels (default {PFENET_MIN_AREA}, PFENet's 2·32·32; not applied to the pairs an HSNet "
                             "list names)")  # fmt: skip
    parser.add_argument("--bg-thresh", type=float,
                        help=f"background below this cosine similarity (default {DEFAULT_BG_THRESH})")  # fmt: skip
    parser.add_argument("--short-side", type=int,
                        help="resize images (and exemplars) to this short side (default: their own size)")  # fmt: skip
    parser.add_argument("--json", help="write the scores (per shots: mIoU, FB-IoU, per class) to this JSON file")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    for option, applies, to in ((args.labels, args.dataset == "synthetic", "--labels: the synthetic layout"),
                                (args.support, args.dataset == "synthetic", "--support: the synthetic layout"),
                                (args.split_file, args.dataset in ("fss1000", *FOLD_LAYOUTS),
                                 "--split-file: the fss1000, coco20i and pascal5i layouts"),
                                (args.fold, args.dataset in FOLD_LAYOUTS, "--fold: the coco20i and pascal5i layouts"),
                                (args.min_area, args.dataset == "pascal5i" or (args.dataset == "coco20i"
                                                                               and args.split_file is None),
                                 "--min-area: pascal5i, and coco20i without --split-file,"),
                                (args.checkpoint, args.method == "exemplar", "--checkpoint: --method exemplar"),
                                (args.bg_thresh, args.method == "exemplar", "--bg-thresh: --method exemplar"),
                                (args.short_side, args.method == "exemplar", "--short-side: --method exemplar")):
        if option is not None and not applies:  # an option that would be ignored
            parser.error(f"{to.replace(':', ' applies to')} only")
    if args.min_area is not None and args.min_area < 0:
        parser.error(f"--min-area must be >= 0, got {args.min_area}")
    defaults = dict(labels="shapes", fold=0, bg_thresh=DEFAULT_BG_THRESH, min_area=PFENET_MIN_AREA)
    return argparse.Namespace(**{**vars(args), **{k: v for k, v in defaults.items() if getattr(args, k) is None}})


def datasets(args: argparse.Namespace):
    """``(support dataset, query dataset, default episodes)`` for the layout asked for."""
    from groupseg.data.few_shot import COCO20i, FSS1000, VOCLayout

    if args.dataset == "synthetic":
        vocab, masks, _ = EVAL_VOCABULARIES[args.labels]
        query = VOCLayout(osp.join(args.root, "val"), vocab, masks)
        support = VOCLayout(args.support or osp.join(args.root, "support"), vocab, masks)
        return support, query, None
    if args.dataset == "fss1000":
        data = FSS1000(args.root, args.split_file)
        return data, data, None
    if args.dataset == "pascal5i":
        data = pascal5i(args.root, args.fold, args.split_file, args.min_area)
        return data, data, 1000
    data = COCO20i(args.root, args.fold, min_area=args.min_area, split_file=args.split_file)
    return data, data, 1000


def pascal5i(root: str, fold: int, split_file: str | None, min_area: int):
    """PASCAL-5i's fold from a VOC2012 folder: masks from SegmentationClassAug (HSNet's) if present, else
    SegmentationClass; images of ``split_file``, else of VOC2012 val, holding a class where it covers ``min_area``
    pixels (PFENet's rule; HSNet's ``name__NN`` lines name their pairs); class names of groupseg's VOC vocabulary."""
    from mmengine.config import Config

    from groupseg.data.few_shot import FewShotDatasetError, VOCLayout

    if not osp.isdir(root):
        raise FewShotDatasetError(f"PASCAL VOC folder {root} does not exist")
    if not osp.isdir(osp.join(root, "JPEGImages")) and osp.isdir(osp.join(root, "VOC2012", "JPEGImages")):
        root = osp.join(root, "VOC2012")  # the folder above, as HSNet's --datapath names it
    if not 0 <= fold < 4:
        raise ValueError(f"--fold must be in 0..3 for PASCAL-5i, got {fold}")
    masks = "SegmentationClassAug" if osp.isdir(osp.join(root, "SegmentationClassAug")) else "SegmentationClass"
    image_list = split_file or osp.join(root, "ImageSets", "Segmentation", "val.txt")
    if not osp.isfile(image_list):
        raise FewShotDatasetError(f"{image_list} does not exist: PASCAL-5i reads VOC2012 val's images; give a list "
                                  f"with --split-file (HSNet's data/splits/pascal/val/fold{fold}.txt)")  # fmt: skip
    data = VOCLayout(root, Config.fromfile(VOC_CONFIG).class_names, masks, fold=fold, image_list=image_list,
                     min_area=min_area)
    classes = ", ".join(data.class_name(c) for c in data.items())
    if not any(data.items().values()):
        raise FewShotDatasetError(f"{image_list} holds no image of fold {fold}'s classes ({classes})")
    print(f"note: PASCAL-5i fold {fold} ({classes}): images of {image_list} (a class where it covers >= {min_area} "
          f"pixels, or as its NAME__LABEL lines say), masks from {osp.join(root, masks)}", file=sys.stderr)  # fmt: skip
    return data


def evaluate(args: argparse.Namespace) -> dict:
    import numpy as np

    from groupseg.metrics.few_shot import FewShotIoU, sample_episodes
    from groupseg.models.checkpoint import CheckpointError
    from groupseg.prompts.exemplars import Exemplar
    from groupseg.synthetic.colour_baseline import colour_baseline_mask
    from groupseg.zeroshot import ZeroShotSegmenter

    support_data, query_data, default_episodes = datasets(args)
    segmenter = None
    if args.method == "exemplar":
        if not args.checkpoint:
            raise CheckpointError("--method exemplar needs --checkpoint")
        segmenter = ZeroShotSegmenter(args.checkpoint, ["background", "placeholder"], bg_thresh=args.bg_thresh,
                                      bg_score="cosine", short_side=args.short_side, device=args.device)  # fmt: skip
    episodes_asked = args.episodes if args.episodes is not None else default_episodes
    results = {}
    for shots in args.shots:
        episodes = sample_episodes(
            query_data.items(), shots=shots, num_episodes=episodes_asked, seed=args.seed,
            support_items=None if support_data is query_data else support_data.items(),
            queries=query_data.listed if args.dataset == "pascal5i" else None,  # HSNet: its list's lines in order
        )  # fmt: skip
        if not episodes:
            raise ValueError(f"no class has {shots} support images besides its query")
        pools, needed = support_data.items(), shots + (support_data is query_data)  # a query is not its own support
        left_out = sorted(query_data.class_name(c) for c in query_data.items() if len(pools.get(c, ())) < needed)
        if left_out:  # the mean is over the other classes: say so
            print(f"note: {shots}-shot leaves out {len(left_out)} class(es) with fewer than {shots} support images "
                  f"besides the query: {', '.join(left_out[:10])}", file=sys.stderr)  # fmt: skip
        meter, start = FewShotIoU(), time.perf_counter()
        for episode in episodes:
            supports = [(support_data.image(k), support_data.mask(k, episode.category)[0]) for k in episode.support]
            supports = [(rgb, mask) for rgb, mask in supports if mask.any()]  # an empty mask defines nothing
            query = query_data.image(episode.query)
            target, ignore = query_data.mask(episode.query, episode.category)
            if not supports:  # no support shows the class: nothing can be found
                prediction = np.zeros(target.shape, bool)
            elif segmenter is None:
                prediction = colour_baseline_mask(supports, query)
            else:
                name = query_data.class_name(episode.category)
                segmenter.set_classes([Exemplar(name, rgb, mask) for rgb, mask in supports])
                prediction = segmenter(query).labels == 1
            meter.add(episode.category, prediction, target, ignore)
        seconds = time.perf_counter() - start
        per_class = {query_data.class_name(c): round(v, 2) for c, v in meter.per_class().items()}
        results[f"{shots}-shot"] = dict(mIoU=meter.mean_iou(), FB_IoU=meter.fb_iou(), episodes=len(episodes),
                                        classes=len(per_class), seconds=seconds, per_class=per_class)  # fmt: skip
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if any(s < 1 for s in args.shots):
        print("error: --shots must be at least 1", file=sys.stderr)
        return 2
    if args.episodes is not None and args.episodes < 1:
        print(f"error: --episodes must be at least 1, got {args.episodes}", file=sys.stderr)
        return 2
    from groupseg.cli import output_file
    from groupseg.data.few_shot import FewShotDatasetError
    from groupseg.models.checkpoint import CheckpointError
    from groupseg.prompts.exemplars import ExemplarError
    from groupseg.zeroshot import VocabularyError

    try:
        if args.json:
            output_file(args.json, "--json")
        results = evaluate(args)
    except (CheckpointError, ExemplarError, FewShotDatasetError, VocabularyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    what = args.method if args.method == "colour" else f"exemplars, bg-thresh {args.bg_thresh}"
    which = args.labels if args.dataset == "synthetic" else f"fold {args.fold}" if args.dataset in FOLD_LAYOUTS else ""
    print(f"{args.dataset} {which} few-shot foreground IoU ({what})".replace("  ", " "))
    for setting, r in results.items():
        classes = "  ".join(f"{name} {iou:.1f}" for name, iou in r["per_class"].items())
        print(f"{setting}: mIoU {r['mIoU']:.2f}  FB-IoU {r['FB_IoU']:.2f}  ({r['episodes']} episodes, "
              f"{r['classes']} classes, {r['seconds']:.1f} s)\n  {classes}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            fold = {"fold": args.fold} if args.dataset in FOLD_LAYOUTS else {}
            json.dump({"dataset": args.dataset, **fold, "method": args.method, "seed": args.seed, **results}, f,
                      indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
