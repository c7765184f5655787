"""The field's eight-benchmark zero-shot table for one checkpoint, in one command.

    python tools/benchmark_table.py CHECKPOINT [--datasets voc context59 ...] [--out DIR]
        [--protocol groupvit|tcl|sclip] [--data-root data] [--cfg-options key=value ...]

Runs ``tools/test.py`` on every benchmark whose data is present (with background: VOC, Context, COCO-Object; without:
VOC-20, Context-59, COCO-Stuff, Cityscapes, ADE20K), each in its own process so that one failing dataset cannot take
the others with it, and skips the rest, naming what is missing and the data/README.md section that says where it goes.
After every dataset it rewrites ``table.md``, ``table.csv`` and ``results.json`` in ``--out``: per-dataset mIoU, the
averages over the three with-background and the five without-background benchmarks and over all eight, and beside
them published rows of GroupViT, TCL and SCLIP, marked as quoted (see docs/benchmarks.md for their sources).
``--cfg-options`` go to every run (e.g. ``test_dataloader.dataset.indices=20`` evaluates the first 20 images only).
Exit code: 0 all present benchmarks evaluated, 1 some failed, 2 bad input or no benchmark data at all.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without installing

import groupseg  # noqa: E402,F401  (first: applies the compat shims before mmseg is imported)
from groupseg.cli import output_dir  # noqa: E402

# groupseg.zeroshot.protocols.PROTOCOL_NAMES, named here because that module loads mmseg (tests/test_tools_help.py
# checks that they agree)
PROTOCOL_NAMES = ("groupvit", "tcl", "sclip")


@dataclass(frozen=True)
class Benchmark:
    key: str  # the name on the command line
    column: str  # the column header, as the papers name it
    config: str  # relative to the repository
    with_background: bool
    readme: str  # the data/README.md section that says how to get the data
    prepare: str = ""  # the command that makes label maps the download lacks


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("voc", "VOC", "configs/zeroshot/groupvit_voc.py", True, "PASCAL VOC 2012"),
    Benchmark("context", "Context", "configs/zeroshot/groupvit_context.py", True, "PASCAL Context"),
    Benchmark("coco_object", "Object", "configs/zeroshot/groupvit_coco_object.py", True,
              "COCO-Stuff 164k and COCO-Object", "python tools/convert_coco_object.py {root}"),
    Benchmark("voc20", "VOC20", "configs/zeroshot/groupvit_voc20.py", False, "PASCAL VOC 2012"),
    Benchmark("context59", "Context59", "configs/zeroshot/groupvit_context59.py", False, "PASCAL Context"),
    Benchmark("coco_stuff", "Stuff", "configs/zeroshot/groupvit_coco_stuff.py", False,
              "COCO-Stuff 164k and COCO-Object", "python tools/convert_coco_stuff.py {root}"),
    Benchmark("cityscapes", "Cityscapes", "configs/zeroshot/groupvit_cityscapes.py", False, "Cityscapes",
              "python tools/convert_cityscapes.py {root}"),
    Benchmark("ade20k", "ADE20K", "configs/zeroshot/groupvit_ade20k.py", False, "ADE20K"),
)  # fmt: skip
BY_KEY = {b.key: b for b in BENCHMARKS}
AVERAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "with_background": ("avg bg (3)", tuple(b.key for b in BENCHMARKS if b.with_background)),
    "without_background": ("avg no bg (5)", tuple(b.key for b in BENCHMARKS if not b.with_background)),
    "all": ("avg (8)", tuple(b.key for b in BENCHMARKS)),
}

# Published figures, quoted (mIoU %); a benchmark left out was not reported or not verified (docs/benchmarks.md)
QUOTED: tuple[dict, ...] = (
    dict(name="GroupViT GCC+YFCC", protocol="groupvit", miou=dict(voc=52.3, context=22.4, coco_object=24.3),
         source="NVlabs/GroupViT README, Benchmark Results (GroupViT, CVPR 2022)"),
    dict(name="GroupViT GCC+RedCaps", protocol="groupvit", miou=dict(voc=50.8, context=23.7, coco_object=27.5),
         source="NVlabs/GroupViT README, Benchmark Results (GroupViT, CVPR 2022)"),
    dict(name="GroupViT per SCLIP Table 1", protocol="mixed",
         miou=dict(voc=52.3, context=18.7, coco_object=27.5, voc20=79.7, context59=23.4, coco_stuff=15.3,
                   cityscapes=18.5, ade20k=10.4),
         averages=dict(all=30.7),
         source="SCLIP Table 1 (arXiv 2312.01597) as transcribed alike by DeCLIP (arXiv 2505.04410v1) Table 5, "
         "TLH-CLIP (anonymous submission, later arXiv 2510.23894) Table 1 and en.papernotes.org's SCLIP note; "
         "figures compiled by SCLIP from earlier papers, not one protocol (docs/benchmarks.md)"),
    dict(name="TCL (no PAMR)", protocol="tcl",
         miou=dict(voc=51.2, context=24.3, coco_object=30.4, voc20=77.5, context59=30.3, coco_stuff=19.6,
                   ade20k=14.9),
         averages=dict(all=33.9),
         source="TCL (CVPR 2023) as SCLIP Table 1 quotes it, transcribed alike by DeCLIP Table 5, TLH-CLIP Table 1 "
         "and en.papernotes.org; average in SCLIP's abstract. Cityscapes left out: 23.5 (DeCLIP, papernotes) "
         "vs 23.1 (TLH-CLIP), and only 23.1 gives the 33.9"),
    dict(name="SCLIP ViT-B/16", protocol="sclip",
         miou=dict(voc=59.1, context=30.4, coco_object=30.5, voc20=80.4, context59=34.2, coco_stuff=22.4,
                   cityscapes=32.2, ade20k=16.1),
         averages=dict(all=38.2), source="SCLIP (ECCV 2024) Table 1, arXiv 2312.01597; average in its abstract"),
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Zero-shot mIoU on the eight benchmarks, as one table")
    parser.add_argument("checkpoint", help="GroupViT weights (anything groupseg.load_model reads)")
    parser.add_argument("--datasets", nargs="+", default=[b.key for b in BENCHMARKS],
                        help=f"benchmarks to run, space- or comma-separated (default: all of {', '.join(BY_KEY)})")
    parser.add_argument("--out", default="work_dirs/benchmark_table",
                        help="where table.md, table.csv, results.json and the per-dataset logs go")
    parser.add_argument("--protocol", choices=PROTOCOL_NAMES, default="groupvit",
                        help="resize, slide window and prompts (docs/benchmarks.md); default groupvit")
    parser.add_argument("--data-root", default="data",
                        help="the folder the configs' data/... paths point into (default: ./data)")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides passed to every tools/test.py run")  # fmt: skip
    return parser.parse_args(argv)


def selected(names: list[str]) -> list[Benchmark]:
    keys = [k.strip() for name in names for k in name.split(",") if k.strip()]
    unknown = [k for k in keys if k not in BY_KEY]
    if unknown:
        raise ValueError(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BY_KEY)}")
    return [b for b in BENCHMARKS if b.key in keys]  # table order, each once


@lru_cache(maxsize=None)
def dataset_config(benchmark: Benchmark) -> dict:
    """The benchmark config's ``test_dataloader.dataset``, loaded once (callers copy it before changing it)."""
    from mmengine.config import Config

    return Config.fromfile(osp.join(REPO, benchmark.config)).test_dataloader.dataset.to_dict()


