#!/usr/bin/env python
"""Training step rates side by side: several arms (a checkout and config options each), run in turns.

    python tools/research/step_rate.py --data data/synthetic [--steps 60] [--repeats 3]
        --arm "now=." --arm "before=/path/to/older/checkout" --arm "2 threads=.:train.threads=2" ...

Each arm is ``LABEL=CHECKOUT[:k=v k=v ...]``: tools/train.py of that checkout (its own groupseg first on the path)
trains the synthetic recipe for ``--steps`` steps with those overrides. The arms run one after another, ``--repeats``
rounds, so that a machine whose load changes (other jobs) treats them alike; compare the ratios, not the rates. The
rate of a run is the median of its logged windows (``metrics.jsonl``, every 10 steps) after the first window, which
holds the loader's start-up. Prints a table and writes ``WORK_DIR/step_rate.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = "configs/synthetic/groupvit_synthetic.py"


def parse_arm(text: str) -> tuple[str, Path, list[str]]:
    label, eq, rest = text.partition("=")
    if not eq or not label:
        raise argparse.ArgumentTypeError(f"--arm {text!r}: expected LABEL=CHECKOUT[:k=v ...]")
    checkout, _, options = rest.partition(":")
    path = (REPO / checkout).resolve() if not Path(checkout).is_absolute() else Path(checkout)
    if not (path / "tools" / "train.py").is_file():
        raise argparse.ArgumentTypeError(f"--arm {label}: {path} has no tools/train.py")
    return label, path, options.split()


def run_arm(checkout: Path, options: list[str], data: Path, steps: int, work: Path) -> float:
    shards = sorted((data / "train").glob("*.tar"))
    cmd = [sys.executable, str(checkout / "tools" / "train.py"), str(checkout / CONFIG), "--work-dir", str(work),
           "--cfg-options", f"data.train={data}/train/{{00000..{len(shards) - 1:05d}}}.tar", f"train.max_steps={steps}",
           "train.time_budget_minutes=0", "train.log_interval=10", f"train.ckpt_interval={10 * steps}",
           *options]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    result = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"step_rate: {' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    rates = [json.loads(line)["img_per_s"] for line in (work / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(rates[1:] or rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", type=parse_arm, action="append", required=True, help="LABEL=CHECKOUT[:k=v ...]")
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=Path("work_dirs/step_rate"))
    args = parser.parse_args()
    data = args.data.resolve()
    if not sorted((data / "train").glob("*.tar")):
        print(f"error: no training shards in {data / 'train'} (tools/make_synthetic.py writes them)", file=sys.stderr)
        return 2
    rates: dict[str, list[float]] = {label: [] for label, _, _ in args.arm}
    for round_ in range(args.repeats):
        for label, checkout, options in args.arm:
            with tempfile.TemporaryDirectory() as tmp:
                rates[label].append(run_arm(checkout, options, data, args.steps, Path(tmp)))
            print(f"round {round_ + 1}: {label}: {rates[label][-1]:.1f} img/s", flush=True)
    first = args.arm[0][0]
    print(f"\n{'arm':24}{'img/s (median)':>16}{'runs':>26}{'vs ' + first:>12}")
    for label, values in rates.items():
        ratios = [v / f for v, f in zip(values, rates[first])]  # same round: the same machine load
        print(f"{label:24}{statistics.median(values):>16.1f}{' '.join(f'{v:.0f}' for v in values):>26}"
              f"{statistics.median(ratios):>11.2f}x")  # fmt: skip
    from groupseg.engine.machine import describe_cpu

    args.work_dir.mkdir(parents=True, exist_ok=True)
    result = {"machine": describe_cpu(), "steps": args.steps, "arms": {a[0]: {"checkout": str(a[1]), "options": a[2],
              "img_per_s": rates[a[0]]} for a in args.arm}}  # fmt: skip
    (args.work_dir / "step_rate.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nmachine: {result['machine']}; written: {args.work_dir / 'step_rate.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
