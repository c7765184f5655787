"""precision='auto': bf16 only where the hardware runs it natively; an explicit choice wins, with a warning when
slow."""
import warnings

import pytest
import torch

import groupseg
from groupseg.models.precision import _bf16_matmul_is_faster, native_bf16, resolve_precision
from groupseg.zeroshot import GroupViTSegmentor


def test_auto_is_bf16_exactly_where_the_cpu_has_native_bf16():
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16("cpu") else "fp32")
    assert isinstance(_bf16_matmul_is_faster(), bool)  # the fallback where /proc/cpuinfo does not exist


def test_explicit_choice_wins_and_slow_bf16_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_precision("fp32", "cpu") == "fp32"
        assert resolve_precision("bf16", "cpu", what="train.precision") == "bf16"
    slow = [w for w in caught if "without native bf16" in str(w.message)]
    assert len(slow) == (0 if native_bf16("cpu") else 1)
    if slow:
        assert "train.precision" in str(slow[0].message)
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("bf32", "cpu")


def test_segmentor_default_precision_is_the_resolved_one():
    model = groupseg.GroupViT(groupseg.build_config("groupvit-tiny")).eval()
    seg = GroupViTSegmentor(model=model, vocabulary=["cat", "dog"], test_cfg=dict(mode="whole"))
    assert seg.test_cfg.precision == resolve_precision("auto", "cpu")
    if seg.test_cfg.precision == "fp32":
        assert seg.model is model  # fp32 works on the caller's model, no copy
    assert next(model.parameters()).dtype == torch.float32
