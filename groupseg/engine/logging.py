"""What a training run tells its user: a progress bar on the terminal, JSON lines and TensorBoard scalars on disk."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm


class TrainLogger:
    """Rank 0 only: ``metrics.jsonl`` + TensorBoard ``tb/`` in the work dir, and a tqdm bar with loss, img/s, ETA."""

    def __init__(self, work_dir: Path, total_steps: int, start_step: int, enabled: bool = True):
        self.enabled, self.work_dir = enabled, work_dir
        self.bar = None
        if not enabled:
            return
        work_dir.mkdir(parents=True, exist_ok=True)
        if start_step:
            _drop_rows_after(work_dir / "metrics.jsonl", start_step)
        self.jsonl = open(work_dir / "metrics.jsonl", "a")
        from torch.utils.tensorboard import SummaryWriter

        # a resumed run hides the steps the interrupted one logged past its checkpoint (they are run again)
        self.tb = SummaryWriter(str(work_dir / "tb"), purge_step=start_step + 1 if start_step else None)
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True,
                        file=sys.stderr, mininterval=1.0)  # fmt: skip

    def step(self, n: int = 1, **postfix: float) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.jsonl.write(json.dumps({"step": step, "time": round(time.time(), 3), **metrics}) + "\n")
        self.jsonl.flush()
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                self.tb.add_scalar(key, value, step)

    def message(self, text: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(text, file=sys.stderr)

    def summary(self, info: dict) -> None:
        """The run in one line, also as ``train_summary.json``; a loud banner when the time budget cut the schedule
        (its model is then not the recipe's, and its scores are not comparable)."""
        if not self.enabled:
            return
        (self.work_dir / "train_summary.json").write_text(json.dumps(info, indent=1) + "\n")
        where = f" on {info['threads']} thread(s) of {info['cpu']}" if "cpu" in info else f" on {info['device']}"
        print(f"trained to step {info['steps']} of {info['planned_steps']}: {info['steps_this_run']} steps in "
              f"{info['minutes']:.1f} min, {info['steps_per_s']:.2f} steps/s, {info['img_per_s']:.0f} img/s{where}",
              file=sys.stderr)  # fmt: skip
        if info["stopped_by_time_budget"]:
            rule = "!" * 100
            print(f"{rule}\n!! THE TIME BUDGET ({info['time_budget_minutes']} min) STOPPED TRAINING AT STEP "
                  f"{info['steps']} OF {info['planned_steps']}.\n!! The schedule was cut: this model is not the "
                  f"recipe's. Resume with --resume, or set train.time_budget_minutes=0.\n{rule}",
                  file=sys.stderr, flush=True)  # fmt: skip

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.jsonl.close()
            self.tb.close()


def _drop_rows_after(path: Path, step: int) -> None:
    """Keep rows of steps up to ``step`` (a resumed run logs the later ones again); the file is replaced atomically."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if _row_step(line) <= step]
    if len(kept) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)


def _row_step(line: str) -> float:
    try:
        return json.loads(line).get("step", 0)
    except (ValueError, AttributeError):
        return float("inf")  # a torn last line from a killed run
