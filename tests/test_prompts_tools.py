"""The synthetic world's COCO instances, tools/segment_everything.py and tools/eval_prompts.py end to end on
generated images, as a user runs them, and their one-line errors."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

import groupseg
from groupseg.synthetic.world import WorldConfig, sample

REPO = Path(__file__).resolve().parents[1]


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f"groupseg_tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    assert load_tool("make_synthetic").main([str(out), "--train", "0", "--val", "6", "--workers", "1"]) == 0
    return out / "val"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = groupseg.GroupViT(groupseg.build_config("groupvit-tiny"))
    with torch.no_grad():  # sharper assignments: several groups per image
        for name, param in model.named_parameters():
            if name.endswith(("assign.q_proj.weight", "assign.k_proj.weight")):
                param.mul_(10)
    return groupseg.save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny")


def decode(segmentation):
    return mask_utils.decode(dict(segmentation, counts=segmentation["counts"].encode())).astype(bool)


def test_the_held_out_set_has_one_coco_instance_per_visible_object(world):
    config = WorldConfig(**{k: v for k, v in json.loads((world / "world.json").read_text()).items()
                            if k not in ("seed", "split")})  # fmt: skip
    kinds = json.loads((world / "instances.json").read_text())
    colours = json.loads((world / "instances_colours.json").read_text())
    assert [c["name"] for c in kinds["categories"]] == (world / "classes.txt").read_text().split("\n")[1:-1]
    assert [c["name"] for c in colours["categories"]] == (world / "colours.txt").read_text().split("\n")[1:-1]
    for image in kinds["images"]:
        scene, _ = sample(0, "val", image["id"] - 1, config)
        anns = [a for a in kinds["annotations"] if a["image_id"] == image["id"]]
        assert len(anns) == len(scene.shapes) and Path(world / "JPEGImages" / image["file_name"]).is_file()
        union = np.zeros(scene.kind_mask.shape, bool)
        for ann, shape in zip(anns, scene.shapes):
            mask = decode(ann["segmentation"])
            assert mask.sum() == shape.pixels == ann["area"] and not (mask & union).any()  # disjoint, exact
            assert (scene.kind_mask[mask] == ann["category_id"]).all()  # the kind mask agrees with the instance
            union |= mask
        assert np.array_equal(union, scene.kind_mask > 0)
    assert [a["category_id"] for a in colours["annotations"]] == [
        config.colours.index(a["colour"]) + 1 for a in kinds["annotations"]]  # fmt: skip


def test_segment_everything_writes_coco_results_and_labelled_overlays(world, checkpoint, tmp_path):
    images = sorted((world / "JPEGImages").glob("*.jpg"))[:3]
    out, show = tmp_path / "results.json", tmp_path / "show"
    code = load_tool("segment_everything").main([*map(str, images), "--checkpoint", str(checkpoint), "--vocab",
                                                 str(world / "colours.txt"), "--out", str(out), "--show-dir", str(show),
                                                 "--bg-thresh", "0.4", "--bg-score", "cosine"])  # fmt: skip
    assert code == 0
    results = json.loads(out.read_text())
    assert {r["image_id"] for r in results} == {1, 2, 3}
    names = (world / "colours.txt").read_text().split("\n")[1:-1]
    for r in results:
        mask = decode(r["segmentation"])
        assert mask.shape == (32, 32) and mask.sum() == r["area"] > 0 and r["score"] == r["predicted_iou"]
        assert r["label"] in ["background", *names]
        assert r["category_id"] == (names.index(r["label"]) + 1 if r["label"] in names else 0)
    overlays = sorted(show.glob("*_masks.png"))
    assert len(overlays) == 3 and min(Image.open(overlays[0]).size) >= 256


def test_eval_prompts_reports_recall_clicks_and_labels_for_a_model_and_a_baseline(world, checkpoint, tmp_path, capsys):
    metrics = tmp_path / "new folder" / "metrics.json"  # made before the evaluation
    code = load_tool("eval_prompts").main([
        "--images", str(world / "JPEGImages"), "--instances", str(world / "instances_colours.json"),
        "--checkpoint", f"tiny={checkpoint}", "--baseline", "slic", "--vocab", str(world / "colours.txt"),
        "--max-images", "3", "--max-clicks", "4", "--json", str(metrics),
    ])  # fmt: skip
    assert code == 0
    table = json.loads(metrics.read_text())
    assert [row["method"] for row in table] == ["tiny", "slic"]
    for row in table:
        assert 0 <= row["AR@10"] <= row["AR@100"] <= 1 and 0 <= row["mIoU@1"] <= 100 and 1 <= row["NoC@85"] <= 4
    assert "labels_right_%" in table[0] and "labels_right_%" not in table[1]
    printed = capsys.readouterr().out
    assert "tiny" in printed and "slic" in printed and "AR@100" in printed


def test_segment_everything_skips_an_image_it_cannot_segment_and_keeps_the_others(world, checkpoint, tmp_path,
                                                                                  capsys):  # fmt: skip
    image = sorted((world / "JPEGImages").glob("*.jpg"))[0]
    thin = tmp_path / "thin row.png"
    Image.fromarray(np.full((1, 200, 3), 128, np.uint8)).save(thin)  # thinner than a patch
    tool = load_tool("segment_everything")
    assert tool.main([str(thin), str(image), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "r.json")]) == 0
    err = capsys.readouterr().err.strip()
    assert err == (f"skipped: {thin}: the image (200×1 px) is smaller than one 4 px patch; use short_side= "
                   "(--short-side in the tools) to enlarge it")
    results = json.loads((tmp_path / "r.json").read_text())
    assert results and {r["file_name"] for r in results} == {image.name} and {r["image_id"] for r in results} == {2}
    assert tool.main([str(thin), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "none.json")]) == 2
    assert not (tmp_path / "none.json").exists()


@pytest.mark.parametrize(
    "tool, argv, message",
    [
        ("segment_everything", ["missing.jpg", "--checkpoint", "{ckpt}", "--out", "{tmp}/r.json"], "cannot read image"),
        ("segment_everything", ["{img}", "--checkpoint", "{tmp}/nope", "--out", "{tmp}/r.json"], "error: "),
        ("segment_everything", ["{img}", "--checkpoint", "{ckpt}", "--out", "{img}"], "is one of the input images"),
        ("segment_everything", ["{img}", "--checkpoint", "{ckpt}", "--vocab", "", "--out", "{tmp}/r.json"], "error: "),
        ("eval_prompts", ["--images", "{tmp}", "--instances", "{world}/instances.json", "--baseline", "slic"],
         "are not in"),
        ("eval_prompts", ["--images", "{world}/JPEGImages", "--instances", "{tmp}/none.json", "--baseline", "slic"],
         "cannot read COCO instances"),
        ("eval_prompts", ["--images", "{world}/JPEGImages", "--instances", "{world}/instances.json"],
         "nothing to evaluate"),
        ("segment_everything", ["{img}", "--checkpoint", "{ckpt}", "--out", "{tmp}"], "is a folder; give a file name"),
        ("segment_everything", ["{img}", "--checkpoint", "{ckpt}", "--out", "{tmp}/r.json", "--show-dir", "{img}"],
         "cannot make the folder"),
        ("eval_prompts", ["--images", "{world}/JPEGImages", "--instances", "{world}/instances.json", "--baseline",
                          "slic", "--max-images", "0"], "--max-images must be >= 1, got 0"),
        ("eval_prompts", ["--images", "{world}/JPEGImages", "--instances", "{world}/instances.json", "--baseline",
                          "slic", "--json", "{tmp}"], "is a folder; give a file name"),
    ],
)
def test_tools_answer_bad_input_with_one_line_and_exit_code_2(world, checkpoint, tmp_path, capsys, tool, argv, message):
    image = sorted((world / "JPEGImages").glob("*.jpg"))[0]
    Image.fromarray(np.full((1, 200, 3), 128, np.uint8)).save(tmp_path / "thin row.png")  # thinner than a patch
    fill = dict(ckpt=checkpoint, tmp=tmp_path, img=image, world=world)
    assert load_tool(tool).main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert image.is_file()  # inputs untouched
