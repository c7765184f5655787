"""Zero-shot evaluation, mmseg style: parse args, merge the config, build an mmengine Runner, run the test loop.

    python tools/test.py configs/zeroshot/groupvit_voc.py CHECKPOINT [--vocab V] [--bg-thresh T] [--out DIR]
        [--show-dir DIR] [--work-dir DIR] [--json FILE] [--cfg-options key=value ...]

Prints a progress bar, mmseg's per-class IoU table and the mIoU; everything else mmengine logs (environment, config,
hooks, iteration lines) goes only to its log file in the work dir (``--verbose``: to the terminal too). CHECKPOINT is anything ``groupseg.load_model`` reads. Bad input
(missing dataset, vocabulary that does not fit, unreadable checkpoint) exits with code 2 and one line on stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import groupseg  # noqa: E402  (first: applies the compat shims before mmseg is imported)
from groupseg.models.checkpoint import CheckpointError  # noqa: E402
from groupseg.zeroshot import (  # noqa: E402
    DEFAULT_TEMPLATES, DatasetError, VocabularyError, check_dataset_files, check_fits_dataset, dataset_classes,
    parse_vocabulary,
)  # fmt: skip
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

USER_ERRORS = (CheckpointError, DatasetError, VocabularyError, FileNotFoundError)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Zero-shot GroupViT segmentation: evaluate a checkpoint")
    parser.add_argument("config", help="test config, e.g. configs/zeroshot/groupvit_voc.py")
    parser.add_argument("checkpoint", help="GroupViT weights (anything groupseg.load_model reads)")
    parser.add_argument("--vocab", help="class names: 'background,cat,dog', 'bg; person: man, woman', or a file")
    parser.add_argument("--bg-thresh", type=float, help="background threshold (default: the config's)")
    parser.add_argument("--out", help="write predicted label PNGs here (one per image, named like the image)")
    parser.add_argument("--show-dir", help="write overlay PNGs (image, tinted labels, legend) here")
    parser.add_argument("--work-dir", help="logs and the merged config go here (default work_dirs/<config name>)")
    parser.add_argument("--json", help="also write the metrics (mIoU, aAcc, mAcc, images/s) to this JSON file")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config keys: key=value ...")
    parser.add_argument("--verbose", action="store_true", help="also show mmengine's log (config, hooks) on the terminal")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    if not osp.isfile(args.config):
        raise FileNotFoundError(f"config {args.config} does not exist")
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    default_work_dir = osp.join("work_dirs", osp.splitext(osp.basename(args.config))[0])
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or default_work_dir
    if not osp.exists(args.checkpoint):
        raise CheckpointError(f"checkpoint {args.checkpoint} does not exist")
    cfg.model.checkpoint = args.checkpoint
    if args.bg_thresh is not None:
        cfg.model.test_cfg.bg_thresh = args.bg_thresh

    dataset = cfg.test_dataloader.dataset
    labels = dataset_classes(dataset)
    config_templates = cfg.model.vocabulary.get("templates")
    if args.vocab:
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
    check_dataset_files(dataset)

    if args.out:
        cfg.test_evaluator.output_dir = args.out
    if args.show_dir:
        cfg.custom_hooks = [*cfg.get("custom_hooks", []), dict(type="ZeroShotOverlayHook", out_dir=args.show_dir)]
    return cfg


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


class ProgressBar(Hook):
    """A tqdm bar over the test images, on stderr."""

    def __init__(self, total: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="test", unit="img", dynamic_ncols=True, file=sys.stderr, mininterval=1.0)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.bar.update(len(outputs) if outputs is not None else 1)
        if self.bar.n >= self.bar.total:
            self.bar.close()  # before the metric prints its table

    def after_test(self, runner) -> None:
        self.bar.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = build_config(args)
        with contextlib.nullcontext() if args.verbose else contextlib.redirect_stdout(io.StringIO()):
            runner = Runner.from_cfg(cfg)  # logs environment, config and hooks (to its log file)
        if not args.verbose:
            quiet_console(runner)
            runner.register_hook(ProgressBar(len(runner.test_dataloader.dataset)), priority="VERY_LOW")
        start = time.perf_counter()
        metrics = runner.test()
        seconds = time.perf_counter() - start
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
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
