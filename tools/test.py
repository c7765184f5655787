"""Zero-shot evaluation, mmseg style: parse args, merge the config, build an mmengine Runner, run the test loop.

    python tools/test.py configs/zeroshot/groupvit_voc.py CHECKPOINT [--vocab V] [--bg-thresh T] [--out DIR]
        [--show-dir DIR] [--work-dir DIR] [--json FILE] [--protocol groupvit|tcl|sclip] [--cfg-options key=value ...]

Prints a progress bar, mmseg's per-class IoU table and the mIoU; everything else mmengine logs (environment, config,
hooks, iteration lines) goes only to its log file in the work dir (``--verbose``: to the terminal too). CHECKPOINT is
anything ``groupseg.load_model`` reads (a training run's ``checkpoints/latest`` or work dir included). Before the run
starts, the checkpoint is read, the config's ``test_cfg`` checked, and every sample checked (label PNG present, of its
image's size, label ids the vocabulary covers): bad input exits with code 2 and one line on stderr, not mid-run.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import logging
import os.path as osp
import pickle
import re
import sys
import time
from typing import TYPE_CHECKING

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import groupseg  # noqa: E402,F401  (first: applies the compat shims before mmseg is imported)
from groupseg.cli import DictAction, output_dir, output_file  # noqa: E402
from groupseg.compat import refused_globals  # noqa: E402
from groupseg.schema import ConfigError  # noqa: E402

if TYPE_CHECKING:  # imported where used, after the arguments are parsed: --help answers without loading them
    from mmengine.config import Config
    from mmengine.runner import Runner

TRUSTED_PICKLE_OPT_IN = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1"  # torch's own switch, for files you trust
# groupseg.zeroshot.protocols.PROTOCOL_NAMES, named here because that module loads mmseg (tests/test_tools_help.py
# checks that they agree)
PROTOCOL_NAMES = ("groupvit", "tcl", "sclip")


class OutputError(ValueError):
    """An output path (--out, --show-dir, --json) that cannot be written."""


def unit_interval(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Zero-shot GroupViT segmentation: evaluate a checkpoint")
    parser.add_argument("config", help="test config, e.g. configs/zeroshot/groupvit_voc.py")
    parser.add_argument("checkpoint", help="GroupViT weights (anything groupseg.load_model reads)")
    parser.add_argument("--vocab", help="class names: 'background,cat,dog', 'bg; person: man, woman', or a file")
    parser.add_argument("--bg-thresh", type=unit_interval,
                        help="background threshold in [0, 1] (default: the config's)")  # fmt: skip
    parser.add_argument("--out", help="write predicted label PNGs here (one per image, named like the image)")
    parser.add_argument("--show-dir", help="write overlay PNGs (image, tinted labels, legend) here")
    parser.add_argument("--work-dir", help="logs and the merged config go here (default work_dirs/<config name>)")
    parser.add_argument("--json", help="also write the metrics (mIoU, aAcc, mAcc, images/s) to this JSON file")
    parser.add_argument("--protocol", choices=PROTOCOL_NAMES,
                        help="resize, slide window and prompts of another codebase (see docs/benchmarks.md); "
                        "default: the config's (GroupViT's)")  # fmt: skip
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config keys: key=value ...")
    parser.add_argument("--verbose", action="store_true",
                        help="also show mmengine's log (config, hooks) on the terminal")
    return parser.parse_args(argv)


_RUNS = itertools.count()  # evaluations started in this process


def build_config(args: argparse.Namespace) -> Config:
    from groupseg.models.checkpoint import CheckpointError
    from groupseg.models.load import load_model, resolve_checkpoint
    from groupseg.zeroshot import (
        DEFAULT_TEMPLATES, VocabularyError, check_dataset_files, check_fits_dataset, check_samples, check_test_cfg,
        dataset_classes, parse_vocabulary,
    )  # fmt: skip
    from groupseg.zeroshot.protocols import apply_protocol
    from mmengine.config import Config

    if not osp.isfile(args.config):
        raise FileNotFoundError(f"config {args.config} does not exist")
    # unformatted when logged and dumped: yapf spends seconds on a config with a 150- or 171-class vocabulary
    cfg = Config.fromfile(args.config, format_python_code=False)
    if args.protocol:
        apply_protocol(cfg, args.protocol)  # before --cfg-options, so that explicit overrides win
    if args.cfg_options:
        check_cfg_options(args.cfg_options, cfg)
        cfg.merge_from_dict(args.cfg_options)
    config_name = osp.splitext(osp.basename(args.config))[0]
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or osp.join("work_dirs", config_name)
    if not cfg.get("experiment_name"):
        # mmengine names its logger and visualizer after the config and the second the run starts, and hands a later
        # run of the same name the earlier one's instances: two evaluations in one process within a second would
        # share a logger whose console stream the first one closed
        stamp = time.strftime("%Y%m%d_%H%M%S")
        cfg.experiment_name = f"{config_name}_{stamp}_{next(_RUNS)}"
    if not osp.lexists(args.checkpoint):
        raise CheckpointError(f"checkpoint {args.checkpoint} does not exist")
    checkpoint = resolve_checkpoint(args.checkpoint)  # a run's `latest` pointer or work dir: its latest checkpoint
    load_model(checkpoint)  # read now, so that a bad file is one line before the Runner's logs, not after them
    cfg.model.checkpoint = str(checkpoint)
    if args.bg_thresh is not None:
        cfg.model.test_cfg.bg_thresh = args.bg_thresh
    check_test_cfg(cfg.model.get("test_cfg"))
    check_load_from(cfg.get("load_from"))

    dataset = cfg.test_dataloader.dataset
    labels = dataset_classes(dataset)
    config_templates = cfg.model.vocabulary.get("templates")
    if args.vocab is not None:
        if not args.vocab.strip():
            raise VocabularyError("--vocab is empty: give class names ('background,cat,dog') or a vocabulary file")
        if not osp.exists(args.vocab) and not any(c in args.vocab for c in ",;"):
            raise VocabularyError(f"--vocab: vocabulary file {args.vocab} does not exist, and a single class name "
                                  "cannot label a dataset (give 'background,cat,dog' or a file)")  # fmt: skip
        vocab = parse_vocabulary(args.vocab)
        if vocab.templates == DEFAULT_TEMPLATES and config_templates:  # the vocabulary set none: keep the config's
            vocab = parse_vocabulary(dict(classes=vocab.to_config()["classes"], templates=config_templates))
    elif cfg.model.vocabulary.get("classes"):
        vocab = parse_vocabulary(cfg.model.vocabulary)
    else:
        raise VocabularyError(f"{args.config} names no classes: pass --vocab (one class per label id, in order)")
    if labels is None:  # a dataset without fixed names: the vocabulary defines the labels
        dataset.metainfo = dict(classes=list(vocab.names))
    else:
        check_fits_dataset(vocab, labels, f"{dataset.type} ({args.config})")
    cfg.model.vocabulary = vocab.to_config()
    if vocab.has_exemplars and cfg.model.get("test_cfg", {}).get("exemplar_scale") is None:
        cfg.model.setdefault("test_cfg", {})["exemplar_scale"] = pipeline_scale(dataset)  # exemplars resized as images
    check_dataset_files(dataset)
    check_samples(dataset, num_labels=len(vocab) if labels is None else None)

    # checked and made now, not after the whole evaluation (a file in the way: OutputError)
    try:
        if args.json:
            output_file(args.json, "--json")
        if args.out:
            cfg.test_evaluator.output_dir = str(output_dir(args.out, "--out"))
        if args.show_dir:
            output_dir(args.show_dir, "--show-dir")
    except ValueError as err:
        raise OutputError(str(err)) from None
    if args.show_dir:
        cfg.custom_hooks = [*cfg.get("custom_hooks", []), dict(type="ZeroShotOverlayHook", out_dir=args.show_dir)]
    return cfg


def check_cfg_options(options: dict, cfg: Config) -> None:
    """Each ``--cfg-options`` key must start with a key the Runner reads: any other would change nothing, and so would
    a variable of the config file (``data_root``, ``class_names``), substituted where the file uses it when read."""
    import inspect

    from mmengine.runner import Runner
    from groupseg.schema import unknown_key

    read = [name for name in inspect.signature(Runner.__init__).parameters if name not in ("self", "cfg")]
    for key in options:
        top = key.split(".")[0]
        if top in read:
            continue
        if top in cfg:
            raise ConfigError(f"--cfg-options {key}: {top} is a variable of the config file, already substituted "
                              "where the file uses it; override those keys instead (e.g. "
                              "test_dataloader.dataset.data_root, model.vocabulary.classes)")  # fmt: skip
        raise unknown_key("", top, read)


def check_load_from(load_from: str | None) -> None:
    """An mmengine ``load_from`` file is unpickled by torch's safe loader: refuse now what it would refuse later."""
    if not load_from or "://" in str(load_from):
        return
    if not osp.isfile(load_from):
        raise FileNotFoundError(f"load_from {load_from} does not exist")
    refused = refused_globals(load_from)
    if refused:
        from groupseg.models.checkpoint import CheckpointError

        raise CheckpointError(f"refusing to load {load_from}: it pickles {', '.join(refused[:3])}, which is not "
                              f"plain weights and could run code; if you trust the file, set "
                              f"{TRUSTED_PICKLE_OPT_IN}")  # fmt: skip


