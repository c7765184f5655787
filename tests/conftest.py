import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def tiny_model():
    """A random tiny GroupViT (seed 0), in eval mode."""
    import groupseg

    torch.manual_seed(0)
    return groupseg.GroupViT(groupseg.build_config("groupvit-tiny")).eval()


@pytest.fixture(scope="module")
def sharp_tiny_model():
    """A random tiny GroupViT with sharpened assignments, so that several groups (and labels) share each image;
    without it one group covers the whole image and zero-shot comparisons would be trivial."""
    import groupseg

    torch.manual_seed(0)
    model = groupseg.GroupViT(groupseg.build_config("groupvit-tiny")).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("assign.q_proj.weight", "assign.k_proj.weight")):
                param.mul_(10)
    return model
