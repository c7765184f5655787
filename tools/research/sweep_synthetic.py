#!/usr/bin/env python
"""The synthetic world's learning curve: zero-shot mIoU against minutes of training, for one or more seeds.

    python tools/research/sweep_synthetic.py [--data data/synthetic] [--work-dir work_dirs/sweep] [--every 100]
        [--seeds 0 1 2] [--minutes 10] [--cfg-options k=v ...]

For each seed: train with tools/train.py (checkpoint every ``--every`` steps, all kept), then evaluate every
checkpoint with tools/test.py on the held-out set (shapes vocabulary, and the colours vocabulary on its own masks),
plus the two baselines (all background; the same model untrained). A checkpoint's minutes are the wall time from
launching tools/train.py to the checkpoint being written. Prints a table and writes ``WORK_DIR/sweep.json``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

from groupseg.synthetic.world import EVAL_VOCABULARIES as VOCABS, all_background_baselines

REPO = Path(__file__).resolve().parents[2]
TRAIN_CONFIG = "configs/synthetic/groupvit_synthetic.py"


def _load_test_tool():
    spec = importlib.util.spec_from_file_location("groupseg_test_tool", REPO / "tools" / "test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluate(test_tool, ckpt: Path, val: Path, vocab: str, work_dir: Path) -> float:
    """mIoU of ``ckpt`` on the held-out set under one vocabulary, through tools/test.py (in this process)."""
    vocab_file, masks, config = VOCABS[vocab]
    out = work_dir / f"{ckpt.name}_{vocab}.json"
    argv = [config, str(ckpt), "--vocab", str(val / vocab_file), "--json", str(out),
            "--work-dir", str(work_dir / "test"), "--cfg-options", f"test_dataloader.dataset.data_root={val}",
            f"test_dataloader.dataset.data_prefix.seg_map_path={masks}"]  # fmt: skip
    with redirect_stdout(StringIO()):
        code = test_tool.main(argv)
    if code != 0:
        raise SystemExit(f"sweep: tools/test.py failed on {ckpt} ({vocab}), exit code {code}")
    return json.loads(out.read_text())["mIoU"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/synthetic")
    parser.add_argument("--work-dir", default="work_dirs/sweep_synthetic")
    parser.add_argument("--config", default=TRAIN_CONFIG)
    parser.add_argument("--every", type=int, default=100, help="checkpoint (and evaluate) every N steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--minutes", type=float, help="training time budget per seed (default: the config's; 0: none)")
    parser.add_argument("--cfg-options", nargs="+", default=[], help="extra training overrides, k=v")
    args = parser.parse_args()
    os.chdir(REPO)
    py, data, work = sys.executable, Path(args.data), Path(args.work_dir)
    val = data / "val"
    if not (val / "classes.txt").is_file():
        subprocess.run([py, "tools/make_synthetic.py", str(data)], check=True)
    shards = sorted((data / "train").glob("*.tar"))

    test_tool = _load_test_tool()
    results = {
        "baselines": {"all_background": all_background_baselines(val)},
        "runs": {},
    }
    for seed in args.seeds:
        run_dir = work / f"seed{seed}"
        opts = [f"train.seed={seed}", f"train.ckpt_interval={args.every}", "train.keep_last=100000",
                f"data.train={data}/train/{{00000..{len(shards) - 1:05d}}}.tar", *args.cfg_options]  # fmt: skip
        if args.minutes is not None:
            opts.append(f"train.time_budget_minutes={args.minutes}")
        untrained = run_dir / "untrained"
        subprocess.run([py, "tools/init_checkpoint.py", args.config, str(untrained), "--overwrite", "--cfg-options",
                        f"train.seed={seed}", *args.cfg_options], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        start = time.time()
        resume = ["--resume"] if (run_dir / "checkpoints" / "latest").is_file() else []  # e.g. cut by a time budget
        subprocess.run([py, "tools/train.py", args.config, "--work-dir", str(run_dir), *resume, "--cfg-options",
                        *opts], check=True)  # fmt: skip
        curve = []
        for ckpt in sorted((run_dir / "checkpoints").glob("step_*")):
            minutes = (ckpt.stat().st_mtime - start) / 60
            point = {"step": int(ckpt.name.split("_")[1]), "minutes": round(minutes, 2)}
            point.update({v: round(evaluate(test_tool, ckpt, val, v, run_dir), 2) for v in VOCABS})
            curve.append(point)
            print(json.dumps(point), flush=True)
        results["runs"][seed] = {
            "untrained": {v: round(evaluate(test_tool, untrained, val, v, run_dir), 2) for v in VOCABS},
            "curve": curve,
        }
    (work / "sweep.json").write_text(json.dumps(results, indent=1))

    print("\nzero-shot mIoU on the held-out synthetic set (mmseg IoUMetric, with background)")
    bg = results["baselines"]["all_background"]
    print(f"all background: shapes {bg['shapes']:.1f}  colours {bg['colours']:.1f}")
    for seed, run in results["runs"].items():
        u = run["untrained"]
        print(f"\nseed {seed}: untrained shapes {u['shapes']:.1f}  colours {u['colours']:.1f}")
        print(f"{'minutes':>8} {'step':>6} {'shapes':>7} {'colours':>8}")
        for p in run["curve"]:
            print(f"{p['minutes']:>8.2f} {p['step']:>6} {p['shapes']:>7.1f} {p['colours']:>8.1f}")
    print(f"\nwritten: {work / 'sweep.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