def pipeline_scale(dataset_cfg: dict) -> tuple[int, int] | None:
    """The ``(long, short)`` bound of the test pipeline's keep-ratio ``Resize`` (``None`` if images keep their size)."""
    for step in dataset_cfg.get("pipeline") or []:
        if step.get("type") in ("Resize", "mmcv.Resize") and step.get("keep_ratio") and step.get("scale"):
            return tuple(step["scale"])
    return None


class _ResultTable(logging.Filter):
    """Lets mmseg's per-class IoU table and warnings through to the terminal, nothing else of mmengine's log."""

    NOISE = ("The prefix is not set in metric class",)  # mmengine's note on every mmseg metric: nothing to act on

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg).strip("\n")
        if record.levelno >= logging.WARNING:
            return not text.startswith(self.NOISE)
        return text.startswith(("per class results", "+-"))

    @staticmethod
    def format(record: logging.LogRecord) -> str:
        text = record.getMessage().strip("\n")
        return f"{record.levelname.lower()}: {text}" if record.levelno >= logging.WARNING else text


def quiet_console(runner: Runner) -> None:
    """Point mmengine's console handler (created while the runner was built, with stdout redirected) back to the
    terminal, for the result table and warnings only; its file handler keeps the whole log."""
    for handler in runner.logger.handlers:
        if type(handler) is logging.StreamHandler:
            handler.setStream(sys.stdout)
            handler.addFilter(_ResultTable())
            handler.format = _ResultTable.format


