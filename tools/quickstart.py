#!/usr/bin/env python
"""groupseg's main job on the embedded default, the synthetic world: generate → train → segment zero-shot → report.

    python tools/quickstart.py [--work-dir work_dirs/quickstart] [--data data/synthetic] [--minutes M] [--seed S]

Every step is one of the public tools (make_synthetic.py, train.py, test.py), run as a user would run it; this
script only chains them and prints the summary: the trained model's mIoU next to two baselines measured in the same
run (all background, and the same model untrained), and the same model under a second vocabulary (colours).
Re-running reuses the generated world and the finished training run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from groupseg.synthetic.world import EVAL_VOCABULARIES, all_background_baselines

REPO = Path(__file__).resolve().parents[1]
TRAIN_CONFIG = "configs/synthetic/groupvit_synthetic.py"
TEST_CONFIG = "configs/synthetic/zeroshot_synthetic.py"


def run(step: str, cmd: list[str]) -> None:
    print(f"\n== {step}\n$ {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd, cwd=REPO)
    if result.returncode != 0:
        sys.exit(f"quickstart: step '{step}' failed (exit code {result.returncode})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="work_dirs/quickstart")
    parser.add_argument("--data", default="data/synthetic")
    parser.add_argument("--minutes", type=float, help="training time budget (default: the config's)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    args = parser.parse_args()
    py = sys.executable
    work, data = Path(args.work_dir), Path(args.data)
    start = time.perf_counter()

    if not (data / "val" / "classes.txt").is_file():
        run("1/5 generate the synthetic world", [py, "tools/make_synthetic.py", str(data)])
    else:
        print(f"== 1/5 reusing the synthetic world in {data}")

    shards = sorted((data / "train").glob("*.tar"))
    if not shards:
        sys.exit(f"quickstart: no training shards in {data / 'train'}; delete {data} to generate the world again")
    train_opts = [f"train.seed={args.seed}", f"data.train={data}/train/{{00000..{len(shards) - 1:05d}}}.tar"]
    if args.minutes:
        train_opts.append(f"train.time_budget_minutes={args.minutes}")
    # a finished or interrupted run continues from its latest checkpoint; one that never wrote a checkpoint restarts
    resume = ["--resume"] if (work / "checkpoints" / "latest").is_file() else ["--overwrite"]
    run("2/5 train on image-caption pairs only", [py, "tools/train.py", TRAIN_CONFIG, "--work-dir", str(work), *resume,
                                                  "--cfg-options", *train_opts])  # fmt: skip
    trained = work / "checkpoints" / (work / "checkpoints" / "latest").read_text().strip()
    untrained = work / "untrained"
    run("3/5 the same model, untrained (baseline)", [py, "tools/init_checkpoint.py", TRAIN_CONFIG, str(untrained),
                                                     "--overwrite", "--cfg-options",
                                                     f"train.seed={args.seed}"])  # fmt: skip

    val = data / "val"
    results = {}
    for name, ckpt, vocab, outputs in (
        ("untrained", untrained, "shapes", []),
        ("untrained_colours", untrained, "colours", []),
        ("trained", trained, "shapes", ["--out", str(work / "pred"), "--show-dir", str(work / "overlays")]),
        ("colours", trained, "colours", ["--show-dir", str(work / "overlays_colours")]),
    ):
        vocab_file, masks = EVAL_VOCABULARIES[vocab]
        out = work / f"metrics_{name}.json"
        step = ("5/5 a second vocabulary, never evaluated before: colours instead of shapes" if name == "colours"
                else f"4/5 zero-shot segmentation of the held-out set: {name.replace('_', ', ')} model")  # fmt: skip
        run(step, [py, "tools/test.py", TEST_CONFIG, str(ckpt), "--vocab", str(val / vocab_file), "--json", str(out),
                   "--work-dir", str(work / f"test_{name}"), *outputs, "--cfg-options",
                   f"test_dataloader.dataset.data_root={val}", f"test_dataloader.dataset.data_prefix.seg_map_path={masks}"])  # fmt: skip
        results[name] = json.loads(out.read_text())

    all_background = all_background_baselines(val)
    minutes = (time.perf_counter() - start) / 60
    print("\n== summary: zero-shot mIoU on the held-out synthetic set (mmseg IoUMetric, incl. background)")
    print(f"{'':34}{'shapes':>10}{'colours':>10}")
    print(f"{'all background (baseline)':34}{all_background['shapes']:>10.1f}{all_background['colours']:>10.1f}")
    print(f"{'untrained model (baseline)':34}{results['untrained']['mIoU']:>10.1f}"
          f"{results['untrained_colours']['mIoU']:>10.1f}")
    print(f"{'trained on captions only':34}{results['trained']['mIoU']:>10.1f}{results['colours']['mIoU']:>10.1f}")
    print(f"\noverlays: {work / 'overlays'} and {work / 'overlays_colours'};  label PNGs: {work / 'pred'}")
    print(f"total time {minutes:.1f} min")
    summary = {"all_background": all_background, **results, "minutes": minutes}
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
