"""tools/train.py as a user runs it, on shards the test writes: learning, skip reports, kill + resume, NaN stop."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import groupseg
from helpers_shards import make_dataset

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "tools" / "train.py"


def write_config(tmp_path: Path, shards: str, **train) -> Path:
    cfg = tmp_path / "tiny.py"
    train_options = {**dict(epochs=6, seed=0, precision="fp32", log_interval=2, ckpt_interval=4, keep_last=2,
                            device="cpu"), **train}  # fmt: skip
    cfg.write_text(
        f"""
model = dict(preset="groupvit-tiny", context_length=24)
data = dict(train="{shards}", batch_size=8, image_size=32, num_prompts=2, augment="light", num_workers=0,
            samples_per_epoch=None)
loss = dict(multi_label_weight=1.0)
optimizer = dict(lr=3e-3, weight_decay=0.05, warmup_steps=3, warmup_lr=1e-4, min_lr=1e-4, clip_grad=5.0,
                 scale_lr=False)
train = {train_options!r}
"""
    )
    return cfg


def train_cmd(cfg: Path, work_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(TRAIN), str(cfg), "--work-dir", str(work_dir), *extra]


def run(cmd, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, **kw)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("shards")
    make_dataset(root, num_shards=2, per_shard=24, defects=True, image_size=(40, 36))
    return str(root / "{00000..00001}.tar")


def metrics(work_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (work_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_training_learns_reports_skips_and_writes_loadable_checkpoints(tmp_path, shards):
    cfg = write_config(tmp_path, shards)
    out = run(train_cmd(cfg, tmp_path / "run"))
    assert out.returncode == 0, out.stderr[-3000:]
    rows = metrics(tmp_path / "run")
    # 43 valid samples, batch 8 -> 5 steps/epoch x 6 epochs; logs every 2 steps and at the end
    assert rows[-1]["step"] == 30 and rows[-1]["epoch"] == 5
    assert rows[-1]["loss"] < 0.85 * rows[0]["loss"]
    assert rows[-1]["img_per_s"] > 0
    for reason in ("undecodable_image", "empty_caption", "non_text_caption", "missing_caption", "missing_image"):
        assert rows[-1][f"skipped/{reason}"] >= 1, reason  # counted every epoch the shard is read
    assert "skipped samples:" in out.stdout and "undecodable_image" in out.stdout
    assert (tmp_path / "run" / "tb").is_dir()
    ckpts = sorted((tmp_path / "run" / "checkpoints").glob("step_*"))
    assert [c.name for c in ckpts] == ["step_00000028", "step_00000030"]  # keep_last=2
    model = groupseg.load_model(ckpts[-1])
    assert model.encode_image(torch.randn(1, 3, 32, 32)).shape == (1, 16)


@pytest.mark.slow
def test_killed_or_terminated_and_resumed_run_equals_uninterrupted_run_bitwise(tmp_path, shards):
    """SIGKILL: the run resumes from its last checkpoint. SIGTERM (a scheduler's preemption notice) and SIGINT
    (Ctrl-C): the run saves a checkpoint at the end of the current step and exits 128 + the signal number. Either
    way the resumed run's weights equal the uninterrupted run's, bit for bit, and its log holds each step once."""
    cfg = write_config(tmp_path, shards, epochs=8)
    full = run(train_cmd(cfg, tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-3000:]
    reference = load_file(tmp_path / "full" / "checkpoints" / "step_00000040" / "model.safetensors")

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        work = tmp_path / sig.name
        proc = subprocess.Popen(train_cmd(cfg, work), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
        # SIGKILL once a checkpoint exists; the others between checkpoints (after step 2 is logged, before step 4)
        ready = (work / "checkpoints" / "latest") if sig == signal.SIGKILL else (work / "metrics.jsonl")
        deadline = time.time() + 300
        while not (ready.exists() and ready.stat().st_size) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(sig)
        stderr = proc.communicate()[1]
        if sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        else:
            assert proc.returncode == 128 + sig, stderr[-3000:]
            assert f"{sig.name} received: saved" in stderr and "Traceback" not in stderr
        latest = (work / "checkpoints" / "latest").read_text().strip()
        assert latest != "step_00000040"

        resumed = run(train_cmd(cfg, work, "--resume"))
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"resumed at step {int(latest.split('_')[1])}" in resumed.stderr
        weights = load_file(work / "checkpoints" / "step_00000040" / "model.safetensors")
        assert weights.keys() == reference.keys()
        for key in reference:
            assert torch.equal(weights[key], reference[key]), (sig.name, key)
        steps = [row["step"] for row in metrics(work)]
        assert steps == sorted(set(steps)) and steps[-1] == 40, (sig.name, steps)


@pytest.mark.slow
def test_a_sigterm_to_the_whole_process_group_saves_though_loader_workers_receive_it_too(tmp_path, shards):
    """A scheduler (and Ctrl-C) signals the process group: the loader's workers get SIGTERM too and must not die of
    it before the main process has finished its step and saved; they still exit when their own process ends."""
    cfg = write_config(tmp_path, shards, epochs=8)
    work = tmp_path / "group"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(train_cmd(cfg, work, "--cfg-options", "data.num_workers=2"), env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    deadline = time.time() + 300
    ready = work / "metrics.jsonl"  # step 2 logged: the workers have built batches
    while not (ready.exists() and ready.stat().st_size) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "SIGTERM received: saved" in stderr and "Traceback" not in stderr
    assert (work / "checkpoints" / "latest").read_text().strip() != "step_00000040"


@pytest.mark.slow
def test_non_finite_loss_stops_with_a_clear_message(tmp_path, shards):
    cfg = write_config(tmp_path, shards)
    out = run(train_cmd(cfg, tmp_path / "nan", "--cfg-options", "model.logit_scale_init=nan"))
    assert out.returncode == 3
    assert "non-finite loss" in out.stderr and "no checkpoint was written yet" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_config_path_is_a_clear_error(tmp_path):
    out = run([sys.executable, str(TRAIN), str(tmp_path / "nope.py")])
    assert out.returncode == 2 and "does not exist" in out.stderr


@pytest.mark.slow
def test_torchrun_two_ranks_trains_end_to_end(tmp_path, shards):
    cfg = write_config(tmp_path, shards, epochs=1)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(TRAIN), str(cfg),
           "--work-dir", str(tmp_path / "ddp")]  # fmt: skip
    out = run(cmd)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 rank(s)" in out.stderr
    rows = metrics(tmp_path / "ddp")
    assert rows[-1]["step"] == 2  # 43 samples // global batch 16
    groupseg.load_model(tmp_path / "ddp" / "checkpoints" / "step_00000002")


def test_bf16_autocast_step_tracks_fp32():
    from groupseg.engine.optim import build_optimizer
    from groupseg.engine.trainer import train_step
    from groupseg.losses import GroupViTLoss
    from groupseg.models import GroupViT, build_config

    g = torch.Generator().manual_seed(0)
    batch = {"images": torch.randn(8, 3, 32, 32, generator=g),
             "tokens": groupseg.tokenize([f"a photo of thing {i}" for i in range(8)], 16)[:, None]}  # fmt: skip
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        # BatchNorm in eval mode: at init the 8 pooled features are nearly equal, and batch statistics would
        # magnify bf16 rounding in their tiny differences (a property of the random init, not of training).
        model = GroupViT(build_config("groupvit-tiny", gumbel=False)).eval()
        opt = build_optimizer(model, lr=1e-3)
        losses[precision] = train_step(model, GroupViTLoss(0.0), opt, batch, torch.device("cpu"), precision)["loss"]
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * losses["fp32"]


@pytest.mark.slow
def test_time_budget_stops_early_with_a_checkpoint(tmp_path, shards):
    cfg = write_config(tmp_path, shards, epochs=1000, time_budget_minutes=0.001)
    out = run(train_cmd(cfg, tmp_path / "budget"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "THE TIME BUDGET (0.001 min) STOPPED TRAINING AT STEP 1 OF" in out.stderr
    summary = json.loads((tmp_path / "budget" / "train_summary.json").read_text())
    assert summary["stopped_by_time_budget"] and summary["steps"] == 1 and summary["steps"] < summary["planned_steps"]
    assert (tmp_path / "budget" / "checkpoints" / "latest").read_text().strip() == "step_00000001"
    assert metrics(tmp_path / "budget")[-1]["step"] == 1
