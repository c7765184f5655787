"""Every weights format groupseg reads, turned into one thing: a ``GroupViTConfig`` and a groupseg state dict.

- ``groupseg``: a directory with ``config.json`` (``"format": "groupseg"``) and ``model.safetensors``, or that file.
- ``nvlabs``: an official NVlabs/GroupViT training checkpoint (``.pth``: a pickled dict with ``model``,
  ``optimizer``, ``config``, ...). Only the weights are read, through :mod:`safe_pickle`: no pickled code runs. The
  official parameter names are groupseg's own, except that the projection heads were ``Conv1d(k=1)`` (a trailing
  kernel dim of 1). The file carries no usable architecture description, so it is read off the weight shapes; the
  head counts cannot be, and follow the official head dim of 64 unless overridden.
- ``huggingface``: a transformers ``GroupViTModel`` directory (``config.json`` with ``model_type: groupvit`` and
  ``model.safetensors`` or ``pytorch_model.bin``, sharded or not). Names follow the rename rules of transformers'
  ``convert_groupvit_nvlab_to_hf.py``, inverted; its split q/k/v projections are fused back.
"""
from __future__ import annotations

import json
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import safe_pickle
from .checkpoint import (
    CONFIG_NAME,
    FORMAT_TAG,
    WEIGHTS_NAME,
    CheckpointError,
    load_state_strict,
    read_groupseg_checkpoint,
)
from .groupvit import GroupViT, GroupViTConfig

FORMATS = ("groupseg", "nvlabs", "huggingface")
OFFICIAL_HEAD_DIM = 64  # GroupViT-S: 384 wide / 6 heads; the text tower hard-codes heads = width // 64


@dataclass
class Checkpoint:
    config: GroupViTConfig
    state: dict[str, torch.Tensor]
    format: str  # one of FORMATS
    path: Path  # the file or directory actually read

    def build_model(self) -> GroupViT:
        """The model with these weights (strict: CheckpointError naming the format and any key that does not fit)."""
        model = GroupViT(self.config)
        load_state_strict(model, self.state, f"{self.path} (detected format: {self.format})")
        return model


# -- detection ---------------------------------------------------------------------------------------------------
def detect_format(path: str | Path) -> tuple[str, Path]:
    """``(format, path to read)`` for a checkpoint file or directory; else CheckpointError naming what was found."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_file() and path.suffix in (".safetensors", ".json", ".bin") and (path.parent / CONFIG_NAME).is_file():
        path = path.parent  # a file inside a groupseg or Hugging Face directory stands for the directory
    if path.is_dir():
        config_file = path / CONFIG_NAME
        if not config_file.is_file():
            found = sorted(p.name for p in path.iterdir())[:10]
            raise CheckpointError(f"{path} is a directory without {CONFIG_NAME} (found: {found or 'nothing'}); "
                                  "expected a groupseg or Hugging Face GroupViT checkpoint directory")  # fmt: skip
        meta = _read_json(config_file)
        if meta.get("format") == FORMAT_TAG:
            return "groupseg", path
        if meta.get("model_type") == "groupvit" or "GroupViTModel" in (meta.get("architectures") or []):
            return "huggingface", path
        raise CheckpointError(
            f"{config_file} is neither a groupseg config (format={FORMAT_TAG!r}) nor a Hugging Face GroupViT config "
            f"(found format={meta.get('format')!r}, model_type={meta.get('model_type')!r})"
        )
    if path.suffix == ".safetensors":
        raise CheckpointError(f"{path} has no {CONFIG_NAME} beside it: groupseg cannot tell what model it holds")
    if _is_torch_pickle(path):
        return "nvlabs", path
    head = path.read_bytes()[:16]
    raise CheckpointError(
        f"{path} is not a checkpoint groupseg can read: a {path.stat().st_size}-byte file starting {head!r}, "
        f"neither a torch .pth nor a groupseg/Hugging Face directory (formats: {', '.join(FORMATS)})"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} holds a JSON {type(meta).__name__}, not an object")
    return meta


def _is_torch_pickle(path: Path) -> bool:
    """A torch.save file: a zip archive with a ``data.pkl`` record, or a legacy pickle (protocol opcode first)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"


