"""tools/video.py and tools/eval_video.py end to end on generated clips, as a user runs them, and their errors."""
import json

import numpy as np
import pytest
from PIL import Image

import groupseg
from groupseg.synthetic.video import VideoConfig, write_clips
from groupseg.video import OverlayWriter, read_panomask
from helpers_tools import load_tool


@pytest.fixture(scope="module")
def checkpoint(sharp_tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    groupseg.save_checkpoint(sharp_tiny_model, path)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_clips(tmp_path_factory.mktemp("clips") / "video", 2, VideoConfig(frames=10), seed=1)


MODEL = ["--short-side", "32", "--bg-thresh", "0.5"]


def test_video_tool_writes_labels_ids_tracks_and_an_overlay_from_a_folder(checkpoint, clips, tmp_path, capsys):
    out = tmp_path / "out"
    frames = clips / "images" / "clip_0000"
    code = load_tool("video").main([str(frames), "--checkpoint", str(checkpoint), "--vocab", str(clips / "classes.txt"),
                                    "--out", str(out), "--show", "overlay.gif", *MODEL])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in (out / "labels").iterdir()) == [f"{t:05d}.png" for t in range(10)]
    labels = np.array(Image.open(out / "labels" / "00004.png"))
    ids = np.array(Image.open(out / "ids" / "00004.png"))
    assert labels.shape == ids.shape == (32, 32) and ids.dtype == np.uint16 and labels.max() <= 6
    tracks = json.loads((out / "tracks.json").read_text())
    all_ids = {int(i) for p in (out / "ids").iterdir() for i in np.unique(np.array(Image.open(p))) if i}
    assert all_ids <= {t["id"] for t in tracks}
    assert all(set(t) == {"id", "class", "label", "score", "first_frame", "last_frame", "frames"} for t in tracks)
    with Image.open(out / "overlay.gif") as gif:
        assert gif.n_frames == 10 and gif.size == (256, 256)
    assert "10 frames" in capsys.readouterr().out


def test_video_tool_reads_a_video_file_and_writes_an_mp4_overlay(checkpoint, clips, tmp_path):
    video = tmp_path / "clip.mp4"
    with OverlayWriter(video, fps=8) as writer:
        for path in sorted((clips / "images" / "clip_0001").iterdir()):
            writer.write(np.array(Image.open(path)))
    out = tmp_path / "out"
    code = load_tool("video").main([str(video), "--checkpoint", str(checkpoint), "--vocab", "circle,square",
                                    "--out", str(out), "--show", *MODEL])  # fmt: skip
    assert code == 0
    assert len(list((out / "ids").iterdir())) == 10 and (out / "overlay.mp4").stat().st_size > 0


def test_eval_tool_prints_per_frame_and_tracked_figures_that_match_the_written_truth(checkpoint, clips, tmp_path,
                                                                                      capsys):  # fmt: skip
    report = tmp_path / "reports" / "report.json"  # its folder is made
    code = load_tool("eval_video").main([str(clips), "--checkpoint", str(checkpoint), "--vocab",
                                         str(clips / "colours.txt"), "--masks", "panomasks_colours", "--spans", "0",
                                         "5", "--json", str(report), *MODEL])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "per-frame" in printed and "tracked" in printed and "2 clips, 20 frames" in printed
    results = json.loads(report.read_text())
    for row in ("per-frame", "tracked"):
        assert results[row]["SQ"] == pytest.approx(results[row]["mIoU"])  # STEP's SQ is mmseg's mIoU
        assert 0 <= results[row]["AQ"] <= 1 and 0 <= results[row]["mVC8"] <= 1
    # a prediction equal to the truth scores 1: the tool's metrics read the masks the way the world wrote them
    from groupseg.metrics.video import VideoMetrics

    perfect = VideoMetrics(8, things=range(1, 8), spans=(0, 5))
    for t in range(10):
        sem, inst = read_panomask(clips / "panomasks_colours" / "clip_0000" / f"{t:05d}.png")
        perfect.update(sem, inst, sem, inst)
    assert perfect.result()["STQ"] == pytest.approx(1.0) and perfect.result()["VPQ"] == pytest.approx(1.0)