def data_root(benchmark: Benchmark, root: str) -> str:
    """The benchmark's data folder: its config's ``data/...`` path moved under ``root``."""
    configured = dataset_config(benchmark)["data_root"]
    relative = osp.relpath(configured, "data")
    return configured if relative.startswith("..") else osp.join(root, relative)


def missing(benchmark: Benchmark, root: str) -> str | None:
    """Why the benchmark cannot run (what is missing, where the README says it goes), or None when its data is there."""
    from groupseg.zeroshot import DatasetError, check_dataset_files

    try:
        check_dataset_files({**dataset_config(benchmark), "data_root": root})
    except DatasetError as err:
        reason = str(err).split("; see data/README.md")[0]
        convert = benchmark.prepare and "label maps" in reason
        prepare = f"; make them with `{benchmark.prepare.format(root=root)}`" if convert else ""
        return f"{reason}{prepare} (data/README.md, section '{benchmark.readme}')"
    return None


def average(values: dict[str, float], keys: tuple[str, ...]) -> float | None:
    """The mean over ``keys`` when every one has a value (a partial mean would not be the papers' average)."""
    if not all(values.get(k) is not None for k in keys):
        return None
    return round(sum(values[k] for k in keys) / len(keys), 2)


def table_rows(results: dict) -> list[dict]:
    """One row per model: the measured checkpoint, then the quoted ones; each with its mIoU and averages."""
    measured = {k: r.get("mIoU") for k, r in results["datasets"].items()}
    rows = [dict(name="this checkpoint", kind="measured", protocol=results["protocol"], miou=measured,
                 averages={a: average(measured, keys) for a, (_, keys) in AVERAGES.items()},
                 source=results["checkpoint"])]  # fmt: skip
    for quoted in QUOTED:
        averages = {a: average(quoted["miou"], keys) for a, (_, keys) in AVERAGES.items()}
        stated = quoted.get("averages", {})
        computed = {a for a, v in averages.items() if v is not None and a not in stated}
        rows.append(dict(quoted, kind="quoted", averages={**averages, **stated}, computed_averages=sorted(computed)))
    return rows