def progress_bar(total: int):
    """A tqdm bar over the test images, on stderr: an mmengine hook."""
    from mmengine.hooks import Hook
    from tqdm import tqdm

    class ProgressBar(Hook):
        def __init__(self, total: int):
            self.bar = tqdm(total=total, desc="test", unit="img", dynamic_ncols=True, file=sys.stderr,
                            mininterval=1.0)  # fmt: skip

        def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
            self.bar.update(len(outputs) if outputs is not None else 1)
            if self.bar.n >= self.bar.total:
                self.bar.close()  # before the metric prints its table

        def after_test(self, runner) -> None:
            self.bar.close()

    return ProgressBar(total)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from groupseg.models.checkpoint import CheckpointError
    from groupseg.zeroshot import DatasetError, VocabularyError
    from groupseg.zeroshot.protocols import ProtocolError
    from mmengine.runner import Runner

    user_errors = (CheckpointError, ConfigError, DatasetError, VocabularyError, ProtocolError, FileNotFoundError,
                   OutputError)  # fmt: skip
    try:
        cfg = build_config(args)
        with contextlib.nullcontext() if args.verbose else contextlib.redirect_stdout(io.StringIO()):
            runner = Runner.from_cfg(cfg)  # logs environment, config and hooks (to its log file)
        if not args.verbose:
            quiet_console(runner)
            runner.register_hook(progress_bar(len(runner.test_dataloader.dataset)), priority="VERY_LOW")
        start = time.perf_counter()
        metrics = runner.test()
        seconds = time.perf_counter() - start
    except user_errors as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TypeError as err:  # mmengine builds each class from its config dict: a misspelt key reaches __init__
        if "unexpected keyword argument" not in str(err):
            raise
        print(f"error: {err} (a misspelt key in the config or --cfg-options?)", file=sys.stderr)
        return 2
    except pickle.UnpicklingError as err:  # the Runner's own loading (e.g. a checkpoint it resumes) refused a pickle
        found = re.search(r"(?i)unsupported global[^\n.]*", str(err))
        reason = found.group(0) if found else type(err).__name__
        print(f"error: refusing to unpickle a checkpoint ({reason}); if you trust it, set {TRUSTED_PICKLE_OPT_IN}",
              file=sys.stderr)  # fmt: skip
        return 2
    count = len(runner.test_dataloader.dataset)
    print("  ".join(f"{k}: {v:.2f}" for k, v in sorted(metrics.items(), key=lambda kv: kv[0] != "mIoU")))
    print(f"{count} images in {seconds:.1f} s ({count / seconds:.2f} images/s)")
    if args.json:
        with open(args.json, "w") as f:
            numbers = {k: float(v) for k, v in metrics.items()}
            json.dump({**numbers, "images": count, "seconds": seconds, "images_per_s": count / seconds}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
