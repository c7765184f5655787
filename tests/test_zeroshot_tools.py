"""tools/test.py end to end on tiny VOC / Context / COCO-Object layouts (as a user runs it), its errors, and
tools/convert_coco_object.py. The printed mIoU is checked against numpy over the written PNGs and the ground truth."""
import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import groupseg
from groupseg.zeroshot import COCO_OBJECT_CLASSES
from helpers_tools import REPO, load_tool

SMALL = [  # short side 64, crops 32 / stride 16, no dataloader workers: seconds instead of minutes
    "test_dataloader.dataset.pipeline.1.scale=(2048,64)", "model.test_cfg.crop_size=(32,32)",
    "model.test_cfg.stride=(16,16)", "test_dataloader.num_workers=0",
]  # fmt: skip
SIZES = [(40, 60), (52, 38), (44, 44)]


def blocky_labels(rng, shape, values):
    """A few rectangles of different labels, like a segmentation mask."""
    labels = np.full(shape, values[0], np.uint8)
    for value in rng.choice(values, size=4):
        y, x = rng.integers(0, shape[0] - 8), rng.integers(0, shape[1] - 8)
        labels[y : y + rng.integers(8, shape[0]), x : x + rng.integers(8, shape[1])] = value
    return labels


def write_image(path, labels, rng):
    colours = rng.integers(0, 256, (256, 3))
    pixels = np.clip(colours[labels] + rng.normal(0, 20, (*labels.shape, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=95)


def make_voc(root, rng):
    base = root / "data/VOCdevkit/VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True)
    names, gts = [], []
    for i, shape in enumerate(SIZES):
        name = f"2007_{i:06d}"
        labels = blocky_labels(rng, shape, np.arange(21))
        labels[blocky_labels(rng, shape, [0, 0, 1]) == 1] = 255  # VOC's ignored object boundaries
        write_image(base / "JPEGImages" / f"{name}.jpg", np.where(labels == 255, 0, labels), rng)
        mask = Image.fromarray(labels, "P")  # VOC masks are palette PNGs: the pixel value is the label
        mask.putpalette(rng.integers(0, 256, 768).astype(np.uint8).tobytes())
        mask.save(base / "SegmentationClass" / f"{name}.png")
        names.append(name)
        gts.append(base / "SegmentationClass" / f"{name}.png")
    (base / "ImageSets/Segmentation/val.txt").write_text("\n".join(names) + "\n")
    return gts


def make_context(root, rng):
    base = root / "data/VOCdevkit/VOC2010"
    for sub in ("JPEGImages", "SegmentationClassContext", "ImageSets/SegmentationContext"):
        (base / sub).mkdir(parents=True)
    names, gts = [], []
    for i, shape in enumerate(SIZES):
        name = f"2008_{i:06d}"
        labels = blocky_labels(rng, shape, np.arange(60))
        write_image(base / "JPEGImages" / f"{name}.jpg", labels, rng)
        Image.fromarray(labels).save(base / "SegmentationClassContext" / f"{name}.png")
        names.append(name)
        gts.append(base / "SegmentationClassContext" / f"{name}.png")
    (base / "ImageSets/SegmentationContext/val.txt").write_text("\n".join(names) + "\n")
    return gts


def make_coco_stuff(root, rng):
    """COCO-Stuff 164k layout: stuffthingmaps (value = COCO id - 1: things 0-89, stuff 91-181, 255 unlabelled)."""
    base = root / "data/coco_stuff164k"
    (base / "images/val2017").mkdir(parents=True)
    (base / "annotations/val2017").mkdir(parents=True)
    values = np.array([0, 1, 2, 17, 43, 89, 91, 120, 181, 255])
    for i, shape in enumerate(SIZES):
        name = f"{i:012d}"
        labels = blocky_labels(rng, shape, values)
        write_image(base / "images/val2017" / f"{name}.jpg", labels, rng)
        Image.fromarray(labels).save(base / "annotations/val2017" / f"{name}.png")
    return base


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = groupseg.GroupViT(groupseg.build_config("groupvit-tiny"))
    with torch.no_grad():  # sharper assignments than a fresh init: several groups per image, as after training
        for name, param in model.named_parameters():
            if name.endswith(("assign.q_proj.weight", "assign.k_proj.weight")):
                param.mul_(10)
    return str(groupseg.save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "groupvit-tiny"))


def run_test_tool(cwd, *args):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, str(REPO / "tools/test.py"), *args], cwd=cwd, capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip


def numpy_miou(pred_dir, gt_paths, num_classes):
    """mIoU over the dataset as mmseg defines it: per-class IoU of summed areas, 255 ignored, absent classes skipped."""
    inter, union = np.zeros(num_classes), np.zeros(num_classes)
    for gt_path in gt_paths:
        stem = Path(gt_path).name.replace("_instanceTrainIds", "").rsplit(".", 1)[0]
        gt = np.array(Image.open(gt_path))
        pred = np.array(Image.open(Path(pred_dir) / f"{stem}.png"))
        assert pred.shape == gt.shape  # predictions come back at the original image size
        valid = gt != 255
        for k in range(num_classes):
            p, g = (pred == k) & valid, (gt == k) & valid
            inter[k] += (p & g).sum()
            union[k] += (p | g).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.round(np.nanmean(inter / union) * 100, 2))