@pytest.mark.parametrize("case", ["unreadable video", "empty folder", "frames of different sizes", "no checkpoint",
                                  "overlay type", "bg-thresh", "max-missing", "short-side 0",
                                  "frame smaller than a patch", "out is a file", "min-similarity", "min-area",
                                  "label-weight", "scale", "bg-thresh without background",
                                  "background without background"])  # fmt: skip
def test_video_tool_bad_input_is_a_one_line_error(case, checkpoint, tmp_path, capsys):
    source = tmp_path / "input"
    extra = []
    if case == "unreadable video":
        source = tmp_path / "movie.mp4"
        source.write_bytes(b"\x00\x01 definitely not a video")
    else:
        source.mkdir()
    if case == "frames of different sizes":
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(source / "a.png")
        Image.fromarray(np.zeros((32, 40, 3), np.uint8)).save(source / "b.png")
    ckpt = [] if case == "no checkpoint" else ["--checkpoint", str(checkpoint)]
    if case == "overlay type":
        extra = ["--show", "overlay.png"]
    options = {"bg-thresh": ["--bg-thresh", "-1"], "max-missing": ["--max-missing", "-1"],
               "short-side 0": ["--short-side", "0"], "frame smaller than a patch": ["--short-side", "1"],
               "min-similarity": ["--min-similarity", "5"], "min-area": ["--min-area", "-1"],
               "label-weight": ["--label-weight", "-1"], "scale": ["--scale", "-1"],
               "bg-thresh without background": ["--no-background"],  # MODEL gives --bg-thresh: it would be ignored
               "background without background": ["--no-background", "--vocab", "background,circle"]}
    out = tmp_path / "out"
    if case == "out is a file":
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(source / "a.png")
        out.write_text("not a folder")
    if case in options:  # options out of range: refused by the segmenter or its tracker config, or at the first frame
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(source / "a.png")
        extra = options[case]
    monkey_env = pytest.MonkeyPatch()
    monkey_env.delenv("GROUPSEG_CHECKPOINT", raising=False)
    try:
        code = load_tool("video").main([str(source), *ckpt, "--vocab", "circle", "--out", str(out),
                                        *MODEL, *extra])  # fmt: skip
    finally:
        monkey_env.undo()
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err


def test_eval_tool_refuses_a_vocabulary_that_does_not_fit_the_categories(checkpoint, clips, capsys):
    code = load_tool("eval_video").main([str(clips), "--checkpoint", str(checkpoint), "--vocab", "circle,square",
                                         *MODEL])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "7 labels" in err and "\n" not in err


def test_eval_tool_with_frame_step_tracks_every_frame_and_scores_the_annotated_ones(checkpoint, clips, tmp_path,
                                                                                     capsys):  # fmt: skip
    """Cityscapes-VPS's protocol (inference on every frame, masks on every 5th): frames without a mask are tracked,
    not refused; per-frame figures equal those of the annotated frames alone (tracking cannot change them)."""
    import shutil

    sparse, annotated = tmp_path / "sparse", tmp_path / "annotated"
    shutil.copytree(clips, sparse)
    shutil.copytree(clips, annotated)
    for clip in ("clip_0000", "clip_0001"):
        for t in range(1, 10, 2):
            (sparse / "panomasks_colours" / clip / f"{t:05d}.png").unlink()
            (annotated / "panomasks_colours" / clip / f"{t:05d}.png").unlink()
            (annotated / "images" / clip / f"{t:05d}.jpg").unlink()
    reports = {}
    for name, root in (("sparse", sparse), ("annotated", annotated)):
        reports[name] = tmp_path / f"{name}.json"
        report = ["--json", str(reports[name])]
        options = ["--masks", "panomasks_colours", "--frame-step", "2", "--spans", "0", "2", *report]
        code = load_tool("eval_video").main([str(root), "--checkpoint", str(checkpoint), "--vocab",
                                             str(clips / "colours.txt"), *options, *MODEL])  # fmt: skip
        assert code == 0, capsys.readouterr().err
    assert "2 clips, 20 frames (10 with a mask scored)" in capsys.readouterr().out
    sparse_result, annotated_result = (json.loads(reports[n].read_text()) for n in ("sparse", "annotated"))
    assert (sparse_result["frames"], sparse_result["scored"]) == (20, 10)
    for figure in ("STQ", "VPQ", "VPQ@2", "mIoU", "mVC8"):
        assert sparse_result["per-frame"][figure] == pytest.approx(annotated_result["per-frame"][figure], nan_ok=True)
