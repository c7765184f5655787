"""The synthetic world's COCO instances, tools/segment_everything.py and tools/eval_prompts.py end to end on
generated images, as a user runs them, and their one-line errors."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

import groupseg
from groupseg.synthetic.world import WorldConfig, sample
from helpers_tools import load_tool


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
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / images[0].name).write_bytes(images[1].read_bytes())  # same name, other folder
    assert load_tool("segment_everything").main([str(images[0]), str(tmp_path / "a" / images[0].name),
                                                 "--checkpoint", str(checkpoint), "--out", str(out), "--show-dir",
                                                 str(tmp_path / "same")]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == [f"{images[0].stem}_2_masks.png",
                                                                      f"{images[0].stem}_masks.png"]  # was one
    units = tmp_path / "units.json"  # --cut-thresholds with no value: the groups and their pieces alone
    assert load_tool("segment_everything").main([*map(str, images), "--checkpoint", str(checkpoint), "--out",
                                                 str(units), "--cut-thresholds"]) == 0  # fmt: skip
    assert {r["unit"] for r in json.loads(units.read_text())} <= {"group", "piece"}
    assert any(r["unit"].startswith("group>") for r in results)  # the default: cuts of the soft maps too


def test_segment_everything_takes_ids_from_a_coco_set_so_cocoeval_scores_its_results(world, checkpoint, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    instances = json.loads((world / "instances_colours.json").read_text())
    picked = instances["images"][3:5]  # not the first ones: ids are the set's, not positions
    out = tmp_path / "results.json"
    code = load_tool("segment_everything").main([
        *[str(world / "JPEGImages" / im["file_name"]) for im in picked], "--checkpoint", str(checkpoint),
        "--vocab", str(world / "colours.txt"), "--instances", str(world / "instances_colours.json"), "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    results = json.loads(out.read_text())
    assert {r["image_id"] for r in results} == {im["id"] for im in picked}
    by_name = {c["name"]: c["id"] for c in instances["categories"]}
    assert all(r["category_id"] == by_name.get(r["label"], 0) for r in results)
    gt = COCO(str(world / "instances_colours.json"))
    evaluation = COCOeval(gt, gt.loadRes([r for r in results if r["category_id"]]), "segm")  # as it is
    evaluation.params.imgIds = [im["id"] for im in picked]
    evaluation.evaluate()
    assert any(e is not None and e["dtIds"] for e in evaluation.evalImgs)  # scored in the set's images, categories
    stranger = tmp_path / "stranger.jpg"
    Image.new("RGB", (32, 32)).save(stranger)
    assert load_tool("segment_everything").main([str(stranger), "--checkpoint", str(checkpoint), "--instances",
                                                 str(world / "instances_colours.json"), "--out", str(out)]) == 2


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
    unrefined = tmp_path / "unrefined.json"  # --refine none reaches the predictor: the groups' own soft maps
    assert load_tool("eval_prompts").main([
        "--images", str(world / "JPEGImages"), "--instances", str(world / "instances_colours.json"),
        "--checkpoint", f"tiny={checkpoint}", "--max-images", "3", "--max-clicks", "4", "--refine", "none",
        "--json", str(unrefined),
    ]) == 0  # fmt: skip
    row = json.loads(unrefined.read_text())[0]
    assert {k: row[k] for k in ("AR@100", "mIoU@1", "proposals_per_image")} != {
        k: table[0][k] for k in ("AR@100", "mIoU@1", "proposals_per_image")}


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


def varied_instance_set(root: Path) -> Path:
    """A COCO set as real ones come: polygons, compressed and uncompressed RLE, a crowd region, category ids 1, 7,
    90 in mixed case, an image without objects listed first, file names in subfolders, sizes and PNG modes mixed,
    an image with an EXIF orientation annotated as stored, an object covering no pixel; wrong_size.json, whose
    a.png entry is 40 px high; thin_only.json, whose only object covers no pixel."""
    colours = {1: (220, 30, 30), 7: (30, 200, 30), 90: (30, 30, 220)}
    images, annotations = [dict(id=1, file_name="empty.png", height=20, width=20)], []
    Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(root / "empty.png")
    (root / "sub" / "dir").mkdir(parents=True)
    for image_id, (name, (height, width), mode) in enumerate(
        [("a.png", (32, 32), "RGB"), ("sub/dir/b.png", (37, 53), "L"), ("c.png", (53, 37), "RGBA"),
         ("d.png", (24, 40), "P"), ("e.png", (30, 36), "I;16")], start=2):  # fmt: skip
        pixels = np.full((height, width, 3), 90, np.uint8)
        for k, (category, kind) in enumerate([(1, "polygon"), (7, "rle"), (90, "uncompressed"), (7, "crowd")]):
            y0, x0 = 2 + 12 * (k // 2), 2 + 12 * (k % 2)  # apart: an object's mask is what it shows
            y1, x1 = y0 + 8, x0 + 9
            pixels[y0:y1, x0:x1] = colours[category]
            mask = np.zeros((height, width), np.uint8)
            mask[y0:y1, x0:x1] = 1
            if kind == "polygon":
                segmentation = [[x0, y0, x1, y0, x1, y1, x0, y1]]
            elif kind == "rle":
                segmentation = dict(mask_utils.encode(np.asfortranarray(mask)))
                segmentation["counts"] = segmentation["counts"].decode()
            else:
                flat = np.concatenate([[0], mask.ravel(order="F"), [1 - mask.ravel(order="F")[-1]]])
                runs = np.diff(np.concatenate([[0], np.nonzero(np.diff(flat))[0]])).tolist()
                segmentation = dict(size=[height, width], counts=runs)
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=category, area=72.0,
                                    bbox=[x0, y0, 9, 8], iscrowd=int(kind == "crowd"), segmentation=segmentation))
        image = Image.fromarray(pixels)
        if mode == "I;16":
            image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
        image.convert(mode).save(root / name) if mode != "I;16" else image.save(root / name)
        images.append(dict(id=image_id, file_name=name, height=height, width=width))
    stored = np.full((20, 30, 3), 90, np.uint8)  # EXIF says: turn upright; annotated on the stored pixels
    stored[4:12, 6:20] = colours[1]
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(root / "turned.png", exif=exif)
    images.append(dict(id=len(images) + 1, file_name="turned.png", height=20, width=30))
    annotations.append(dict(id=len(annotations) + 1, image_id=len(images), category_id=1, area=112.0,
                            bbox=[6, 4, 14, 8], iscrowd=0, segmentation=[[6, 4, 20, 4, 20, 12, 6, 12]]))
    annotations.append(dict(id=len(annotations) + 1, image_id=2, category_id=7, area=0.02, bbox=[5, 5, 0.2, 0.2],
                            iscrowd=0, segmentation=[[5, 5, 5.2, 5, 5.2, 5.2]]))  # covers no pixel
    categories = [dict(id=1, name="Red Shape"), dict(id=7, name="green shape"), dict(id=90, name="blue shape")]
    out = root / "instances.json"
    out.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    (root / "thin_only.json").write_text(json.dumps(dict(images=images[1:2], annotations=annotations[-1:],
                                                         categories=categories)))  # fmt: skip
    images[1]["height"] = 40
    (root / "wrong_size.json").write_text(json.dumps(dict(images=images, annotations=annotations,
                                                          categories=categories)))  # fmt: skip
    return out


def test_eval_prompts_reads_coco_sets_as_they_come(checkpoint, tmp_path, capsys):
    instances = varied_instance_set(tmp_path)
    code = load_tool("eval_prompts").main([
        "--images", str(tmp_path), "--instances", str(instances), "--checkpoint", f"tiny={checkpoint}",
        "--baseline", "slic", "--vocab", "background,red shape,green shape", "--max-clicks", "3",
        "--json", str(tmp_path / "m.json"),
    ])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "7 images, 17 objects" in captured.out  # the crowd regions are not objects
    assert captured.err.strip() == ("warning: 1 categories are not in --vocab, so their objects are never labelled "
                                    "right: blue shape")  # 'Red Shape' is 'red shape'
    slic = json.loads((tmp_path / "m.json").read_text())[1]
    assert slic["AR@100"] > 0.5 and slic["objects"] == 16  # colour squares on grey: superpixels find them
    # the 17th covers no pixel: it counts for recall, as in COCOeval, but is not clicked on


@pytest.mark.parametrize(
    "tool, argv, message",
    [
        ("segment_everything", ["missing.jpg", "--checkpoint", "{ckpt}", "--out", "{tmp}/r.json"], "cannot read image"),
        ("segment_everything", ["{img}", "--checkpoint", "{tmp}/nope", "--out", "{tmp}/r.json"], "error: "),
        ("segment_everything", ["{img}", "--checkpoint", "{ckpt}", "--out", "{img}"], "is one of the input images"),
        ("segment_everything", ["{img}", "--checkpoint", "{ckpt}", "--vocab", "", "--out", "{tmp}/r.json"], "error: "),
        ("segment_everything", ["{img}", "--checkpoint", "{ckpt}", "--out", "{tmp}/r.json", "--cut-thresholds", "1"],
         "cut_thresholds are memberships in (0, 1), got [1.0]"),
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
        ("eval_prompts", ["--images", "{tmp}", "--instances", "{tmp}/instances.json", "--baseline", "slic",
                          "--max-images", "1"], "the 1 images evaluated hold no objects"),  # was a traceback
        ("eval_prompts", ["--images", "{tmp}", "--instances", "{tmp}/wrong_size.json", "--baseline", "slic"],
         "a.png is 32×32 px but its instances entry says 32×40"),
        ("eval_prompts", ["--images", "{tmp}", "--instances", "{tmp}/thin_only.json", "--baseline", "slic"],
         "no object of the 1 images evaluated covers a pixel"),  # was a traceback after the proposals
    ],
)
def test_tools_answer_bad_input_with_one_line_and_exit_code_2(world, checkpoint, tmp_path, capsys, tool, argv, message):
    image = sorted((world / "JPEGImages").glob("*.jpg"))[0]
    Image.fromarray(np.full((1, 200, 3), 128, np.uint8)).save(tmp_path / "thin row.png")  # thinner than a patch
    varied_instance_set(tmp_path)  # its first image has no objects
    fill = dict(ckpt=checkpoint, tmp=tmp_path, img=image, world=world)
    assert load_tool(tool).main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert image.is_file()  # inputs untouched