def printed_miou(stdout):
    match = re.search(r"^mIoU: ([0-9.]+)", stdout, re.M)
    assert match, stdout[-3000:]
    return float(match.group(1))


def test_voc_end_to_end(tmp_path, checkpoint):
    gts = make_voc(tmp_path, np.random.default_rng(0))
    result = run_test_tool(tmp_path, str(REPO / "configs/zeroshot/groupvit_voc.py"), checkpoint, "--out", "pred",
                           "--json", "metrics.json", "--cfg-options", *SMALL)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "per class results" in result.stdout + result.stderr and "tvmonitor" in result.stdout + result.stderr
    assert printed_miou(result.stdout) == numpy_miou(tmp_path / "pred", gts, 21)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert round(written["mIoU"], 2) == printed_miou(result.stdout) and written["images"] == len(gts)
    assert sorted(os.listdir(tmp_path / "pred")) == sorted(p.name for p in gts)
    # a quiet terminal: the table and the scores; mmengine's environment, config and hook dumps only in its log file
    assert "Config:" not in result.stdout + result.stderr and "Hooks will be executed" not in result.stdout
    (log,) = (tmp_path / "work_dirs" / "groupvit_voc").glob("*/*.log")
    assert "Config:" in log.read_text() and "per class results" in log.read_text()


def test_back_to_back_evaluations_in_one_process(tmp_path, checkpoint, monkeypatch):
    """As quickstart and the sweep run it: main() again and again in one process, each with its stdout sent to a log
    file closed afterwards. Runs starting within one second used to share mmengine's logger (named after the second),
    whose console stream was the previous run's closed file."""
    gts = make_voc(tmp_path, np.random.default_rng(0))
    monkeypatch.chdir(tmp_path)
    tool = load_tool("test")
    scores = []
    for run in range(3):
        argv = [str(REPO / "configs/zeroshot/groupvit_voc.py"), checkpoint, "--out", f"pred{run}", "--cfg-options",
                *SMALL]  # fmt: skip
        with open(tmp_path / f"run{run}.log", "w") as log, contextlib.redirect_stdout(log):
            assert tool.main(argv) == 0
        scores.append(printed_miou((tmp_path / f"run{run}.log").read_text()))
    assert scores[0] == scores[1] == scores[2] == numpy_miou(tmp_path / "pred2", gts, 21)


def test_context_end_to_end_with_bg_thresh(tmp_path, checkpoint):
    gts = make_context(tmp_path, np.random.default_rng(1))
    result = run_test_tool(tmp_path, str(REPO / "configs/zeroshot/groupvit_context.py"), checkpoint, "--out", "pred",
                           "--bg-thresh", "0", "--cfg-options", *SMALL)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert printed_miou(result.stdout) == numpy_miou(tmp_path / "pred", gts, 60)
    preds = [np.array(Image.open(tmp_path / "pred" / p.name)) for p in gts]
    assert all((p != 0).all() for p in preds)  # threshold 0: no pixel is background
    assert len(np.unique(np.concatenate([p.ravel() for p in preds]))) > 1


def test_coco_object_end_to_end_with_vocab_file_and_overlays(tmp_path, checkpoint):
    base = make_coco_stuff(tmp_path, np.random.default_rng(2))
    assert load_tool("convert_coco_object").main([str(base), "--nproc", "1"]) == 0
    gts = sorted((base / "annotations/val2017").glob("*_instanceTrainIds.png"))
    vocab = tmp_path / "coco.txt"  # the official names, one with synonyms
    names = COCO_OBJECT_CLASSES
    vocab.write_text("\n".join(["background", "person: man, woman, child", *names[2:]]) + "\n")
    result = run_test_tool(tmp_path, str(REPO / "configs/zeroshot/groupvit_coco_object.py"), checkpoint,
                           "--vocab", str(vocab), "--out", "pred", "--show-dir", "show",
                           "--cfg-options", *SMALL)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert printed_miou(result.stdout) == numpy_miou(tmp_path / "pred", gts, 81)
    for gt in gts:
        overlay = Image.open(tmp_path / "show" / gt.name.replace("_instanceTrainIds", ""))
        assert overlay.height >= Image.open(gt).height and overlay.width > Image.open(gt).width  # image + legend


