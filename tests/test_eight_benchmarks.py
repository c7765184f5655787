"""The eight zero-shot benchmarks end to end: for each, a miniature in the dataset's real layout (file names, label
encodings, ignore conventions) goes through tools/test.py, and the printed mIoU must equal numpy's mIoU over the
predictions written with --out. Also the label maps and reduce_zero_label readings against hand-written cases, and the
protocols' effect on a config."""
import re
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from test_zeroshot_tools import (  # noqa: F401  (checkpoint: the tiny sharpened model fixture)
    REPO, SMALL, blocky_labels, checkpoint, load_tool, make_coco_stuff, make_context, make_voc, printed_miou,
    write_image,
)  # fmt: skip

SHAPES = [(48, 64), (64, 56)]  # two small images per miniature


def ignore_zero(labels: np.ndarray) -> np.ndarray:
    """mmseg's reduce_zero_label: 0 becomes ignored (255), 1..k become 0..k-1, 255 stays ignored."""
    out = labels.astype(np.int64) - 1
    out[(labels == 0) | (labels == 255)] = 255
    return out


def make_cityscapes(root, rng):
    """leftImg8bit/val/<city>/<city>_<seq>_<frame>_leftImg8bit.png and gtFine/val/<city>/..._gtFine_labelIds.png
    (Cityscapes label ids, 0-33), converted to train ids by tools/convert_cityscapes.py."""
    base = root / "data/cityscapes"
    label_ids = np.array([0, 1, 4, 7, 8, 11, 17, 21, 23, 24, 26, 33])  # void, road, sidewalk, ..., bicycle
    for i, (city, shape) in enumerate(zip(["frankfurt", "lindau"], SHAPES)):
        (base / "leftImg8bit/val" / city).mkdir(parents=True, exist_ok=True)
        (base / "gtFine/val" / city).mkdir(parents=True, exist_ok=True)
        stem = f"{city}_000000_{i:06d}"
        labels = blocky_labels(rng, shape, label_ids)
        Image.fromarray(labels).save(base / "gtFine/val" / city / f"{stem}_gtFine_labelIds.png")
        write_image(base / "leftImg8bit/val" / city / f"{stem}_leftImg8bit.png", labels, rng)
    assert load_tool("convert_cityscapes").main([str(base), "--nproc", "1"]) == 0
    return base


def make_ade20k(root, rng):
    """ADEChallengeData2016/{images,annotations}/validation/ADE_val_0000000N.{jpg,png}: 0 = other, 1-150 classes."""
    base = root / "data/ade/ADEChallengeData2016"
    (base / "images/validation").mkdir(parents=True)
    (base / "annotations/validation").mkdir(parents=True)
    for i, shape in enumerate(SHAPES, 1):
        labels = blocky_labels(rng, shape, np.array([0, 1, 2, 13, 77, 149, 150]))
        write_image(base / "images/validation" / f"ADE_val_{i:08d}.jpg", labels, rng)
        Image.fromarray(labels).save(base / "annotations/validation" / f"ADE_val_{i:08d}.png")
    return base


def evaluation_pairs(key, root):
    """(ground-truth PNG, prediction file name, how the benchmark reads the ground truth, labels, saved-prediction
    offset) for the miniature of benchmark ``key`` under ``root``."""
    voc, context = root / "data/VOCdevkit/VOC2012", root / "data/VOCdevkit/VOC2010"
    coco, city, ade = root / "data/coco_stuff164k", root / "data/cityscapes", root / "data/ade/ADEChallengeData2016"
    keep = lambda labels: labels.astype(np.int64)  # noqa: E731
    if key in ("voc", "voc20"):
        gts = sorted((voc / "SegmentationClass").glob("*.png"))
        return [(g, g.name) for g in gts], (keep, 21, 0) if key == "voc" else (ignore_zero, 20, 1)
    if key in ("context", "context59"):
        gts = sorted((context / "SegmentationClassContext").glob("*.png"))
        return [(g, g.name) for g in gts], (keep, 60, 0) if key == "context" else (ignore_zero, 59, 1)
    if key == "coco_object":
        gts = sorted((coco / "annotations/val2017").glob("*_instanceTrainIds.png"))
        return [(g, g.name.replace("_instanceTrainIds", "")) for g in gts], (keep, 81, 0)
    if key == "coco_stuff":
        gts = sorted((coco / "annotations/val2017").glob("*_labelTrainIds.png"))
        return [(g, g.name.replace("_labelTrainIds", "")) for g in gts], (keep, 171, 0)
    if key == "cityscapes":
        gts = sorted(city.glob("gtFine/val/*/*_gtFine_labelTrainIds.png"))
        return [(g, g.name.replace("_gtFine_labelTrainIds", "_leftImg8bit")) for g in gts], (keep, 19, 0)
    gts = sorted((ade / "annotations/validation").glob("*.png"))
    return [(g, g.name) for g in gts], (ignore_zero, 150, 1)


