"""tools/benchmark.py runs end to end (tiny preset, one round) and writes the JSON report it promises; no timings
are asserted, only that every part measured what it says, on identical weights."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_tools import load_tool

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tiny_benchmark_writes_every_part(tmp_path):
    out = tmp_path / "bench.json"
    command = [sys.executable, "tools/benchmark.py", "--tiny", "--repeats", "1", "--warmup", "0", "--threads", "1",
               "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())

    machine = report["machine"]
    assert report["preset"] == "groupvit-tiny" and machine["threads"] == 1
    assert machine["cpu"] and isinstance(machine["native_bf16"], bool)  # the CPU named, and whether bf16 is native
    assert machine["default_precision"] == ("bf16" if machine["native_bf16"] else "fp32") or machine["device"] != "cpu"
    cpu = machine["device"] == "cpu"
    assert report["machine"]["device"] == "cpu" or report["machine"]["device"].startswith("cuda")
    assert report["parity_max_abs_diff"] < 1e-4  # groupseg read the port's weights: the same model
    assert set(report["matmul_peak_gflops"]) == {"fp32", "bf16"}
    assert all(v > 0 for v in report["matmul_peak_gflops"].values())

    rows = [r for r in report["rows"] if r["part"] != "rss"]
    assert {r["part"] for r in rows} == {"vision", "zeroshot", "train", "scaling", "data"}
    for row in rows:
        assert row["median_ms"] > 0 and row["items_per_s"] > 0 and len(row["times_ms"]) >= 1, row
        assert row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        if row["part"] != "data":
            assert row["gflop"] > 0 and "mfu_pct" in row, row
            assert row["peak_mem_mb"] >= 0 if "onnx" not in row["impl"] else "peak_mem_mb" not in row, row
    impls = {(r["part"], r["impl"]) for r in rows}
    # the default settings (precision 'auto' resolved) are marked, in every part that has a port row to compare with
    default = machine["default_precision"]
    assert {(r["part"], r["impl"]) for r in rows if r.get("default")} == {
        ("vision", f"groupseg {default}"), ("zeroshot", f"groupseg whole {default}"),
        ("zeroshot", f"groupseg slide {default}"), ("train", f"groupseg {default}")}  # fmt: skip
    assert all(r["vs_port_fp32"] > 0 for r in rows if r.get("default"))
    if cpu:  # the exported tower run by ONNX Runtime, its FLOPs counted from its eager twin
        onnx_rows = [r for r in rows if "onnx" in r["impl"]]
        assert {(r["part"], r["impl"]) for r in onnx_rows} == {("vision", "groupseg onnx fp32"),
                                                              ("zeroshot", "groupseg whole onnx fp32")}  # fmt: skip
        assert all(r["gflop"] > 0 and r["mfu_pct"] > 0 and r["vs_port_fp32"] > 0 for r in onnx_rows)
        for size, agreement in report["onnx_accuracy"].items():
            assert agreement["zeroshot_label_agreement"] >= 0.999 and agreement["max_abs_diff"] < 1e-4, size
        rss = {r["impl"]: r for r in report["rows"] if r["part"] == "rss"}
        assert set(rss) == {f"groupseg whole {default}", "groupseg whole onnx fp32"}
        assert all(0 < r["rss_before_mb"] <= r["peak_rss_mb"] and r["size"] == 64 for r in rss.values())
    for precision in ("fp32", "bf16"):
        assert {("vision", f"port {precision}"), ("vision", f"groupseg {precision}"), ("train", f"port {precision}"),
                ("train", f"groupseg {precision}"), ("train", f"groupseg +multi-label {precision}"),
                ("zeroshot", f"groupseg whole {precision}"), ("zeroshot", f"groupseg slide {precision}"),
                ("scaling", f"groupseg slide {precision}")} <= impls  # fmt: skip
    assert {(r["size"]) for r in rows if r["part"] == "scaling"} == {32, 64, 128}
    train = {r["impl"]: r for r in rows if r["part"] == "train"}
    assert train["groupseg bf16"]["items"] == 8 and train["groupseg bf16"]["vs_port_fp32"] > 0
    # the multi-label loss runs 4 texts per image: more FLOPs than the caption-only step
    assert train["groupseg +multi-label fp32"]["gflop"] > train["groupseg fp32"]["gflop"]

    targets = report["targets"]
    assert set(targets) == {"train_img_s_vs_port_fp32", "zeroshot_vs_port_vision_fp32@32",
                            "zeroshot_vs_port_vision_fp32@64", "zeroshot_vs_port_vision_fp32@32x8",
                            "default_never_slower_than_port_fp32"}  # fmt: skip
    for target in targets.values():
        assert target["ratio"] > 0 and target["met"] == (target["ratio"] >= target["target"])

    scaling = report["scaling"]["groupseg slide bf16"]
    assert set(scaling["growth"]) == {"32->64", "64->128"} and all(g > 0 for g in scaling["growth"].values())

    accuracy = report["bf16_accuracy"]
    assert 0 <= accuracy["zeroshot_label_agreement"] <= 1 and len(accuracy["assignment_argmax_agreement"]) == 2
    assert accuracy["image_embeds_max_abs_diff"] < 0.1  # bf16 stays close to fp32
    assert "target train_img_s_vs_port_fp32" in result.stdout and f"wrote {out}" in result.stdout
    assert "is the faster precision on this" in result.stdout and "default settings vs the port's fp32" in result.stdout


def test_an_out_path_that_is_a_folder_is_refused_before_measuring(tmp_path, capsys):

    tool = load_tool("benchmark")
    assert tool.main(["--tiny", "--repeats", "1", "--only", "peak", "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: --out {tmp_path} is a folder; give a file name\n"
    assert "groupseg benchmark" not in captured.out  # nothing measured
