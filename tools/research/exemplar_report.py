#!/usr/bin/env python
"""Every exemplar figure of docs/exemplars.md in one command, on the synthetic world, with the public tools.

    python tools/research/exemplar_report.py CHECKPOINT [--data data/synthetic] [--untrained CKPT]
        [--work work_dirs/exemplar_report] [--dev-images 300] [--timing-images 100]

1. the support split: DATA/support, or (if the world has none, e.g. one made before it existed) written to
   WORK/support from DATA/val/world.json;
2. background thresholds chosen on the dev split (tools/research/sweep_exemplars.py), per model: the few-shot one
   per labelling (best mean of 1- and 5-shot), and one per vocabulary (the text one is also run with the config's
   own);
3. 1- and 5-shot mean FG-IoU on the held-out set (tools/eval_fewshot.py), shapes and colours: the model, the same
   model untrained (tools/init_checkpoint.py, seed 0, unless --untrained) and the pixel-colour baseline;
4. held-out mIoU with tools/test.py (IoUMetric) for the shape kinds under the text vocabulary, one exemplar per
   class, text + exemplar, and five exemplars per class;
5. cost: seconds to compute one exemplar class's embedding vs one text class's, and per-image seconds of
   ZeroShotSegmenter with a text vs an exemplar vocabulary of the same size (medians, in process).
Prints markdown tables; everything is also in WORK/report.json.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAIN_CONFIG = REPO / "configs/synthetic/groupvit_synthetic.py"
TEST_CONFIG = REPO / "configs/synthetic/zeroshot_synthetic.py"


def run(cmd: list[str], capture: bool = False) -> str:
    print(f"$ {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd, cwd=REPO, text=True, capture_output=capture)
    if result.returncode != 0:
        sys.exit(f"exemplar_report: failed: {' '.join(cmd)}\n{(result.stderr or '')[-2000:]}")
    return result.stdout or ""


def choose_thresholds(lines: list[dict]) -> dict:
    """Few-shot threshold per labelling (best mean of 1- and 5-shot), one per vocabulary; default coverage rule."""
    from groupseg.prompts.exemplars import DEFAULT_COVERAGE

    chosen = {}
    for label in ("shapes", "colours"):
        rows = [r for r in lines if r["kind"] == "fewshot" and r["labels"] == label
                and r["coverage"] == DEFAULT_COVERAGE]  # fmt: skip
        thresholds = {r["bg_thresh"] for r in rows}
        means = {t: statistics.mean(r["mIoU"] for r in rows if r["bg_thresh"] == t) for t in thresholds}
        chosen[f"fewshot_{label}"] = max(means, key=means.get)
    for vocab in {r["vocab"] for r in lines if r["kind"] == "vocabulary"}:
        rows = [r for r in lines if r["kind"] == "vocabulary" and r["vocab"] == vocab
                and r["coverage"] in ("-", DEFAULT_COVERAGE)]  # fmt: skip
        chosen[vocab] = max(rows, key=lambda r: r["mIoU"])["bg_thresh"]
    return chosen


def timing(checkpoint: str, val: Path, support: Path, images: int) -> dict:
    """Medians (s): one exemplar class's embedding vs one text class's; per image with a text vs exemplar vocabulary."""
    import torch

    import groupseg
    from groupseg.zeroshot import class_embeddings, parse_vocabulary

    torch.set_grad_enabled(False)
    model = groupseg.load_model(checkpoint).eval()
    exemplar_vocab = parse_vocabulary(support / "exemplars.txt")
    one_exemplar = parse_vocabulary(["background", exemplar_vocab.to_config()["classes"][1]])
    one_text = parse_vocabulary(["background", "circle"])

    def median_seconds(fn, repeats=15):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    result = dict(add_exemplar_class_s=median_seconds(lambda: class_embeddings(model, one_exemplar)),
                  add_text_class_s=median_seconds(lambda: class_embeddings(model, one_text)))  # fmt: skip
    targets = sorted((val / "JPEGImages").glob("*.jpg"))[:images]
    segmenters = {name: groupseg.ZeroShotSegmenter(model, vocab, bg_thresh=0.5, bg_score="cosine", short_side=None)
                  for name, vocab in (("text", val / "classes.txt"),
                                      ("exemplars", support / "exemplars.txt"))}  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in segmenters}
    for i, target in enumerate([*targets[:5], *targets]):  # the first 5: warm-up
        for name, segmenter in segmenters.items():  # interleaved: both see the same load
            start = time.perf_counter()
            segmenter(target)
            if i >= 5:
                times[name].append(time.perf_counter() - start)
    result.update({f"per_image_{name}_s": statistics.median(t) for name, t in times.items()})
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--data", default="data/synthetic")
    parser.add_argument("--untrained", help="the untrained baseline (default: made with tools/init_checkpoint.py)")
    parser.add_argument("--work", default="work_dirs/exemplar_report")
    parser.add_argument("--dev-images", type=int, default=300)
    parser.add_argument("--timing-images", type=int, default=100)
    args = parser.parse_args()
    py, data, work = sys.executable, Path(args.data).resolve(), Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    val = data / "val"
    support = data / "support"
    if not (support / "exemplars.txt").is_file():
        from groupseg.synthetic.support import write_support
        from groupseg.synthetic.world import WorldConfig

        world = json.loads((val / "world.json").read_text())
        seed, _ = world.pop("seed"), world.pop("split")
        support = work / "support"
        if not (support / "exemplars.txt").is_file():
            write_support(support, 200, WorldConfig(**world), seed=seed)
    untrained = args.untrained or str(work / "untrained")
    if not args.untrained and not Path(untrained).exists():
        run([py, "tools/init_checkpoint.py", str(TRAIN_CONFIG), untrained, "--cfg-options", "train.seed=0"])
    models = {"trained": args.checkpoint, "untrained": untrained}

    report: dict = {"support": str(support), "thresholds": {}, "fewshot": {}, "test": {}}
    for name, ckpt in models.items():
        out = run([py, "tools/research/sweep_exemplars.py", ckpt, "--data", str(data), "--support", str(support),
                   "--images", str(args.dev_images), "--work", str(work / "dev")], capture=True)  # fmt: skip
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        (work / f"sweep_{name}.jsonl").write_text(out)
        report["thresholds"][name] = choose_thresholds(lines)

    for label in ("shapes", "colours"):
        for name in ("trained", "untrained", "colour"):
            out = work / f"fewshot_{label}_{name}.json"
            method = ["--method", "colour"] if name == "colour" else [
                "--checkpoint", models[name], "--bg-thresh", str(report["thresholds"][name][f"fewshot_{label}"])]
            run([py, "tools/eval_fewshot.py", "synthetic", str(data), "--support", str(support), "--labels", label,
                 *method, "--json", str(out)])  # fmt: skip
            report["fewshot"][f"{label}/{name}"] = json.loads(out.read_text())

    from mmengine.config import Config

    config_thresh = Config.fromfile(TEST_CONFIG).model.test_cfg.bg_thresh  # the shapes config's threshold
    vocabularies = (("text, config threshold", "classes.txt", lambda name: config_thresh),
                    ("text", "classes.txt", lambda name: report["thresholds"][name]["classes.txt"]),
                    ("one exemplar per class", "exemplars.txt",
                     lambda name: report["thresholds"][name]["exemplars.txt"]),
                    ("text + exemplar", "text_exemplars.txt",
                     lambda name: report["thresholds"][name]["text_exemplars.txt"]),
                    ("five exemplars per class", "exemplars_5.txt",
                     lambda name: report["thresholds"][name]["exemplars_5.txt"]))  # fmt: skip
    for name in ("trained", "untrained"):
        for title, vocab, thresh in vocabularies:
            out = work / f"test_{name}_{re.sub(r'[^a-z0-9]+', '_', title)}.json"
            vocab_path = val / vocab if vocab == "classes.txt" else support / vocab
            run([py, "tools/test.py", str(TEST_CONFIG), models[name], "--vocab", str(vocab_path), "--bg-thresh",
                 str(thresh(name)), "--json", str(out), "--work-dir", str(work / "test"), "--cfg-options",
                 f"test_dataloader.dataset.data_root={val}"])  # fmt: skip
            report["test"][f"{name}/{title}"] = {**json.loads(out.read_text()), "bg_thresh": thresh(name)}

    report["timing"] = timing(args.checkpoint, val, support, args.timing_images)
    (work / "report.json").write_text(json.dumps(report, indent=2))

    print("\n| few-shot mean FG-IoU (held-out queries, support split) | shapes 1-shot | shapes 5-shot | "
          "colours 1-shot | "
          "colours 5-shot |\n|---|---|---|---|---|")  # fmt: skip
    rows = (("colour", "pixel-colour baseline"), ("untrained", "untrained model"), ("trained", "trained model"))
    for name, title in rows:
        cells = [report["fewshot"][f"{label}/{name}"][f"{k}-shot"]["mIoU"]
                 for label in ("shapes", "colours") for k in (1, 5)]  # fmt: skip
        print(f"| {title} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    titles = [title for title, _, _ in vocabularies]
    print(f"\n| held-out shapes mIoU (tools/test.py) | {' | '.join(titles)} |\n|---|{'---|' * len(titles)}")
    for name in ("untrained", "trained"):
        cells = [report["test"][f"{name}/{title}"] for title in titles]
        print(f"| {name} | " + " | ".join(f"{c['mIoU']:.1f} (bg {c['bg_thresh']})" for c in cells) + " |")
    t = report["timing"]
    print(f"\none class's embedding: exemplar {1000 * t['add_exemplar_class_s']:.1f} ms, "
          f"text {1000 * t['add_text_class_s']:.1f} ms;"
          f" per image: text vocabulary {1000 * t['per_image_text_s']:.1f} ms, exemplar vocabulary "
          f"{1000 * t['per_image_exemplars_s']:.1f} ms (medians)")  # fmt: skip
    print(f"thresholds chosen on dev: {json.dumps(report['thresholds'])}\nreport: {work / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
