"""The shims in groupseg/compat.py, exercised through the real libraries they patch."""
import subprocess
import sys

import numpy as np
import pytest
import torch

import groupseg  # noqa: F401  (applies the shims)
from groupseg import compat


def test_mmseg_imports_and_point_sample_is_mmcvs_pure_pytorch_op():
    import mmcv.ops
    import mmseg.datasets  # noqa: F401
    import mmseg.models  # noqa: F401
    from mmcv.ops import point_sample

    feats = torch.arange(16.0).view(1, 1, 4, 4)
    points = torch.tensor([[[0.125, 0.125], [0.875, 0.875]]])  # pixel centres (0, 0) and (3, 3)
    torch.testing.assert_close(point_sample(feats, points, align_corners=False), torch.tensor([[[0.0, 15.0]]]))
    assert compat.install_mmcv_ops_standin() == getattr(mmcv.ops, "__groupseg_standin__", False)


@pytest.mark.skipif(compat._has_compiled_mmcv(), reason="full mmcv installed: nothing is stood in")
def test_compiled_ops_fail_clearly():
    with pytest.raises(ModuleNotFoundError, match="compiled op"):
        from mmcv.ops import PSAMask  # noqa: F401
    from mmcv.ops import sigmoid_focal_loss

    with pytest.raises(compat.MissingCompiledOp, match="mmcv-lite"):
        sigmoid_focal_loss(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))


def test_mmengine_checkpoints_round_trip_under_torch_weights_only_default(tmp_path):
    from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(3, 2)
    path = str(tmp_path / "epoch_1.pth")
    # mmengine's meta holds numpy objects, which torch>=2.6's weights_only loading refuses
    save_checkpoint({"state_dict": model.state_dict(), "meta": {"seed": np.int64(3), "hist": np.ones(2)}}, path)
    other = torch.nn.Linear(3, 2)
    ckpt = load_checkpoint(other, path, map_location="cpu")
    assert ckpt["meta"]["seed"] == 3
    torch.testing.assert_close(other.weight, model.weight)


def test_torchvision_matches_torch():
    compat.check_torchvision()
    import torchvision

    assert torchvision.__version__.split("+")[0] == "0.29.1"


def test_import_groupseg_imports_neither_torch_nor_mmcv():
    """`import groupseg` (and so a tool's --help) stays quick: torch, mmcv and mmengine load when first used."""
    code = "import sys, groupseg; print(sorted(m for m in ('torch', 'mmcv', 'mmengine', 'mmseg') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