# -- reading -----------------------------------------------------------------------------------------------------
def read_checkpoint(path: str | Path, **config_overrides: Any) -> Checkpoint:
    """Detect the format of ``path`` and read it into a groupseg config + state dict (not yet loaded into a model).

    ``config_overrides`` replace ``GroupViTConfig`` fields: needed for official files whose head counts differ from
    width // 64, which the weights cannot tell.
    """
    fmt, where = detect_format(path)
    if fmt == "groupseg":
        config, state = read_groupseg_checkpoint(where)
        values = config.to_dict()
    elif fmt == "nvlabs":
        state = nvlabs_to_groupseg(read_nvlabs_weights(where))
        values = infer_config_values(state, where)
    else:
        values, state = read_huggingface(where)
    try:
        config = GroupViTConfig.from_dict({**values, **config_overrides})
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{where} ({fmt} format) with overrides {config_overrides} gives no valid model config: {err} "
            "(weights do not record head counts: pass them, e.g. load_model(path, vision_heads=N))"
        ) from err
    if fmt != "groupseg":
        _fill_unsaved(state, config)
    return Checkpoint(config=config, state=state, format=fmt, path=where)


def _fill_unsaved(state: dict[str, torch.Tensor], config: GroupViTConfig) -> None:
    """Parameters a format may legitimately lack, set to their initial values.

    ``multi_label_logit_scale`` exists only in official models trained with the multi-label loss (not the
    GCC+RedCaps one) and never in Hugging Face's port; it only matters for further training.
    """
    state.setdefault("multi_label_logit_scale", torch.tensor(config.logit_scale_init))
    for key in [k for k in state if k.endswith(".running_var")]:
        state.setdefault(key.replace(".running_var", ".num_batches_tracked"), torch.tensor(0))


def read_nvlabs_weights(path: Path) -> dict[str, torch.Tensor]:
    """The ``model`` weights of an official ``.pth``, without running any of the file's pickled code."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith("constants.pkl") for name in archive.namelist()):
                raise CheckpointError(f"{path} is a TorchScript archive, not a GroupViT checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", pickle_module=safe_pickle, weights_only=False)
    except Exception as err:  # a truncated or foreign file: say so instead of a pickle traceback
        raise CheckpointError(f"{path} could not be read as a torch checkpoint: {type(err).__name__}: {err}") from err
    state = obj.get("model", obj.get("state_dict", obj)) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not any(re.match(r"(module\.)?img_encoder\.", str(k)) for k in state):
        found = sorted(map(str, obj))[:12] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} holds no GroupViT weights (no 'model' with img_encoder.* keys); found {found}")
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    return state


def nvlabs_to_groupseg(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official names are groupseg's; only the projection heads' Conv1d(k=1) weights lose their kernel dim."""
    conv = re.compile(r"(img|text)_projector\.linear_(hidden\.\d+|out)\.weight")
    return {k: v.squeeze(-1) if conv.fullmatch(k) and v.ndim == 3 else v for k, v in state.items()}


