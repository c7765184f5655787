"""The training config: five typed sections (model, data, loss, optimizer, train), checked when it is loaded.

A config file is an mmengine python config (``_base_`` inheritance, ``--cfg-options`` overrides); :func:`load_config`
turns it into a :class:`TrainingConfig`. Every option and its default lives here, once; a misspelt key
(``train.max_step``, ``optimizer.lrr``, ``trian.max_steps``) is an error naming the nearest valid key, and a value of
the wrong type or range is an error naming the key, before anything is built.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from typing import Any, Literal, Mapping, Union

from ..models.groupvit import GroupViTConfig, build_config
from ..models.precision import Precision
from ..schema import ConfigError, check_keys, check_value, from_dict, option, to_dict

Shards = Union[str, list]  # 'dir/{00000..00011}.tar', a list of patterns, or a list of dict(shards=..., weight=...)


@dataclass
class DataConfig:
    train: Shards  # img2dataset webdataset shards: a brace pattern, a list of them, or weighted sources (dicts)
    batch_size: int = option(ge=1)  # per rank; the global batch is batch_size x ranks
    image_size: int = option(ge=1)  # training crops are image_size x image_size
    samples_per_epoch: Union[int, None] = option(None, ge=1)  # None: counted from the shards (_stats.json or a scan)
    num_prompts: int = option(3, ge=0)  # noun prompts per caption for the multi-label loss
    # prompts wrap nouns ("circle"), adjective-noun phrases ("red circle"; True) or both ("both": each phrase, then
    # its noun alone)
    noun_phrases: Union[bool, Literal["both"]] = False
    augment: Union[str, dict] = "reference"  # a preset name, or dict(base=preset, **overrides) (data/pairs.py)
    num_workers: int = option(2, ge=0)  # DataLoader worker processes per rank
    # noun extraction: "spacy" = en_core_web_sm where installed, else the rule (warned); "rule" = the rule everywhere
    nouns: Literal["spacy", "rule"] = "spacy"


@dataclass
class LossConfig:
    multi_label_weight: float = option(1.0, ge=0)  # 0 turns the multi-label (noun prompt) loss off
    multi_label_on: Literal["image", "groups"] = "image"  # what prompts are scored against (losses.py)


@dataclass
class OptimizerConfig:
    lr: float = option(gt=0)  # peak learning rate, for a global batch of 4096 when scale_lr
    weight_decay: float = option(0.05, ge=0)
    warmup_epochs: float = option(0.0, ge=0)  # linear warm-up, in epochs ...
    warmup_steps: int = option(0, ge=0)  # ... plus steps
    warmup_lr: float = option(4e-6, ge=0)  # learning rate at step 0 (scaled like lr)
    min_lr: float = option(4e-5, ge=0)  # end of the cosine (scaled like lr)
    clip_grad: Union[float, None] = option(5.0, ge=0)  # gradient-norm clip; None or 0: no clipping
    scale_lr: bool = True  # scale lr, warmup_lr and min_lr by global batch / 4096 (the reference's rule)


@dataclass
class LoopConfig:
    epochs: Union[int, None] = option(None, ge=1)  # length in epochs ...
    max_steps: Union[int, None] = option(None, ge=1)  # ... or in steps (wins when both are set)
    seed: int = option(0, ge=0)
    precision: Precision = "auto"  # 'auto': bf16 where the hardware runs it natively, else fp32; fp16: GPUs only
    device: Literal["auto", "cpu", "cuda"] = "auto"  # 'auto': a GPU if there is one
    deterministic: bool = False  # torch.use_deterministic_algorithms
    compile: bool = False  # torch.compile the model
    log_interval: int = option(10, ge=1)  # steps between metrics.jsonl / TensorBoard rows
    ckpt_interval: int = option(1000, ge=1)  # steps between checkpoints (and one at the end)
    keep_last: int = option(3, ge=1)  # checkpoints kept in WORK_DIR/checkpoints
    threads: Union[int, None] = option(None, ge=1)  # torch threads of a CPU rank; None: its cores less its workers
    time_budget_minutes: Union[float, None] = option(None, ge=0)  # stop, with a checkpoint, after this; 0: no limit


SECTIONS = {"data": DataConfig, "loss": LossConfig, "optimizer": OptimizerConfig, "train": LoopConfig}
MODEL_KEYS = ["preset", *(f.name for f in fields(GroupViTConfig))]
TOP_LEVEL_KEYS = ["model", *SECTIONS, "work_dir"]


@dataclass
class TrainingConfig:
    model: dict  # GroupViTConfig fields, optionally on top of a preset ('groupvit-s', 'groupvit-tiny')
    data: DataConfig
    loss: LossConfig
    optimizer: OptimizerConfig
    train: LoopConfig
    work_dir: Union[str, None] = None  # default: work_dirs/<config name> (tools/train.py)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def check_model_section(values: Mapping[str, Any]) -> dict[str, Any]:
    """The model section as build_config takes it: known keys of the right types, and a model that can be built."""
    values = dict(values)
    check_keys(values, MODEL_KEYS, "model")
    hints = {**typing.get_type_hints(GroupViTConfig), "preset": Union[str, None]}
    checked = {key: check_value(value, hints[key], f"model.{key}") for key, value in values.items()}
    try:
        build_config(**checked)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config section model: {err}") from err
    return checked


def training_config(values: Mapping[str, Any]) -> TrainingConfig:
    """A checked :class:`TrainingConfig` from a config's top-level dict (keys starting with '_' are the file's own)."""
    values = {k: v for k, v in dict(values).items() if not str(k).startswith("_")}
    check_keys(values, TOP_LEVEL_KEYS, "")
    sections = {name: from_dict(cls, values.get(name), name) for name, cls in SECTIONS.items()}
    config = TrainingConfig(model=check_model_section(values.get("model") or {}), **sections,
                            work_dir=check_value(values.get("work_dir"), Union[str, None], "work_dir"))  # fmt: skip
    if config.train.epochs is None and config.train.max_steps is None:
        raise ConfigError("config needs train.epochs or train.max_steps (how long to train)")
    return config


def load_config(path: str, options: Mapping[str, Any] | None = None) -> TrainingConfig:
    """Read an mmengine python config, apply ``--cfg-options`` style overrides, check it (ConfigError if wrong)."""
    from mmengine.config import Config

    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(dict(options))
    return training_config(cfg.to_dict())


def as_training_config(cfg: Any) -> TrainingConfig:
    """Accept a TrainingConfig, an mmengine Config or a plain dict."""
    if isinstance(cfg, TrainingConfig):
        return cfg
    return training_config(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)


__all__ = ["ConfigError", "DataConfig", "LoopConfig", "LossConfig", "OptimizerConfig", "TrainingConfig",
           "as_training_config", "load_config", "training_config"]  # fmt: skip