def numpy_miou(pred_dir, pairs, read_gt, num_classes, offset):
    """mmseg's mIoU: per-class IoU of summed areas over the dataset, ignored pixels out, absent classes skipped.
    With reduce_zero_label mmseg saves predictions + 1 (the dataset's own encoding): ``offset`` undoes that."""
    inter, union = np.zeros(num_classes), np.zeros(num_classes)
    for gt_path, pred_name in pairs:
        gt = read_gt(np.array(Image.open(gt_path)))
        pred = np.array(Image.open(Path(pred_dir) / pred_name)).astype(np.int64) - offset
        assert pred.shape == gt.shape  # predictions come back at the original image size
        valid = gt != 255
        for k in range(num_classes):
            p, g = (pred == k) & valid, (gt == k) & valid
            inter[k] += (p & g).sum()
            union[k] += (p | g).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.round(np.nanmean(inter / union) * 100, 2))


MAKERS = {  # the data each benchmark reads: VOC-20 / Context-59 read the same files as VOC / Context
    "voc": lambda root, rng: make_voc(root, rng),
    "context": lambda root, rng: make_context(root, rng),
    "coco_object": lambda root, rng: load_tool("convert_coco_object").main(
        [str(make_coco_stuff(root, rng)), "--nproc", "1"]),
    "voc20": lambda root, rng: make_voc(root, rng),
    "context59": lambda root, rng: make_context(root, rng),
    "coco_stuff": lambda root, rng: load_tool("convert_coco_stuff").main(
        [str(make_coco_stuff(root, rng)), "--nproc", "1"]),
    "cityscapes": make_cityscapes,
    "ade20k": make_ade20k,
}  # fmt: skip
CLASS_COUNTS = dict(voc=21, context=60, coco_object=81, voc20=20, context59=59, coco_stuff=171, cityscapes=19,
                    ade20k=150)


