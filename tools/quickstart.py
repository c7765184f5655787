#!/usr/bin/env python
"""groupseg's main job on the embedded default, the synthetic world: generate → train → segment zero-shot → report.

    python tools/quickstart.py [--work-dir work_dirs/quickstart] [--data data/synthetic] [--seed S] [--minutes M]

Every step is one of the public tools (make_synthetic.py, train.py, init_checkpoint.py, test.py), run as a user
would run them; this script chains them, shows one line and a progress bar per step, keeps each tool's own output
in ``WORK_DIR/logs/``, and ends with a summary: the trained model's mIoU under two vocabularies next to two baselines
measured in the same run (all background; the same model untrained), the machine, the training rate and the minutes.
It also writes ``WORK_DIR/side_by_side.png`` (held-out images, their ground truth and the predictions).

Training runs the config's fixed schedule (steps). ``--minutes`` only sets the time-budget guard; if the guard stops
training early, the summary says so. Re-running reuses the generated world and the finished (or resumes the
unfinished) training run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
from PIL import Image

from groupseg.synthetic.world import COLOURS, EVAL_VOCABULARIES, all_background_baselines

REPO = Path(__file__).resolve().parents[1]
TRAIN_CONFIG = "configs/synthetic/groupvit_synthetic.py"
SHOWN_IMAGES = 6  # rows of side_by_side.png


def step(title: str) -> None:
    print(f"\n[{title}]", flush=True)


def run_tool(cmd: list[str], log: Path, show_stderr: bool = True) -> None:
    """A tool as a subprocess: its stdout to ``log``, its stderr (progress bar, messages) to the terminal."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        result = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=None if show_stderr else subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"quickstart: {Path(cmd[1]).name} failed (exit code {result.returncode}); its output: {log}")


