"""tools/benchmark_table.py: runs the benchmarks whose data is present (each through tools/test.py in its own
process), skips the absent ones naming what is missing, keeps the others when one fails, and writes the table with the
papers' averages and the quoted rows."""
import csv
import json
import re

import numpy as np
import pytest

from test_eight_benchmarks import make_ade20k, make_cityscapes, make_coco_stuff
from test_zeroshot_tools import SMALL, checkpoint, load_tool, make_context  # noqa: F401  (checkpoint: a fixture)


def logged_miou(log_path):
    """The mIoU tools/test.py printed in its own log."""
    return float(re.search(r"^mIoU: ([0-9.]+)", open(log_path).read(), re.M).group(1))


@pytest.mark.slow
def test_two_present_and_six_absent_benchmarks_make_one_table(tmp_path, checkpoint, capsys):
    make_cityscapes(tmp_path / "store", np.random.default_rng(0))
    make_ade20k(tmp_path / "store", np.random.default_rng(1))
    out = tmp_path / "table"
    code = load_tool("benchmark_table").main([checkpoint, "--out", str(out),
                                              "--data-root", str(tmp_path / "store/data"),
                                              "--cfg-options", *SMALL])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "[1/2] cityscapes: evaluating" in printed and "[2/2] ade20k: mIoU" in printed

    results = json.loads((out / "results.json").read_text())
    datasets = results["datasets"]
    assert [k for k, r in datasets.items() if r["status"] == "ok"] == ["cityscapes", "ade20k"]
    for key in ("cityscapes", "ade20k"):
        assert datasets[key]["mIoU"] == logged_miou(out / key / "test.log") and datasets[key]["images"] == 2
    skipped = {k: r["message"] for k, r in datasets.items() if r["status"] == "skipped"}
    assert sorted(skipped) == ["coco_object", "coco_stuff", "context", "context59", "voc", "voc20"]
    assert f"{tmp_path}/store/data/VOCdevkit/VOC2012 does not exist" in skipped["voc20"]
    assert all("data/README.md" in message for message in skipped.values())
    assert results["averages"] == {"with_background": None, "without_background": None, "all": None}  # incomplete

    table = (out / "table.md").read_text()
    measured = next(line for line in table.splitlines() if line.startswith("| **this checkpoint**"))
    cells = [c.strip() for c in measured.strip("|").split("|")]
    header = [c.strip() for c in table.splitlines()[4].strip("|").split("|")]
    assert cells[header.index("Cityscapes")] == f"{datasets['cityscapes']['mIoU']:.2f}"
    assert cells[header.index("ADE20K")] == f"{datasets['ade20k']['mIoU']:.2f}" and cells[header.index("VOC")] == "–"
    assert "SCLIP ViT-B/16, quoted (sclip) | 59.1 |" in table and "skipped" in table
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert float(rows[0]["Cityscapes"]) == datasets["cityscapes"]["mIoU"] and rows[0]["VOC"] == ""
    assert {r["kind"] for r in rows[1:]} == {"quoted"}


@pytest.mark.slow
def test_a_failing_benchmark_keeps_the_others_results(tmp_path, checkpoint, capsys):
    make_ade20k(tmp_path, np.random.default_rng(1))
    make_context(tmp_path, np.random.default_rng(2))
    split = tmp_path / "data/VOCdevkit/VOC2010/ImageSets/SegmentationContext/val.txt"
    split.write_text(split.read_text() + "2008_999999\n")  # an image the split names but nobody unpacked
    out = tmp_path / "table"
    code = load_tool("benchmark_table").main([checkpoint, "--datasets", "context59,ade20k", "--out", str(out),
                                              "--data-root", str(tmp_path / "data"),
                                              "--cfg-options", *SMALL])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 1
    datasets = json.loads((out / "results.json").read_text())["datasets"]
    assert datasets["context59"]["status"] == "failed" and "2008_999999" in datasets["context59"]["message"]
    assert "context59: FAILED" in printed
    assert datasets["ade20k"]["status"] == "ok" and datasets["ade20k"]["mIoU"] == logged_miou(out / "ade20k/test.log")
    assert "ade20k: mIoU" in (out / "table.md").read_text()


def test_averages_are_the_papers_and_only_over_complete_groups():
    tool = load_tool("benchmark_table")
    measured = dict(voc=40.0, context=20.0, coco_object=30.0, voc20=80.0, context59=30.0, coco_stuff=20.0,
                    cityscapes=25.0, ade20k=15.0)  # fmt: skip
    results = dict(checkpoint="ckpt", protocol="groupvit", datasets={k: {"mIoU": v} for k, v in measured.items()})
    rows = tool.table_rows(results)
    assert rows[0]["averages"] == {"with_background": 30.0, "without_background": 34.0, "all": 32.5}
    results["datasets"]["ade20k"] = {"status": "failed"}
    assert tool.table_rows(results)[0]["averages"] == {"with_background": 30.0, "without_background": None,
                                                       "all": None}  # fmt: skip
    sclip = next(r for r in rows if r["name"].startswith("SCLIP"))
    assert round(sum(sclip["miou"].values()) / 8, 1) == sclip["averages"]["all"] == 38.2  # quoted figures agree
    assert sclip["computed_averages"] == ["with_background", "without_background"]
    assert all(r["kind"] == "quoted" and r["source"] for r in rows[1:])
    for row in rows[1:]:  # every stated average is the mean of the quoted figures, when they are all there
        stated, figures = row.get("averages", {}).get("all"), [row["miou"].get(b.key) for b in tool.BENCHMARKS]
        if stated is not None and None not in figures:
            assert round(sum(figures) / 8, 1) == stated, row["name"]
    tcl = next(r for r in rows if r["name"].startswith("TCL"))
    assert "cityscapes" not in tcl["miou"] and tcl["averages"]["without_background"] is None  # unsettled: see docs


def test_unconverted_labels_name_the_converter_and_bad_input_exits_2(tmp_path, checkpoint, capsys):
    tool = load_tool("benchmark_table")
    make_coco_stuff(tmp_path, np.random.default_rng(0))  # stuffthingmaps only
    stuff = tool.BY_KEY["coco_stuff"]
    reason = tool.missing(stuff, tool.data_root(stuff, str(tmp_path / "data")))
    assert f"python tools/convert_coco_stuff.py {tmp_path}/data/coco_stuff164k" in reason and "data/README.md" in reason
    assert tool.main([checkpoint, "--datasets", "voc,nope"]) == 2
    assert "unknown benchmark nope" in capsys.readouterr().err
    assert tool.main([checkpoint, "--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "t")]) == 2
    assert "no benchmark data found" in capsys.readouterr().err
    assert (tmp_path / "t/table.md").exists()  # the table of what is known (nothing measured) is still written
    (tmp_path / "a-file").write_text("mine")
    assert tool.main([checkpoint, "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "a-file")]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot make the folder {tmp_path / 'a-file'} (--out)")
    assert (tmp_path / "a-file").read_text() == "mine"
