"""The browser demo: label an image with any vocabulary, click points or draw a box, segment everything, or define a
class by a painted exemplar — on a local CPU, at http://127.0.0.1:7860.

    python tools/app.py [--checkpoint CKPT] [--port 7860] [--host 127.0.0.1] [--data data/synthetic]

Without ``--checkpoint`` (or ``$GROUPSEG_CHECKPOINT``) it serves the model ``bash tools/quickstart.sh`` trained
(work_dirs/quickstart/checkpoints/latest). Each mode is an API endpoint (/labels, /prompt, /everything, /exemplar)
that scripts call with gradio_client; see docs/app.md.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from pathlib import Path

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import groupseg  # noqa: E402  (first: applies the compat shims)

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = Path("work_dirs/quickstart/checkpoints/latest")  # what the README's first command trains


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="groupseg's browser demo (Gradio)")
    parser.add_argument("--checkpoint", default=os.environ.get("GROUPSEG_CHECKPOINT"),
                        help=f"GroupViT weights, any format groupseg.load_model reads, or a checkpoints/latest pointer "
                        f"(default: $GROUPSEG_CHECKPOINT, else the quickstart model {QUICKSTART})")  # fmt: skip
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--data", default="data/synthetic",
                        help="synthetic world whose held-out images (DATA/val) the page offers "
                        "(default data/synthetic)")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def resolve_checkpoint(given: str | None) -> tuple[Path, str]:
    """The weights to load and a line saying which they are; a ``latest`` pointer file is followed."""
    from groupseg.models.checkpoint import CheckpointError

    if given:
        path = Path(given)
        if not path.exists():
            raise CheckpointError(f"checkpoint {path} does not exist")
        note = f"model: {path}"
    else:
        path = QUICKSTART if QUICKSTART.is_file() else REPO / QUICKSTART
        if not path.is_file():
            raise CheckpointError(f"no checkpoint given and no quickstart model ({QUICKSTART}): run `bash "
                                  "tools/quickstart.sh` first to train one, or pass --checkpoint CKPT")  # fmt: skip
        note = f"model: the quickstart model (trained by `bash tools/quickstart.sh`), {path.parent / '...'}"
    if path.is_file() and path.name == "latest":  # the trainer's pointer to its newest step directory
        step = path.read_text().strip()
        path = path.parent / step
        if not path.exists():
            raise CheckpointError(f"{given or QUICKSTART} names {step}, which does not exist in {path.parent}")
        note = note.replace("...", step)
    return path, note


def build(args: argparse.Namespace):
    """(page, launch options, the line naming the model): everything but the serving, so tests launch it too."""
    path, note = resolve_checkpoint(args.checkpoint)  # first: a missing model is said before Gradio loads

    from groupseg.app import Handlers
    from groupseg.app.page import build_page, launch_options
    from groupseg.app.presets import held_out_images, vocabulary_presets

    handlers = Handlers(groupseg.load_model(path, args.device))
    data = Path(args.data)
    examples = held_out_images((data if data.is_absolute() or data.exists() else REPO / data) / "val")
    presets = vocabulary_presets(REPO / "configs")
    synthetic = handlers.settings.bg_score == "cosine"
    default = "synthetic world: colours" if synthetic else "PASCAL VOC"
    page = build_page(handlers, presets, examples, model_name=note, default_preset=default)
    return page, launch_options(examples), note


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from groupseg.models.checkpoint import CheckpointError

    try:
        page, options, note = build(args)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(note, file=sys.stderr)
    try:
        page.launch(server_name=args.host, server_port=args.port, **options)
    except OSError as err:  # the port is taken, or the address cannot be bound
        print(f"error: cannot serve on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
