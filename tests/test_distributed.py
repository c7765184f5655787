import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("dist_step_worker.py")


def run(cmd, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.slow
def test_two_rank_gloo_step_equals_one_process_on_the_global_batch(tmp_path):
    run([sys.executable, str(WORKER), str(tmp_path / "one.pt")], tmp_path)
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
         str(tmp_path / "two.pt")], tmp_path)  # fmt: skip
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert abs(one["loss"] - two["loss"]) < 1e-5
    assert one["grads"].keys() == two["grads"].keys() and len(one["grads"]) > 50
    for name, grad in one["grads"].items():
        torch.testing.assert_close(two["grads"][name], grad, atol=1e-8, rtol=1e-6, msg=name)
    for name, value in one["state"].items():  # AdamW-updated weights and BatchNorm running statistics
        # AdamW's first step is ~lr·sign(grad): gradients that are zero up to rounding move by up to ~1e-7 here
        torch.testing.assert_close(two["state"][name], value, atol=1e-6, rtol=1e-6, msg=name)
