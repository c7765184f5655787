"""groupseg loads Hugging Face and official NVlabs GroupViT weights and computes what transformers' port computes.

The reference: random tiny ``transformers.GroupViTModel``s (built offline from configs) with perturbed weights,
BatchNorm running statistics and logit scale. The official ``.pth`` files are synthesised from the same weights by
the inverse of the rename rules in transformers' ``convert_groupvit_nvlab_to_hf.py`` (ported below: transformers 5
no longer ships its conversion scripts), with the Conv1d kernel dims and a pickled training state around them.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import GroupViTConfig as HFConfig
from transformers import GroupViTModel

import groupseg
from groupseg.models import GroupViT, GroupViTConfig
from groupseg.models.checkpoint import CheckpointError
from helpers_tools import load_tool

REPO = Path(__file__).resolve().parents[1]
ATOL = 1e-5

# Three architectures unlike the default and unlike each other. ``nvlabs_overrides``: the heads a .pth cannot record
# (groupseg's default is width // 64).
CASES = {
    "depth211-patch8-img48": dict(
        vision=dict(hidden_size=64, depths=[2, 1, 1], num_group_tokens=[16, 4, 0], num_output_groups=[16, 4, 4],
                    num_attention_heads=4, image_size=48, patch_size=8),
        text=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=16,
                  vocab_size=1000),
        projection=(24, 48), nvlabs_overrides=dict(vision_heads=4, text_heads=2), multi_label=True, legacy_pth=False,
    ),
    "depth122-wide-clip-vocab": dict(
        vision=dict(hidden_size=128, depths=[1, 2, 2], num_group_tokens=[12, 3, 0], num_output_groups=[12, 3, 3],
                    num_attention_heads=2, image_size=32, patch_size=4),
        text=dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=1, max_position_embeddings=77,
                  vocab_size=49408),
        projection=(32, 64), nvlabs_overrides={}, multi_label=False, legacy_pth=True,
    ),
    "img224-patch16": dict(
        vision=dict(hidden_size=64, depths=[1, 1, 1], num_group_tokens=[8, 4, 0], num_output_groups=[8, 4, 4],
                    num_attention_heads=1, image_size=224, patch_size=16),
        text=dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=1, max_position_embeddings=16,
                  vocab_size=500),
        projection=(16, 32), nvlabs_overrides={}, multi_label=True, legacy_pth=False,
    ),
}  # fmt: skip


# -- the official checkpoint, synthesised --------------------------------------------------------------------------
def official_to_hf_name(name: str) -> str:
    """``rename_key`` of transformers' convert_groupvit_nvlab_to_hf.py (Apache-2.0), rule for rule."""
    if "img_encoder.pos_embed" in name:
        name = name.replace("img_encoder.pos_embed", "vision_model.embeddings.position_embeddings")
    if "img_encoder.patch_embed.proj" in name:
        name = name.replace("img_encoder.patch_embed.proj", "vision_model.embeddings.patch_embeddings.projection")
    if "img_encoder.patch_embed.norm" in name:
        name = name.replace("img_encoder.patch_embed.norm", "vision_model.embeddings.layernorm")
    if "img_encoder.layers" in name:
        name = name.replace("img_encoder.layers", "vision_model.encoder.stages")
    if "blocks" in name and "res" not in name:
        name = name.replace("blocks", "layers")
    if "attn" in name and "pre_assign" not in name:
        name = name.replace("attn", "self_attn")
    if "proj" in name and "self_attn" in name and "text" not in name:
        name = name.replace("proj", "out_proj")
    if "pre_assign_attn.attn.proj" in name:
        name = name.replace("pre_assign_attn.attn.proj", "pre_assign_attn.attn.out_proj")
    if "norm1" in name:
        name = name.replace("norm1", "layer_norm1")
    if "norm2" in name and "pre_assign" not in name:
        name = name.replace("norm2", "layer_norm2")
    if "img_encoder.norm" in name:
        name = name.replace("img_encoder.norm", "vision_model.layernorm")
    if "text_encoder.token_embedding" in name:
        name = name.replace("text_encoder.token_embedding", "text_model.embeddings.token_embedding")
    if "text_encoder.positional_embedding" in name:
        name = name.replace("text_encoder.positional_embedding", "text_model.embeddings.position_embedding.weight")
    if "text_encoder.transformer.resblocks." in name:
        name = name.replace("text_encoder.transformer.resblocks.", "text_model.encoder.layers.")
    for old, new in [("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("c_fc", "fc1"), ("c_proj", "fc2"),
                     ("text_encoder", "text_model"), ("ln_final", "final_layer_norm")]:  # fmt: skip
        name = name.replace(old, new)
    if "img_projector.linear_hidden." in name:
        name = name.replace("img_projector.linear_hidden.", "visual_projection.")
    if "img_projector.linear_out." in name:
        name = name.replace("img_projector.linear_out.", "visual_projection.3.")
    if "text_projector.linear_hidden" in name:
        name = name.replace("text_projector.linear_hidden", "text_projection")
    if "text_projector.linear_out" in name:
        name = name.replace("text_projector.linear_out", "text_projection.3")
    return name


def official_state(hf_state: dict[str, torch.Tensor], official_keys: list[str]) -> OrderedDict:
    """The NVlabs state dict holding ``hf_state``'s weights: q/k/v fused, projection heads as Conv1d(k=1)."""
    state = OrderedDict()
    for key in official_keys:
        if key == "multi_label_logit_scale":  # the official model's own; HF's port has none
            state[key] = torch.tensor(2.5)
        elif m := re.fullmatch(r"img_encoder\.layers\.(\d+)\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)", key):
            parts = [f"vision_model.encoder.stages.{m[1]}.layers.{m[2]}.self_attn.{p}_proj.{m[3]}" for p in "qkv"]
            state[key] = torch.cat([hf_state[p] for p in parts])
        elif m := re.fullmatch(r"text_encoder\.transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)", key):
            parts = [f"text_model.encoder.layers.{m[1]}.self_attn.{p}_proj.{m[2]}" for p in "qkv"]
            state[key] = torch.cat([hf_state[p] for p in parts])
        else:
            value = hf_state[official_to_hf_name(key)].clone()
            if re.fullmatch(r"(img|text)_projector\.linear_(hidden\.0|out)\.weight", key):
                value = value[..., None]  # Conv1d(kernel_size=1)
            state[key] = value
    return state


CALLS: list[tuple] = []


def record_call(*args):
    CALLS.append(args)
    return args


class SideEffect:
    """Unpickling this calls ``record_call``: a stand-in for a file that runs code when loaded."""

    def __reduce__(self):
        return record_call, ("code ran while unpickling",)


class TrainingConfig:
    """Stands in for the OmegaConf object official checkpoints pickle under ``config``."""

    def __init__(self):
        self.model = {"type": "MultiLabelContrastive"}
        self.train = {"epochs": 30, "amp_opt_level": "O1"}
        self.hook = SideEffect()


def write_official_pth(path: Path, model_state: OrderedDict, legacy: bool = False) -> Path:
    exp_avg = {i: {"exp_avg": torch.randn(3), "step": torch.tensor(10.0)} for i in range(2)}
    checkpoint = {
        "model": model_state,
        "optimizer": {"state": exp_avg, "param_groups": [{"lr": 1.6e-3, "weight_decay": 0.05, "params": [0, 1]}]},
        "lr_scheduler": {"last_epoch": 29, "base_lrs": [1.6e-3]},
        "metrics": {"max_accuracy": 42.0},
        "epoch": 29,
        "config": TrainingConfig(),
        "amp": {"loss_scaler0": {"loss_scale": 65536.0, "unskipped": 17}},
        "max_accuracy": 42.0,
    }
    torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
    return path


# -- the reference models ------------------------------------------------------------------------------------------
def hf_config(case: dict) -> HFConfig:
    vocab = case["text"]["vocab_size"]
    vision = dict(case["vision"], num_hidden_layers=sum(case["vision"]["depths"]))
    vision["intermediate_size"] = 4 * vision["hidden_size"]
    text = dict(case["text"], intermediate_size=4 * case["text"]["hidden_size"], eos_token_id=vocab - 1,
                bos_token_id=vocab - 2, pad_token_id=0)  # fmt: skip
    return HFConfig(text_config=text, vision_config=vision, projection_dim=case["projection"][0],
                    projection_intermediate_dim=case["projection"][1])  # fmt: skip


@torch.no_grad()
def random_hf_model(case: dict, seed: int) -> GroupViTModel:
    torch.manual_seed(seed)
    model = GroupViTModel(hf_config(case)).eval()
    for param in model.parameters():  # no LayerNorm left at (1, 0), no zero bias or group token
        param.add_(torch.randn_like(param) * 0.05)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(0.0, 0.3)
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(1234)
    model.logit_scale.fill_(3.7)
    return model


def text_tokens(case: dict) -> torch.Tensor:
    """Token ids ending in the end-of-text token (the largest id), zero padded; CLIP BPE for the CLIP vocabulary."""
    length, vocab = case["text"]["max_position_embeddings"], case["text"]["vocab_size"]
    if vocab == 49408:
        return groupseg.tokenize(["a photo of a cat.", "two dogs on a red sofa", "x"], context_length=length)
    tokens = torch.randint(1, vocab - 2, (3, length))
    tokens[:, 0] = vocab - 2
    for row, end in enumerate([4, length, length // 2]):
        tokens[row, end - 1], tokens[row, end:] = vocab - 1, 0
    return tokens


@pytest.fixture(scope="module", params=list(CASES))
def reference(request, tmp_path_factory):
    """(case, HF model, its save_pretrained directory, the same weights as an official .pth)."""
    case = CASES[request.param]
    hf = random_hf_model(case, seed=list(CASES).index(request.param))
    root = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(root / "hf")
    hf_state = hf.state_dict()
    keys = GroupViT(config_for(case)).state_dict()
    official_keys = [k for k in keys if case["multi_label"] or k != "multi_label_logit_scale"]
    state = official_state(hf_state, official_keys)
    pth = write_official_pth(root / "group_vit_ckpt.pth", state, legacy=case["legacy_pth"])
    return case, hf, root / "hf", pth


def config_for(case: dict) -> GroupViTConfig:
    v, t = case["vision"], case["text"]
    return GroupViTConfig(
        image_size=v["image_size"], patch_size=v["patch_size"], vision_width=v["hidden_size"],
        vision_depths=v["depths"], vision_heads=v["num_attention_heads"], num_group_tokens=v["num_group_tokens"],
        num_output_groups=v["num_output_groups"][:2], text_width=t["hidden_size"], text_layers=t["num_hidden_layers"],
        text_heads=t["num_attention_heads"], context_length=t["max_position_embeddings"], vocab_size=t["vocab_size"],
        embed_dim=case["projection"][0], proj_hidden_dim=case["projection"][1],
    )  # fmt: skip


# -- parity ---------------------------------------------------------------------------------------------------------
@torch.no_grad()
def assert_parity(hf: GroupViTModel, model: GroupViT, case: dict) -> None:
    assert not model.training
    size = case["vision"]["image_size"]
    images = torch.randn(2, 3, size, size)
    expected = F.normalize(hf.get_image_features(pixel_values=images).pooler_output, dim=-1)
    torch.testing.assert_close(model.encode_image(images), expected, rtol=0, atol=ATOL)

    # per-stage soft assignments: HF returns them as [B, groups, tokens], softmax over groups, like ours
    hf_stages = hf.vision_model(pixel_values=images, output_attentions=True).attentions
    ours = model.forward_image(images).vision.assignments
    assert len(hf_stages) == len(ours) == 2
    for hf_soft, assignment in zip(hf_stages, ours):
        assert hf_soft.shape == assignment.soft.shape
        torch.testing.assert_close(assignment.soft, hf_soft, rtol=0, atol=ATOL)
        assert torch.equal(assignment.hard.argmax(1), hf_soft.argmax(1))

    tokens = text_tokens(case)
    expected = F.normalize(hf.get_text_features(input_ids=tokens).pooler_output, dim=-1)
    torch.testing.assert_close(model.encode_text(tokens), expected, rtol=0, atol=ATOL)
    torch.testing.assert_close(model.logit_scale, hf.logit_scale)


def test_huggingface_directory_matches_transformers(reference):
    case, hf, hf_dir, _ = reference
    model = groupseg.load_model(hf_dir, device="cpu")
    assert model.config == config_for(case)
    assert_parity(hf, model, case)
    assert groupseg.load_model(hf_dir / "model.safetensors").config == model.config  # the file stands for its dir


def test_huggingface_pytorch_bin_sharded(reference, tmp_path):
    """Older Hub uploads: ``pytorch_model.bin`` shards with an index, and the position_ids buffer saved."""
    case, hf, hf_dir, _ = reference
    shutil.copy(hf_dir / "config.json", tmp_path / "config.json")
    state = {**hf.state_dict(), "text_model.embeddings.position_ids": torch.arange(16)[None]}
    keys = list(state)
    half = len(keys) // 2
    shards = {"pytorch_model-00001-of-00002.bin": keys[:half], "pytorch_model-00002-of-00002.bin": keys[half:]}
    for name, part in shards.items():
        torch.save({k: state[k] for k in part}, tmp_path / name)
    weight_map = {k: name for name, part in shards.items() for k in part}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert_parity(hf, groupseg.load_model(tmp_path), case)


def test_official_pth_matches_transformers_and_runs_no_pickled_code(reference):
    case, hf, _, pth = reference
    CALLS.clear()
    model = groupseg.load_model(pth, **case["nvlabs_overrides"])
    assert CALLS == []  # the pickled config's side effect never ran
    assert model.config == config_for(case)
    assert_parity(hf, model, case)
    expected_ml = 2.5 if case["multi_label"] else model.config.logit_scale_init  # filled when not in the file
    assert model.multi_label_logit_scale.item() == pytest.approx(expected_ml)


def test_groupseg_names_are_the_official_names(reference):
    """transformers' rename rules, applied to groupseg's parameter names, give exactly the HF model's names."""
    case, hf, _, _ = reference
    fused = re.compile(r".*\.attn\.(qkv\.|in_proj_)(weight|bias)")  # the script splits these; parity checks them
    ours = [k for k in GroupViT(config_for(case)).state_dict() if k != "multi_label_logit_scale"]
    renamed = {official_to_hf_name(k) for k in ours if not fused.fullmatch(k)}
    assert renamed == {k for k in hf.state_dict() if not re.search(r"self_attn\.[qkv]_proj", k)}


@torch.no_grad()
def test_any_input_size_matches_transformers_interpolation(reference):
    """Twice the training size (448 px for the 224 model) and a non-square input (224x320): HF's own pieces with
    bicubic position-embedding interpolation agree with groupseg, and the shapes follow the patch grid."""
    case, hf, hf_dir, _ = reference
    model = groupseg.load_model(hf_dir)
    size, patch = case["vision"]["image_size"], case["vision"]["patch_size"]
    groups, dim = case["vision"]["num_output_groups"], case["projection"][0]
    vision = hf.vision_model
    for height, width in [(2 * size, 2 * size), (size, size + 6 * patch)]:
        images = torch.randn(2, 3, height, width)
        embeddings = vision.embeddings(images, interpolate_pos_encoding=True)
        encoded = vision.encoder(embeddings, output_attentions=True)
        pooled = vision.layernorm(encoded.last_hidden_state).mean(dim=1)
        expected = F.normalize(hf.visual_projection(pooled), dim=-1)
        out = model.forward_image(images)
        grid = (height // patch, width // patch)
        assert out.vision.grid == grid
        assert [a.soft.shape for a in out.vision.assignments] == [(2, groups[0], grid[0] * grid[1]),
                                                                  (2, groups[1], groups[0])]  # fmt: skip
        assert out.group_embeds.shape == (2, groups[1], dim) and out.image_embeds.shape == (2, dim)
        torch.testing.assert_close(out.image_embeds, expected, rtol=0, atol=ATOL)
        for ours, theirs in zip(out.vision.assignments, encoded.attentions):
            torch.testing.assert_close(ours.soft, theirs, rtol=0, atol=ATOL)


# -- safe unpickling ------------------------------------------------------------------------------------------------
def test_plain_pickle_would_run_the_side_effect(tmp_path):
    """The control for the safe-loading test: the synthesised file really does run code under plain pickle."""
    path = write_official_pth(tmp_path / "x.pth", OrderedDict(w=torch.ones(2)))
    CALLS.clear()
    torch.load(path, weights_only=False)
    assert CALLS == [("code ran while unpickling",)]
    CALLS.clear()
    from groupseg.models import safe_pickle

    loaded = torch.load(path, pickle_module=safe_pickle, weights_only=False)
    assert CALLS == []
    assert torch.equal(loaded["model"]["w"], torch.ones(2)) and loaded["epoch"] == 29
    assert isinstance(loaded["config"], safe_pickle.Inert) and "TrainingConfig" in repr(loaded["config"])


# -- conversion tool --------------------------------------------------------------------------------------------------
def test_convert_tool_round_trip(tmp_path):
    case = CASES["depth211-patch8-img48"]
    hf = random_hf_model(case, seed=7)
    state = official_state(hf.state_dict(), list(GroupViT(config_for(case)).state_dict()))
    pth = write_official_pth(tmp_path / "official.pth", state)
    command = [sys.executable, "tools/convert_checkpoint.py", pth, tmp_path / "converted", "--vision-heads", "4",
               "--text-heads", "2", "--device", "cpu"]  # fmt: skip
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "detected format: nvlabs" in result.stdout
    assert f"parameters: {sum(p.numel() for p in GroupViT(config_for(case)).parameters()):,}" in result.stdout
    meta = json.loads((tmp_path / "converted" / "config.json").read_text())
    assert meta["format"] == "groupseg" and meta["converted_from"]["format"] == "nvlabs"
    converted = groupseg.load_model(tmp_path / "converted")
    assert converted.config == config_for(case)
    assert_parity(hf, converted, case)


def test_convert_tool_rejects_junk_with_a_message(tmp_path, capsys):
    tool = load_tool("convert_checkpoint")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint\n")
    assert tool.main([str(junk), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "junk.pth" in err and "not a checkpoint" in err and "b'this is not" in err
    assert not (tmp_path / "out").exists()
    assert tool.main([str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_convert_tool_head_counts_are_never_dropped_or_forced_on_a_checkpoint_that_records_them(tmp_path, capsys):
    tool = load_tool("convert_checkpoint")
    case = CASES["depth211-patch8-img48"]
    hf = random_hf_model(case, seed=7)
    pth = write_official_pth(tmp_path / "official.pth", official_state(hf.state_dict(),
                                                                       list(GroupViT(config_for(case)).state_dict())))
    assert tool.main([str(pth), str(tmp_path / "zero"), "--vision-heads", "0", "--text-heads", "2"]) == 2
    assert "vision_heads=0 does not divide" in capsys.readouterr().err and not (tmp_path / "zero").exists()
    assert tool.main([str(pth), str(tmp_path / "ours"), "--vision-heads", "4", "--text-heads", "2"]) == 0
    capsys.readouterr()
    assert tool.main([str(tmp_path / "ours"), str(tmp_path / "again"), "--vision-heads", "4"]) == 0  # as recorded
    capsys.readouterr()
    assert tool.main([str(tmp_path / "ours"), str(tmp_path / "other"), "--vision-heads", "1"]) == 2
    err = capsys.readouterr().err
    assert "(groupseg format) records {'vision_heads': 4}" in err and not (tmp_path / "other").exists()


# -- errors ---------------------------------------------------------------------------------------------------------
def test_wrong_and_partial_weights_name_keys_and_format(tmp_path):
    case = CASES["depth211-patch8-img48"]
    hf = random_hf_model(case, seed=3)
    hf.save_pretrained(tmp_path / "hf")
    weights = load_file(str(tmp_path / "hf" / "model.safetensors"))
    del weights["visual_projection.3.bias"], weights["text_model.final_layer_norm.weight"]
    weights["vision_model.extra_head.weight"] = torch.zeros(2)
    save_file(weights, str(tmp_path / "hf" / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        groupseg.load_model(tmp_path / "hf")
    message = str(err.value)
    assert "detected format: huggingface" in message and "2 missing keys" in message
    assert "img_projector.linear_out.bias" in message and "text_encoder.ln_final.weight" in message
    assert "unexpected keys: vision_model.extra_head.weight" in message

    state = official_state(hf.state_dict(), list(GroupViT(config_for(case)).state_dict()))
    state["img_encoder.norm.weight"] = torch.ones(63)
    pth = write_official_pth(tmp_path / "wrong.pth", state)
    with pytest.raises(CheckpointError, match=r"nvlabs.*img_encoder\.norm\.weight: checkpoint \(63,\) vs model \(64"):
        groupseg.load_model(pth, vision_heads=4, text_heads=2)

    torch.save({"model": {"backbone.conv.weight": torch.ones(1)}, "epoch": 1}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="no GroupViT weights"):
        groupseg.load_model(tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="does not divide"):
        groupseg.load_model(pth, vision_heads=5)


def test_unsupported_formats_and_configs_fail_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="without config.json"):
        groupseg.load_model(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="does not exist"):
        groupseg.load_model(tmp_path / "missing.pth")
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "config.json").write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(CheckpointError, match="model_type='clip'"):
        groupseg.load_model(tmp_path / "clip")

    config = hf_config(CASES["depth211-patch8-img48"]).to_dict()
    config["vision_config"].update(assign_mlp_ratio=[0.5, 2], hidden_act="relu")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"does not support: assign_mlp_ratio=\[0.5, 2\].*hidden_act='relu'"):
        groupseg.load_model(tmp_path / "hf")