def test_convert_coco_object_maps_things_to_1_80_and_the_rest_to_background(tmp_path):
    base = tmp_path / "coco"
    (base / "annotations/train2017").mkdir(parents=True)
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(values).save(base / "annotations/train2017/000000000001.png")
    assert load_tool("convert_coco_object").main([str(base), "-o", str(tmp_path / "out"), "--nproc", "1"]) == 0
    out = np.array(Image.open(tmp_path / "out/annotations/train2017/000000000001_instanceTrainIds.png")).ravel()
    coco_thing_ids = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]  # 80 COCO ids
    want = np.zeros(256, np.uint8)
    for rank, coco_id in enumerate(coco_thing_ids, 1):
        want[coco_id - 1] = rank  # stuffthingmaps store id - 1
    np.testing.assert_array_equal(out, want)
    assert out.max() == 80 and set(out[91:]) == {0}  # stuff and 255 are background, nothing ignored
    assert load_tool("convert_coco_object").main([str(tmp_path / "empty")]) == 2


def test_custom_dataset_takes_its_classes_from_the_vocabulary(tmp_path, checkpoint, capsys):
    base = tmp_path / "data/custom"
    (base / "images").mkdir(parents=True)
    (base / "annotations").mkdir()
    rng = np.random.default_rng(3)
    for i, shape in enumerate(SIZES[:2]):
        labels = blocky_labels(rng, shape, np.arange(3))
        write_image(base / "images" / f"img{i}.jpg", labels, rng)
        Image.fromarray(labels).save(base / "annotations" / f"img{i}.png")
    tool = load_tool("test")
    args = [str(REPO / "configs/zeroshot/groupvit_custom.py"), checkpoint, "--work-dir", str(tmp_path / "work"),
            "--cfg-options", *SMALL, f"test_dataloader.dataset.data_root={base}"]  # fmt: skip
    assert tool.main([*args, "--vocab", "background,cat,dog", "--out", str(tmp_path / "pred")]) == 0
    out = capsys.readouterr()
    assert "cat" in out.out + out.err and printed_miou(out.out) == numpy_miou(
        tmp_path / "pred", sorted((base / "annotations").glob("*.png")), 3
    )
    assert tool.main(args) == 2  # no class names anywhere
    assert "pass --vocab" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--vocab", "background,cat,dog"], "3 classes but PascalVOCDataset"),
        (["--vocab", "cat,cat"], "duplicate class name"),
        (["--vocab", "nowhere/vocab.txt"], "vocabulary file nowhere/vocab.txt does not exist"),
    ],
)
def test_bad_vocab_exits_2_with_a_message(tmp_path, checkpoint, capsys, extra, message):
    make_voc(tmp_path, np.random.default_rng(0))
    config = str(REPO / "configs/zeroshot/groupvit_voc.py")
    code = load_tool("test").main([config, checkpoint, *extra, "--cfg-options",
                                   f"test_dataloader.dataset.data_root={tmp_path}/data/VOCdevkit/VOC2012"])  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err


def test_missing_dataset_or_checkpoint_exits_2_with_one_line(tmp_path, checkpoint, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tool = load_tool("test")
    assert tool.main([str(REPO / "configs/zeroshot/groupvit_context.py"), checkpoint]) == 2
    err = capsys.readouterr().err
    assert err == "error: data root data/VOCdevkit/VOC2010 does not exist; see data/README.md for where datasets go\n"
    make_voc(tmp_path, np.random.default_rng(0))
    assert tool.main([str(REPO / "configs/zeroshot/groupvit_voc.py"), str(tmp_path / "no-such-ckpt")]) == 2
    assert capsys.readouterr().err.startswith("error: checkpoint")


def test_config_prompt_names_are_the_official_renames_of_the_dataset_labels():
    from mmengine.config import Config
    from mmseg.datasets import PascalContextDataset, PascalVOCDataset

    renames = {"aeroplane": "airplane", "diningtable": "table", "pottedplant": "plant", "tvmonitor": "monitor"}
    voc = Config.fromfile(REPO / "configs/zeroshot/groupvit_voc.py")
    want = [{**renames, "aeroplane": "aeroplane"}.get(c, c) for c in PascalVOCDataset.METAINFO["classes"]]
    assert voc.model.vocabulary.classes == want  # VOC keeps 'aeroplane'
    context = Config.fromfile(REPO / "configs/zeroshot/groupvit_context.py")
    assert context.model.vocabulary.classes == [renames.get(c, c) for c in PascalContextDataset.METAINFO["classes"]]
    coco = Config.fromfile(REPO / "configs/zeroshot/groupvit_coco_object.py")
    assert tuple(coco.model.vocabulary.classes) == COCO_OBJECT_CLASSES and len(COCO_OBJECT_CLASSES) == 81
    thresholds = [c.model.test_cfg.bg_thresh for c in (voc, context, coco)]
    assert thresholds == [0.95, 0.35, 0.95]
    for cfg in (voc, context, coco):
        assert cfg.model.test_cfg.mode == "slide" and cfg.model.test_cfg.crop_size == (448, 448)
        assert cfg.model.test_cfg.stride == (224, 224) and cfg.model.vocabulary.templates == ["a photo of a {}."]
        assert cfg.test_dataloader.dataset.pipeline[1].scale == (2048, 448)