def infer_config_values(state: dict[str, torch.Tensor], source: Path) -> dict[str, Any]:
    """``GroupViTConfig`` values for an official checkpoint, read off its weight shapes (heads: width // 64)."""

    def shape(key: str) -> torch.Size:
        if key not in state:
            raise CheckpointError(f"{source} (nvlabs format) lacks {key}: cannot infer the architecture")
        return state[key].shape

    def indices(pattern: str) -> list[int]:
        return sorted({int(m.group(1)) for k in state if (m := re.match(pattern, k))})

    width = shape("img_encoder.pos_embed")[-1]
    patch = shape("img_encoder.patch_embed.proj.weight")[-1]
    side = math.isqrt(shape("img_encoder.pos_embed")[1])
    stages = indices(r"img_encoder\.layers\.(\d+)\.")
    depths = [len(indices(rf"img_encoder\.layers\.{i}\.blocks\.(\d+)\.")) for i in stages]
    tokens = {i: f"img_encoder.layers.{i}.group_token" for i in stages}
    mixers = {i: f"img_encoder.layers.{i}.downsample.mlp_inter.fc2.weight" for i in stages}  # Gin -> Gout
    group_tokens = [state[tokens[i]].shape[1] if tokens[i] in state else 0 for i in stages]
    output_groups = [state[mixers[i]].shape[0] for i in stages if mixers[i] in state]
    text_vocab, text_width = shape("text_encoder.token_embedding.weight")
    return dict(
        image_size=side * patch,
        patch_size=patch,
        vision_width=width,
        vision_depths=depths,
        vision_heads=max(1, width // OFFICIAL_HEAD_DIM),
        num_group_tokens=group_tokens,
        num_output_groups=output_groups,
        mlp_ratio=shape("img_encoder.layers.0.blocks.0.mlp.fc1.weight")[0] / width,
        text_width=text_width,
        text_layers=len(indices(r"text_encoder\.transformer\.resblocks\.(\d+)\.")),
        text_heads=max(1, text_width // OFFICIAL_HEAD_DIM),
        context_length=shape("text_encoder.positional_embedding")[0],
        vocab_size=text_vocab,
        embed_dim=shape("img_projector.linear_out.weight")[0],
        proj_hidden_dim=shape("img_projector.linear_hidden.0.weight")[0],
    )


# -- Hugging Face ------------------------------------------------------------------------------------------------
# (HF name pattern, groupseg name); first match wins, the rest of the key is kept. A group named ``qkv`` marks the
# split q/k/v projections, which are stacked back (q, k, v order) into one fused weight.
_HF_RULES = [(re.compile(p), r) for p, r in [
    (r"vision_model\.embeddings\.patch_embeddings\.projection\.", "img_encoder.patch_embed.proj."),
    (r"vision_model\.embeddings\.layernorm\.", "img_encoder.patch_embed.norm."),
    (r"vision_model\.embeddings\.position_embeddings$", "img_encoder.pos_embed"),
    (r"vision_model\.layernorm\.", "img_encoder.norm."),
    (r"vision_model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.self_attn\.(?P<qkv>[qkv])_proj\.",
     r"img_encoder.layers.\1.blocks.\2.attn.qkv."),
    (r"vision_model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.self_attn\.out_proj\.",
     r"img_encoder.layers.\1.blocks.\2.attn.proj."),
    (r"vision_model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.layer_norm([12])\.",
     r"img_encoder.layers.\1.blocks.\2.norm\3."),
    (r"vision_model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.mlp\.", r"img_encoder.layers.\1.blocks.\2.mlp."),
    (r"vision_model\.encoder\.stages\.(\d+)\.downsample\.pre_assign_attn\.attn\.out_proj\.",
     r"img_encoder.layers.\1.downsample.pre_assign_attn.attn.proj."),
    (r"vision_model\.encoder\.stages\.", "img_encoder.layers."),  # group_token, downsample.*, group_projector.*
    (r"text_model\.embeddings\.token_embedding\.", "text_encoder.token_embedding."),
    (r"text_model\.embeddings\.position_embedding\.weight$", "text_encoder.positional_embedding"),
    (r"text_model\.encoder\.layers\.(\d+)\.self_attn\.(?P<qkv>[qkv])_proj\.(weight|bias)$",
     r"text_encoder.transformer.resblocks.\1.attn.in_proj_\3"),
    (r"text_model\.encoder\.layers\.(\d+)\.self_attn\.out_proj\.",
     r"text_encoder.transformer.resblocks.\1.attn.out_proj."),
    (r"text_model\.encoder\.layers\.(\d+)\.layer_norm([12])\.", r"text_encoder.transformer.resblocks.\1.ln_\2."),
    (r"text_model\.encoder\.layers\.(\d+)\.mlp\.fc1\.", r"text_encoder.transformer.resblocks.\1.mlp.c_fc."),
    (r"text_model\.encoder\.layers\.(\d+)\.mlp\.fc2\.", r"text_encoder.transformer.resblocks.\1.mlp.c_proj."),
    (r"text_model\.final_layer_norm\.", "text_encoder.ln_final."),
    (r"visual_projection\.([01])\.", r"img_projector.linear_hidden.\1."),
    (r"visual_projection\.3\.", "img_projector.linear_out."),
    (r"text_projection\.([01])\.", r"text_projector.linear_hidden.\1."),
    (r"text_projection\.3\.", "text_projector.linear_out."),
    (r"logit_scale$", "logit_scale"),
]]  # fmt: skip
_HF_IGNORED = {"text_model.embeddings.position_ids"}  # a buffer older transformers saved


def huggingface_to_groupseg(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a ``GroupViTModel`` state dict to groupseg's names; unknown keys are kept as they are (and reported)."""
    out: dict[str, torch.Tensor] = {}
    split: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key in _HF_IGNORED:
            continue
        for pattern, repl in _HF_RULES:
            if m := pattern.match(key):
                new = m.expand(repl) + key[m.end() :]
                if m.groupdict().get("qkv"):
                    split.setdefault(new, {})[m["qkv"]] = value
                else:
                    out[new] = value
                break
        else:
            out[key] = value
    for new, parts in split.items():
        if set(parts) == set("qkv"):
            out[new] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def config_values_from_huggingface(hf: Any, source: Path) -> dict[str, Any]:
    """``GroupViTConfig`` values from a transformers ``GroupViTConfig``; CheckpointError for what groupseg lacks."""
    v, t = hf.vision_config, hf.text_config
    image_size, patch_size = _square(v.image_size), _square(v.patch_size)
    assign_ratio = v.assign_mlp_ratio
    assign_ratio = tuple(assign_ratio) if isinstance(assign_ratio, (list, tuple)) else (assign_ratio, assign_ratio)
    problems = []
    if assign_ratio != (0.5, 4):
        problems.append(f"assign_mlp_ratio={list(assign_ratio)} (groupseg: [0.5, 4])")
    if v.hidden_act != "gelu":
        problems.append(f"vision hidden_act={v.hidden_act!r} (groupseg: 'gelu')")
    if t.hidden_act != "quick_gelu":
        problems.append(f"text hidden_act={t.hidden_act!r} (groupseg: 'quick_gelu')")
    if (v.layer_norm_eps, t.layer_norm_eps) != (1e-5, 1e-5):
        problems.append(f"layer_norm_eps={v.layer_norm_eps}/{t.layer_norm_eps} (groupseg: 1e-05)")
    if v.num_channels != 3:
        problems.append(f"num_channels={v.num_channels} (groupseg: 3)")
    if None in (image_size, patch_size):
        problems.append(f"non-square image_size={v.image_size} / patch_size={v.patch_size}")
    if v.intermediate_size != 4 * v.hidden_size:
        # HF sizes the grouping blocks' cross-attention MLP by it too; the official code fixes that one at 4 x
        problems.append(f"vision intermediate_size={v.intermediate_size} (groupseg: 4 x hidden_size)")
    if t.intermediate_size != 4 * t.hidden_size:
        problems.append(f"text intermediate_size={t.intermediate_size} (groupseg: 4 x hidden_size)")
    if t.eos_token_id not in (2, t.vocab_size - 1):
        # groupseg pools text at the largest token id (CLIP's end-of-text); HF pools at the first eos_token_id
        problems.append(f"eos_token_id={t.eos_token_id} is not the largest token id {t.vocab_size - 1}")
    if problems:
        raise CheckpointError(
            f"{source} (huggingface format) uses features groupseg does not support: " + "; ".join(problems)
        )
    group_tokens = list(v.num_group_tokens)
    with_groups = max((i + 1 for i, n in enumerate(group_tokens) if n > 0), default=0)
    return dict(
        image_size=image_size,
        patch_size=patch_size,
        vision_width=v.hidden_size,
        vision_depths=list(v.depths),
        vision_heads=v.num_attention_heads,
        num_group_tokens=group_tokens,
        num_output_groups=list(v.num_output_groups)[:with_groups],  # HF lists one for the last stage too
        mlp_ratio=v.intermediate_size / v.hidden_size,
        assign_eps=float(v.assign_eps),
        text_width=t.hidden_size,
        text_layers=t.num_hidden_layers,
        text_heads=t.num_attention_heads,
        context_length=t.max_position_embeddings,
        vocab_size=t.vocab_size,
        embed_dim=hf.projection_dim,
        proj_hidden_dim=hf.projection_intermediate_dim,
    )


def _square(size: Any) -> int | None:
    if isinstance(size, (list, tuple)):
        return int(size[0]) if len(size) == 2 and size[0] == size[1] else None
    return int(size)


def read_huggingface(directory: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from transformers import GroupViTConfig as HFGroupViTConfig  # only this format needs transformers

    try:
        hf_config = HFGroupViTConfig.from_dict(_read_json(directory / CONFIG_NAME))
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointError(f"{directory / CONFIG_NAME} is not a valid GroupViT config: {err}") from err
    values = config_values_from_huggingface(hf_config, directory)
    return values, huggingface_to_groupseg(_read_hf_weights(directory))


def _read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    """``model.safetensors`` or ``pytorch_model.bin``, either possibly sharded (``*.index.json``)."""
    from safetensors.torch import load_file

    for name, reader in [
        (WEIGHTS_NAME, lambda p: load_file(str(p))),
        ("pytorch_model.bin", lambda p: torch.load(p, map_location="cpu", weights_only=True)),
    ]:
        index = directory / f"{name}.index.json"
        files = sorted(set(_read_json(index).get("weight_map", {}).values())) if index.is_file() else [name]
        if all((directory / f).is_file() for f in files):
            state: dict[str, torch.Tensor] = {}
            for f in files:
                try:
                    state.update(reader(directory / f))
                except Exception as err:
                    raise CheckpointError(f"{directory / f} could not be read: {type(err).__name__}: {err}") from err
            return state
    found = sorted(p.name for p in directory.iterdir())
    raise CheckpointError(f"{directory} has a GroupViT config.json but no {WEIGHTS_NAME} or pytorch_model.bin "
                          f"(found: {found})")  # fmt: skip