def relabel_from_predictions(pairs, pred_dir, num_classes, offset):
    """Rewrite each ground truth as the saved prediction with one block relabelled and blocks ignored (255, and 0 where
    the benchmark ignores it): a miniature on which the tiny random model scores well above zero, so that a wrong
    label convention anywhere (reading, ignoring, saving) would show as a mismatch."""
    for gt_path, pred_name in pairs:
        gt = np.array(Image.open(Path(pred_dir) / pred_name)).astype(np.int64)
        h, w = gt.shape
        gt[: h // 3, : w // 2] = offset + (gt[: h // 3, : w // 2] - offset + 1) % num_classes
        gt[h // 2 :, w // 2 :] = 255
        if offset:  # reduce_zero_label: 0 is ignored too
            gt[h // 2 :, : w // 4] = 0
        Image.fromarray(gt.astype(np.uint8)).save(gt_path)


@pytest.mark.parametrize("key", list(MAKERS))
def test_each_benchmark_runs_end_to_end_and_prints_numpys_miou(key, tmp_path, checkpoint, capsys, monkeypatch):
    MAKERS[key](tmp_path, np.random.default_rng(len(key)))
    monkeypatch.chdir(tmp_path)  # the configs' data/... paths, as a user runs them
    config = str(REPO / f"configs/zeroshot/groupvit_{key}.py")
    pairs, (read_gt, num_classes, offset) = evaluation_pairs(key, tmp_path)
    for run in ("first", "second"):
        args = [config, checkpoint, "--out", f"pred_{run}", "--work-dir", "work", "--cfg-options", *SMALL]
        code = load_tool("test").main(args)
        out = capsys.readouterr()
        assert code == 0, out.err[-3000:]
        assert len(pairs) >= 2 and f"{len(pairs)} images in" in out.out
        assert sorted(p.name for p in (tmp_path / f"pred_{run}").iterdir()) == sorted(name for _, name in pairs)
        assert printed_miou(out.out) == numpy_miou(tmp_path / f"pred_{run}", pairs, read_gt, num_classes, offset)
        table = re.findall(r"^\|\s*([^|]+?)\s*\|\s*[0-9.nan]+\s*\|", out.out + out.err, re.M)  # per-class IoUs
        assert len(set(table) - {"Class"}) == CLASS_COUNTS[key]
        if run == "first":  # the real layout, scored by a random model: about zero; now make a miniature it scores
            relabel_from_predictions(pairs, tmp_path / "pred_first", num_classes, offset)
    assert printed_miou(out.out) > 25


def test_reduce_zero_label_benchmarks_ignore_background_and_shift_labels_down(tmp_path):
    """VOC-20 (groupseg's class), Context-59 and ADE20K (mmseg's) read a hand-written mask as documented."""
    from mmseg.registry import DATASETS

    import groupseg.zeroshot  # noqa: F401  (registers PascalVOC20Dataset)

    mask = np.array([[0, 1, 2], [20, 255, 0]], np.uint8)
    for sub in ("JPEGImages", "SegmentationClass"):
        (tmp_path / sub).mkdir()
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(tmp_path / "JPEGImages/a.jpg")
    Image.fromarray(mask).save(tmp_path / "SegmentationClass/a.png")
    (tmp_path / "val.txt").write_text("a\n")
    common = dict(data_root=str(tmp_path), data_prefix=dict(img_path="JPEGImages", seg_map_path="SegmentationClass"),
                  pipeline=[dict(type="LoadAnnotations")])  # fmt: skip
    expected = np.array([[255, 0, 1], [19, 255, 255]])
    for dataset_type in ("PascalVOC20Dataset", "PascalContextDataset59"):
        dataset = DATASETS.build(dict(type=dataset_type, ann_file="val.txt", **common))
        np.testing.assert_array_equal(dataset[0]["gt_seg_map"], expected)
    ade = DATASETS.build(dict(type="ADE20KDataset", img_suffix=".jpg", **common))
    np.testing.assert_array_equal(ade[0]["gt_seg_map"], expected)
    voc20 = DATASETS.get("PascalVOC20Dataset")
    assert voc20.METAINFO["classes"][0] == "aeroplane" and len(voc20.METAINFO["classes"]) == 20


def test_coco_stuff_converter_maps_things_and_stuff_to_train_ids_0_170(tmp_path):
    base = tmp_path / "coco"
    (base / "annotations/val2017").mkdir(parents=True)
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(values).save(base / "annotations/val2017/000000000139.png")
    assert load_tool("convert_coco_stuff").main([str(base), "--nproc", "1"]) == 0
    out = np.array(Image.open(base / "annotations/val2017/000000000139_labelTrainIds.png")).ravel()
    from mmseg.datasets import COCOStuffDataset

    names = COCOStuffDataset.METAINFO["classes"]
    # stuffthingmaps value = COCO id - 1: person (id 1), fire hydrant (11), unused id 12, stop sign (13),
    # toothbrush (90), unused id 91, banner (92, the first stuff class), wood (182), unlabelled
    cases = {0: "person", 10: "fire hydrant", 11: None, 12: "stop sign", 89: "toothbrush", 90: None, 91: "banner",
             181: "wood", 200: None, 255: None}  # fmt: skip
    for value, name in cases.items():
        assert (out[value] == 255) if name is None else names[out[value]] == name, (value, out[value])
    assert sorted(set(out.tolist()) - {255}) == list(range(171))  # every train id once, nothing else kept
    assert load_tool("convert_coco_stuff").main([str(tmp_path / "empty")]) == 2


def test_cityscapes_converter_maps_label_ids_to_the_19_train_ids(tmp_path):
    gt = tmp_path / "cityscapes/gtFine/val/frankfurt"
    gt.mkdir(parents=True)
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(values).save(gt / "frankfurt_000000_000294_gtFine_labelIds.png")
    assert load_tool("convert_cityscapes").main([str(tmp_path / "cityscapes"), "--nproc", "1"]) == 0
    out = np.array(Image.open(gt / "frankfurt_000000_000294_gtFine_labelTrainIds.png")).ravel()
    from mmseg.datasets import CityscapesDataset

    names = CityscapesDataset.METAINFO["classes"]
    # cityscapesscripts labels.py: (label id, name) of the evaluated classes; the rest (void, parking, rail track,
    # guard rail, bridge, tunnel, polegroup, caravan, trailer, ids past 33) are ignored
    evaluated = {7: "road", 8: "sidewalk", 11: "building", 12: "wall", 13: "fence", 17: "pole", 19: "traffic light",
                 20: "traffic sign", 21: "vegetation", 22: "terrain", 23: "sky", 24: "person", 25: "rider", 26: "car",
                 27: "truck", 28: "bus", 31: "train", 32: "motorcycle", 33: "bicycle"}  # fmt: skip
    for label_id in range(256):
        if label_id in evaluated:
            assert names[out[label_id]] == evaluated[label_id]
        else:
            assert out[label_id] == 255, label_id
    assert load_tool("convert_cityscapes").main([str(tmp_path / "none")]) == 2


@pytest.mark.parametrize("tool", ["convert_coco_stuff", "convert_coco_object", "convert_cityscapes"])
def test_converters_report_a_bad_mask_or_output_folder_in_one_line(tmp_path, capsys, tool):
    folder = tmp_path / ("cityscapes/gtFine/val/city" if tool == "convert_cityscapes" else "coco/annotations/val2017")
    folder.mkdir(parents=True)
    name = "c_000000_000000_gtFine_labelIds.png" if tool == "convert_cityscapes" else "000000000139.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / name)
    root = tmp_path / ("cityscapes" if tool == "convert_cityscapes" else "coco")
    if tool != "convert_cityscapes":  # -o: a file where the output folder goes
        (tmp_path / "a-file").write_text("mine")
        assert load_tool(tool).main([str(root), "-o", str(tmp_path / "a-file"), "--nproc", "1"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: cannot make the folder") and "--out-dir" in err and len(err.splitlines()) == 1
    (folder / f"x{name}").write_bytes(b"not a png")  # sorts after the good one
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / f"y{name}")  # RGB
    for nproc in ("1", "2"):
        assert load_tool(tool).main([str(root), "--nproc", nproc]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.splitlines()) == 1, err
        assert f"x{name}: cannot read it as a label PNG" in err or f"y{name}: expected a single-channel 8-bit" in err


def test_a_benchmark_whose_label_maps_were_never_made_is_refused_with_the_path(tmp_path, checkpoint, capsys):
    make_coco_stuff(tmp_path, np.random.default_rng(0))  # stuffthingmaps only: not converted yet
    code = load_tool("test").main([str(REPO / "configs/zeroshot/groupvit_coco_stuff.py"), checkpoint, "--cfg-options",
                                   f"test_dataloader.dataset.data_root={tmp_path}/data/coco_stuff164k"])  # fmt: skip
    assert code == 2
    assert "no *_labelTrainIds.png label maps under" in capsys.readouterr().err


def test_protocols_change_resize_window_templates_and_names_only():
    from groupseg.zeroshot.protocols import apply_protocol

    def load(key, protocol=None):
        cfg = Config.fromfile(REPO / f"configs/zeroshot/groupvit_{key}.py")
        return apply_protocol(cfg, protocol) if protocol else cfg

    for key in MAKERS:
        default = load(key)
        assert default.test_dataloader.dataset.pipeline[1].scale == (2048, 448)  # GroupViT's protocol as shipped
        assert default.model.test_cfg.crop_size == (448, 448) and default.model.test_cfg.stride == (224, 224)
        grouped = load(key, "groupvit")
        assert grouped.to_dict() == default.to_dict()  # the configs are the GroupViT protocol
        sclip = load(key, "sclip")
        side = dict(coco_stuff=448, cityscapes=560).get(key, 336)
        assert sclip.test_dataloader.dataset.pipeline[1].scale == (2048, side)
        assert sclip.model.test_cfg.crop_size == (224, 224) and sclip.model.test_cfg.stride == (112, 112)
        assert len(sclip.model.vocabulary.templates) == 80
        assert sclip.model.vocabulary.classes == default.model.vocabulary.classes
        tcl = load(key, "tcl")
        assert tcl.test_dataloader.dataset.pipeline[1].scale == (2048, 448) and tcl.model.test_cfg.stride == (224, 224)
        assert "a photo of many {}." in tcl.model.vocabulary.templates and len(tcl.model.vocabulary.templates) == 9
        assert tcl.model.test_cfg.get("bg_thresh") == default.model.test_cfg.get("bg_thresh")
    assert "diningtable" in load("voc", "tcl").model.vocabulary.classes  # TCL prompts mmseg's names, not renamed
    assert "table" in load("voc").model.vocabulary.classes


def test_protocol_reaches_the_run_and_explicit_cfg_options_win(tmp_path, checkpoint, capsys, monkeypatch):
    make_voc(tmp_path, np.random.default_rng(0))
    monkeypatch.chdir(tmp_path)
    config = str(REPO / "configs/zeroshot/groupvit_voc20.py")
    code = load_tool("test").main([config, checkpoint, "--protocol", "tcl", "--work-dir", "work", "--cfg-options",
                                   *SMALL])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    dumped = Config.fromfile(tmp_path / "work/groupvit_voc20.py")  # the config the Runner ran, as mmengine dumps it
    assert dumped.test_dataloader.dataset.pipeline[1].scale == (2048, 64)  # --cfg-options applied after the protocol
    assert len(dumped.model.vocabulary.templates) == 9 and "diningtable" in dumped.model.vocabulary.classes
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        load_tool("test").main([config, checkpoint, "--protocol", "nope"])
