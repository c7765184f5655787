#!/usr/bin/env python
"""The choices behind exemplars, measured on the synthetic world's ``dev`` split (never trained on, never the held-out
set): the pixel → group coverage rule (hard / soft) and the background threshold for exemplar classes.

    python tools/research/sweep_exemplars.py CHECKPOINT [--data data/synthetic] [--support DIR] [--images 300]
        [--work work_dirs/sweep_exemplars]

Writes the dev split of DATA's world (``val/world.json``; the split's own seed space) to WORK, then prints JSON lines:
- ``fewshot``: 1- and 5-shot foreground IoU (groupseg.metrics.few_shot) with supports from DATA/support and queries
  from dev, per coverage rule and cosine threshold (the head's rule: background where a segment's cosine similarity
  to the class is below ``min(T, the image's best)``), for shapes and colours;
- ``vocabulary``: dev mIoU (the IoUMetric definition, background included) of DATA/support's exemplar vocabularies
  and of the text vocabulary, per threshold.
Everything runs in process on the image tower's outputs, with the head's own functions.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from groupseg.synthetic.world import EVAL_VOCABULARIES, WorldConfig, write_segmentation

if TYPE_CHECKING:  # imported where used, after the arguments are parsed: --help answers without loading torch
    import torch

    from groupseg.data.few_shot import VOCLayout

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
VOCAB_FILES = {"shapes": ("classes.txt", "exemplars.txt", "text_exemplars.txt", "exemplars_5.txt"),
               "colours": ("colours.txt", "exemplars_colours.txt", "text_exemplars_colours.txt",
                           "exemplars_5_colours.txt")}  # fmt: skip


def tower(model, data: VOCLayout, names: list[str]):
    import torch

    from groupseg.prompts.exemplars import _network_input
    from groupseg.zeroshot.head import pixel_groups

    with torch.no_grad():
        images = torch.stack([_network_input(data.image(n), None) for n in names])
        out = model.forward_image(images)
        soft = [a.soft for a in out.vision.assignments]
        return out, soft, pixel_groups(soft, out.vision.grid, tuple(images.shape[2:]))


def fewshot(model, support: VOCLayout, query: VOCLayout, out, groups, index: dict[str, int], label: str) -> None:
    import torch
    import torch.nn.functional as F

    from groupseg.metrics.few_shot import FewShotIoU, sample_episodes
    from groupseg.prompts.exemplars import Exemplar, exemplar_embeddings

    cache: dict[tuple, torch.Tensor] = {}
    for shots in (1, 5):
        episodes = sample_episodes(query.items(), shots=shots, seed=0, support_items=support.items())
        for coverage in ("hard", "soft"):
            meters = {t: FewShotIoU() for t in THRESHOLDS}
            for ep in episodes:
                keys = [(k, ep.category, coverage) for k in ep.support]
                for key in keys:
                    if key not in cache:
                        exemplar = Exemplar("x", support.image(key[0]), support.mask(key[0], key[1])[0])
                        cache[key] = exemplar_embeddings(model, [exemplar], coverage=coverage)[0]
                embed = F.normalize(torch.stack([cache[k] for k in keys]).mean(0), dim=-1)
                q = index[ep.query]
                cos = out.group_embeds[q] @ embed  # [G]
                target, ignore = query.mask(ep.query, ep.category)
                for t, meter in meters.items():
                    foreground = cos >= torch.clamp(cos.max(), max=t)
                    meter.add(ep.category, foreground[groups[q]].numpy(), target, ignore)
            for t, meter in meters.items():
                print(json.dumps(dict(kind="fewshot", labels=label, shots=shots, coverage=coverage, bg_thresh=t,
                                      mIoU=round(meter.mean_iou(), 2), episodes=len(episodes))),
                      flush=True)  # fmt: skip


def vocabulary_miou(model, name: str, vocab, out, soft, gts: np.ndarray, label: str) -> None:
    """Dev mIoU of a vocabulary per coverage rule (exemplar vocabularies) and threshold, as IoUMetric counts it."""
    from groupseg.zeroshot import class_embeddings
    from groupseg.zeroshot.head import seg_logits

    n = len(vocab)
    for coverage in ("hard", "soft") if vocab.has_exemplars else ("-",):
        embeds = class_embeddings(model, vocab, exemplar_coverage=None if coverage == "-" else coverage)
        for t in THRESHOLDS:
            logits = seg_logits(soft, out.vision.grid, out.group_embeds, out.image_embeds, embeds, model.scale(),
                                size=gts.shape[1:], bg_thresh=t, bg_score="cosine")  # fmt: skip
            pred = logits.max(dim=1).indices.numpy()
            valid = gts != 255
            inter = np.bincount(gts[valid & (pred == gts)], minlength=n)[:n]
            union = np.bincount(pred[valid], minlength=n)[:n] + np.bincount(gts[valid], minlength=n)[:n] - inter
            print(json.dumps(dict(kind="vocabulary", labels=label, vocab=name, coverage=coverage, bg_thresh=t,
                                  mIoU=round(float(100 * np.mean(inter[union > 0] / union[union > 0])), 2))),
                  flush=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--data", default="data/synthetic", help="the world (val/world.json, support/)")
    parser.add_argument("--support", help="the support split (default DATA/support)")
    parser.add_argument("--images", type=int, default=300, help="dev images (default 300)")
    parser.add_argument("--work", default="work_dirs/sweep_exemplars")
    args = parser.parse_args()
    import torch

    from groupseg.data.few_shot import VOCLayout
    from groupseg.models.load import load_model
    from groupseg.zeroshot import parse_vocabulary

    data, work = Path(args.data), Path(args.work)
    support_dir = Path(args.support) if args.support else data / "support"
    world = json.loads((data / "val" / "world.json").read_text())
    seed = world.pop("seed")
    world.pop("split")
    dev = work / "dev"
    if not (dev / "ImageSets" / "Segmentation" / "dev.txt").is_file():
        write_segmentation(dev, args.images, WorldConfig(**world), seed=seed, split="dev")
    torch.set_grad_enabled(False)
    model = load_model(args.checkpoint).eval()
    for label, (vocab, masks, _) in EVAL_VOCABULARIES.items():
        query, support = VOCLayout(dev, vocab, masks), VOCLayout(support_dir, vocab, masks)
        names = (dev / "ImageSets" / "Segmentation" / "dev.txt").read_text().split()
        out, soft, groups = tower(model, query, names)
        fewshot(model, support, query, out, groups, {n: i for i, n in enumerate(names)}, label)
        gts = np.stack([np.asarray(Image.open(dev / masks / f"{n}.png"), np.int64) for n in names])
        for filename in VOCAB_FILES[label]:
            path = (support_dir / filename) if "exemplars" in filename else dev / filename
            vocabulary_miou(model, filename, parse_vocabulary(path), out, soft, gts, label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