def number(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_row(row: dict) -> str:
    """Measured figures with two decimals, quoted ones as printed (one); * marks an average computed here."""
    digits = 2 if row["kind"] == "measured" else 1
    name = f"**{row['name']}**" if row["kind"] == "measured" else f"{row['name']}, quoted"

    def avg(group: str) -> str:
        marker = "*" if group in row.get("computed_averages", ()) else ""
        return number(row["averages"].get(group), digits) + marker

    cells = [f"{name} ({row['protocol']})"]
    for group, with_background in (("with_background", True), ("without_background", False)):
        cells += [number(row["miou"].get(b.key), digits) for b in BENCHMARKS if b.with_background == with_background]
        cells.append(avg(group))
    cells.append(avg("all"))
    return "| " + " | ".join(cells) + " |"


def write_outputs(results: dict, out: str) -> None:
    """table.md, table.csv and results.json, from what is known so far (rewritten after every dataset)."""
    rows = table_rows(results)
    results = {**results, "averages": rows[0]["averages"], "quoted": rows[1:]}
    bg = [b.column for b in BENCHMARKS if b.with_background]
    nobg = [b.column for b in BENCHMARKS if not b.with_background]
    columns = ["model", *bg, AVERAGES["with_background"][0], *nobg, AVERAGES["without_background"][0],
               AVERAGES["all"][0]]  # fmt: skip
    lines = [
        "# Zero-shot semantic segmentation: eight benchmarks (mIoU %)", "",
        f"Checkpoint `{results['checkpoint']}`, protocol `{results['protocol']}` "
        f"({describe(results['protocol'])}), started {results['started']}.", "",
        "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
        *[markdown_row(row) for row in rows], "",
        "An average is over all of its benchmarks or left out (–); * computed here from the quoted figures. "
        "Quoted rows were measured by their authors under their own protocol and models (docs/benchmarks.md).", "",
        "## Benchmarks", "",
    ]  # fmt: skip
    for b in BENCHMARKS:
        r = results["datasets"].get(b.key)
        if r is None:
            lines.append(f"- {b.key}: not selected")
        elif r["status"] == "ok":
            lines.append(f"- {b.key}: mIoU {r['mIoU']:.2f} on {r['images']} images in {r['seconds']:.0f} s")
        else:
            lines.append(f"- {b.key}: {r['status']}" + (f": {r['message']}" if r.get("message") else ""))
    lines += ["", "## Sources of the quoted rows", "", *[f"- {q['name']}: {q['source']}" for q in QUOTED]]
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(osp.join(out, "table.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "kind", "protocol", *(b.column for b in BENCHMARKS),
                         *(label for label, _ in AVERAGES.values()), "source"])  # fmt: skip
        for row in rows:
            numbers = [row["miou"].get(b.key) for b in BENCHMARKS] + [row["averages"].get(a) for a in AVERAGES]
            writer.writerow([row["name"], row["kind"], row["protocol"], *("" if v is None else v for v in numbers),
                             row["source"]])  # fmt: skip
    with open(osp.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)


def describe(protocol: str) -> str:
    from groupseg.zeroshot.protocols import PROTOCOLS

    p = PROTOCOLS[protocol]
    sides = ", ".join(f"{t.replace('Dataset', '')} {s}" for t, s in p.short_side_by_dataset.items())
    side = f"short side {p.short_side}" + (f" ({sides})" if sides else "")
    names = "renamed prompt names" if p.class_names == "config" else "the datasets' label names"
    templates = "1 template" if len(p.templates) == 1 else f"{len(p.templates)} templates"
    return f"{side}, slide {p.crop}/{p.stride}, {templates}, {names}"


def run_one(benchmark: Benchmark, args: argparse.Namespace, root: str) -> dict:
    """tools/test.py on one benchmark in its own process; its output goes to a log file."""
    folder = osp.join(args.out, benchmark.key)
    os.makedirs(folder, exist_ok=True)
    metrics_path, log_path = osp.join(folder, "metrics.json"), osp.join(folder, "test.log")
    if osp.exists(metrics_path):
        os.remove(metrics_path)  # our own output of an earlier run: never report it as this run's
    command = [sys.executable, osp.join(REPO, "tools", "test.py"), osp.join(REPO, benchmark.config), args.checkpoint,
               "--protocol", args.protocol, "--json", metrics_path, "--work-dir", osp.join(folder, "work"),
               "--cfg-options", f"test_dataloader.dataset.data_root={root}", *args.cfg_options]  # fmt: skip
    start = time.perf_counter()
    with open(log_path, "w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if code == 0 and osp.exists(metrics_path):
        with open(metrics_path) as f:
            metrics = json.load(f)
        return dict(status="ok", mIoU=round(metrics["mIoU"], 2), images=metrics["images"],
                    seconds=round(metrics["seconds"], 1), log=log_path)  # fmt: skip
    return dict(status="failed", message=f"exit code {code}: {last_error(log_path)}", log=log_path,
                seconds=round(time.perf_counter() - start, 1))  # fmt: skip


def last_error(log_path: str) -> str:
    """The line of the log that says what went wrong: the tool's 'error:' line, else the exception's last line."""
    with open(log_path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    for line in reversed(lines):
        if line.startswith("error:") or "Error" in line.split(":")[0]:
            return line
    return lines[-1] if lines else "no output"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        benchmarks = selected(args.datasets)
        if not osp.exists(args.checkpoint):
            raise ValueError(f"checkpoint {args.checkpoint} does not exist")
        output_dir(args.out, "--out")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.checkpoint = osp.abspath(args.checkpoint)
    results = dict(checkpoint=args.checkpoint, protocol=args.protocol, cfg_options=args.cfg_options,
                   started=datetime.datetime.now().isoformat(timespec="seconds"),
                   datasets={b.key: dict(status="pending") for b in benchmarks})  # fmt: skip
    roots = {b.key: data_root(b, args.data_root) for b in benchmarks}
    for b in benchmarks:
        reason = missing(b, roots[b.key])
        if reason:
            results["datasets"][b.key] = dict(status="skipped", message=reason)
            print(f"{b.key}: skipped: {reason}")
    present = [b for b in benchmarks if results["datasets"][b.key]["status"] == "pending"]
    write_outputs(results, args.out)
    if not present:
        print(f"error: no benchmark data found under {args.data_root}/ (see data/README.md)", file=sys.stderr)
        return 2
    for i, b in enumerate(present, 1):
        print(f"[{i}/{len(present)}] {b.key}: evaluating ({b.config}, protocol {args.protocol})", flush=True)
        results["datasets"][b.key] = run_one(b, args, roots[b.key])
        r = results["datasets"][b.key]
        if r["status"] == "ok":
            print(f"[{i}/{len(present)}] {b.key}: mIoU {r['mIoU']:.2f} ({r['images']} images, {r['seconds']:.0f} s)")
        else:
            print(f"[{i}/{len(present)}] {b.key}: FAILED, {r['message']} (log: {r['log']})")
        write_outputs(results, args.out)
    print(f"table: {osp.join(args.out, 'table.md')}")
    return 1 if any(r["status"] == "failed" for r in results["datasets"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