def load_test_tool():
    spec = importlib.util.spec_from_file_location("groupseg_test_tool", REPO / "tools" / "test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluate(test_tool, ckpt: Path, val: Path, vocab: str, work: Path, name: str, out_dir: Path | None) -> float:
    """tools/test.py in this process (no second start-up of torch and mmseg), its printed output kept in a log."""
    vocab_file, masks, config = EVAL_VOCABULARIES[vocab]
    metrics = work / f"metrics_{name}.json"
    argv = [config, str(ckpt), "--vocab", str(val / vocab_file), "--json", str(metrics), "--work-dir",
            str(work / f"test_{name}"), *(["--out", str(out_dir)] if out_dir else []), "--cfg-options",
            f"test_dataloader.dataset.data_root={val}",
            f"test_dataloader.dataset.data_prefix.seg_map_path={masks}"]  # fmt: skip
    log = work / "logs" / f"test_{name}.log"
    with open(log, "w") as out, redirect_stdout(out):
        print("$ python tools/test.py " + " ".join(argv), flush=True)
        code = test_tool.main(argv)
    if code != 0:
        sys.exit(f"quickstart: tools/test.py failed on the {name} model (exit code {code}); its output: {log}")
    return json.loads(metrics.read_text())["mIoU"]


def write_side_by_side(val: Path, work: Path, path: Path) -> None:
    """The first held-out images, their ground truth and the trained model's labels, under both vocabularies."""
    from groupseg.zeroshot import make_palette, parse_vocabulary
    from groupseg.zeroshot.visualize import side_by_side

    names = (val / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[:SHOWN_IMAGES]
    images = [np.asarray(Image.open(val / "JPEGImages" / f"{n}.jpg").convert("RGB")) for n in names]
    columns, legends = [], {}
    for vocab, pred_dir in (("shapes", work / "pred"), ("colours", work / "pred_colours")):
        vocab_file, masks, _ = EVAL_VOCABULARIES[vocab]
        classes = parse_vocabulary(val / vocab_file).names
        palette = make_palette(len(classes))
        for i, label in enumerate(classes):  # colour names drawn in their own colour: readable at a glance
            palette[i] = COLOURS.get(label.split()[0], palette[i])
        legends[vocab] = (classes, palette)
        columns.append((f"{vocab}: truth", [np.asarray(Image.open(val / masks / f"{n}.png")) for n in names], vocab))
        columns.append((f"{vocab}: predicted", [np.asarray(Image.open(pred_dir / f"{n}.png")) for n in names], vocab))
    Image.fromarray(side_by_side(images, columns, legends, scale=4)).save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="work_dirs/quickstart")
    parser.add_argument("--data", default="data/synthetic")
    parser.add_argument("--minutes", type=float, help="time-budget guard on training (default: the config's)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    args = parser.parse_args()
    from groupseg.engine.machine import describe_cpu  # groupseg.engine loads torch

    py = sys.executable
    work, data = Path(args.work_dir), Path(args.data)
    val = data / "val"
    work.mkdir(parents=True, exist_ok=True)
    minutes: dict[str, float] = {}
    start = time.perf_counter()
    print(f"groupseg quickstart on {describe_cpu()}: generate → train → segment zero-shot; tools' output in "
          f"{work / 'logs'}")  # fmt: skip

    step("1/4 the synthetic world")
    if (val / "classes.txt").is_file():
        print(f"reusing {data}")
    else:
        t = time.perf_counter()
        run_tool([py, "tools/make_synthetic.py", str(data)], work / "logs" / "make_synthetic.log")
        minutes["world"] = (time.perf_counter() - t) / 60
        print(f"generated {data} in {minutes['world']:.1f} min")
    shards = sorted((data / "train").glob("*.tar"))
    if not shards:
        sys.exit(f"quickstart: no training shards in {data / 'train'}; delete {data} to generate the world again")

    step("2/4 train on image-caption pairs only (tools/train.py)")
    summary_file = work / "train_summary.json"
    previous = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    if previous and previous["steps"] >= previous["planned_steps"]:
        print(f"reusing the finished run in {work}")
    else:
        opts = [f"train.seed={args.seed}", f"data.train={data}/train/{{00000..{len(shards) - 1:05d}}}.tar"]
        if args.minutes is not None:
            opts.append(f"train.time_budget_minutes={args.minutes}")
        # a finished or interrupted run continues from its latest checkpoint; one that never wrote one restarts
        resume = ["--resume"] if (work / "checkpoints" / "latest").is_file() else ["--overwrite"]
        t = time.perf_counter()
        run_tool([py, "tools/train.py", TRAIN_CONFIG, "--work-dir", str(work), *resume, "--cfg-options", *opts],
                 work / "logs" / "train.log")  # fmt: skip
        minutes["training"] = (time.perf_counter() - t) / 60  # tools/train.py from start-up to exit
    trained_summary = json.loads(summary_file.read_text())
    trained = work / "checkpoints" / (work / "checkpoints" / "latest").read_text().strip()
    untrained = work / "untrained"
    run_tool([py, "tools/init_checkpoint.py", TRAIN_CONFIG, str(untrained), "--overwrite", "--cfg-options",
              f"train.seed={args.seed}"], work / "logs" / "init_checkpoint.log")  # fmt: skip

    step("3/4 segment the held-out set zero-shot (tools/test.py): shapes and colours vocabularies")
    t = time.perf_counter()
    test_tool = load_test_tool()
    scores = {}
    for model, ckpt in (("untrained", untrained), ("trained", trained)):
        for vocab in EVAL_VOCABULARIES:
            out_dir = (work / ("pred" if vocab == "shapes" else f"pred_{vocab}")) if model == "trained" else None
            scores[model, vocab] = evaluate(test_tool, ckpt, val, vocab, work, f"{model}_{vocab}", out_dir)
    minutes["evaluation"] = (time.perf_counter() - t) / 60

    step("4/4 report")
    figure = work / "side_by_side.png"
    write_side_by_side(val, work, figure)
    background = all_background_baselines(val)
    minutes["total"] = (time.perf_counter() - start) / 60
    report(background, scores, trained_summary, minutes, work, figure)
    summary = {
        "all_background": background, "untrained": {v: scores["untrained", v] for v in EVAL_VOCABULARIES},
        "trained": {v: scores["trained", v] for v in EVAL_VOCABULARIES}, "training": trained_summary,
        "minutes": {k: round(v, 2) for k, v in minutes.items()}, "machine": describe_cpu(),
    }  # fmt: skip
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def report(background, scores, training, minutes, work: Path, figure: Path) -> None:
    images = json.loads((work / "metrics_trained_shapes.json").read_text())["images"]
    cut = training["stopped_by_time_budget"]
    trained_row = "trained on captions only" + (" (CUT SHORT)" if cut else "")
    print(f"\nzero-shot mIoU on {images} held-out images (mmseg IoUMetric, incl. background)")
    print(f"{'':34}{'shapes':>9}{'colours':>9}")
    print(f"{'all background (baseline)':34}{background['shapes']:>9.1f}{background['colours']:>9.1f}")
    print(f"{'the same model untrained (baseline)':34}{scores['untrained', 'shapes']:>9.1f}"
          f"{scores['untrained', 'colours']:>9.1f}")  # fmt: skip
    print(f"{trained_row:34}{scores['trained', 'shapes']:>9.1f}{scores['trained', 'colours']:>9.1f}")
    print(f"\nmachine:  {training.get('cpu', training['device'])}, {training.get('cores', '?')} cores, "
          f"{'native bf16' if training.get('native_bf16') else 'no native bf16'}; training used "
          f"{training['threads']} torch thread(s) + {training.get('loader_workers', '?')} "
          f"loader worker(s)")  # fmt: skip
    if training["steps_this_run"]:
        print(f"training: {training['steps']} of {training['planned_steps']} steps, {training['steps_this_run']} in "
              f"this run: {training['minutes']:.1f} min of training loop at {training['steps_per_s']:.2f} steps/s "
              f"({training['img_per_s']:.0f} img/s)")  # fmt: skip
    parts = ", ".join(f"{k} {v:.1f}" for k, v in minutes.items() if k != "total")
    print(f"minutes:  {minutes['total']:.1f} in all ({parts}; training includes tools/train.py's start-up)")
    print(f"picture:  {figure}   label PNGs: {work / 'pred'}, {work / 'pred_colours'}   logs: {work / 'logs'}")
    if cut:
        rule = "!" * 100
        print(f"\n{rule}\n!! TRAINING WAS CUT SHORT by the {training['time_budget_minutes']}-minute time budget "
              f"at step {training['steps']} of {training['planned_steps']}: the scores above are NOT the recipe's.\n"
              f"!! Run the command again to resume, or pass --minutes 0 to train without the guard.\n"
              f"{rule}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
