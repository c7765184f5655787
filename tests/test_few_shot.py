"""Few-shot segmentation: the FG-IoU metric and episodes, FSS-1000 / COCO-20i / VOC-layout readers on generated
layouts, the synthetic world's support split, the pixel-colour baseline, and tools/eval_fewshot.py."""
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

import groupseg
from groupseg.data.few_shot import COCO20i, FSS1000, FewShotDatasetError, VOCLayout
from groupseg.metrics.few_shot import FewShotIoU, sample_episodes
from groupseg.synthetic.colour_baseline import colour_baseline_mask
from groupseg.synthetic.support import support_scene, write_support
from groupseg.synthetic.world import WorldConfig, render, scene_rng, write_segmentation
from groupseg.zeroshot import parse_vocabulary
from helpers_tools import load_tool

WORLD = WorldConfig(image_size=32)


def test_foreground_iou_sums_each_class_over_its_episodes_then_averages_classes():
    meter = FewShotIoU()
    gt = np.zeros((4, 4), bool)
    gt[:2, :2] = True  # 4 pixels
    pred = np.zeros((4, 4), bool)
    pred[:2, :3] = True  # 6 pixels, 4 right
    meter.add("a", pred, gt)  # I 4, U 6
    meter.add("a", np.zeros((4, 4), bool), gt)  # I 0, U 4
    ignore = np.zeros((4, 4), bool)
    ignore[:, 2:] = True  # the two extra predicted pixels are not scored
    meter.add("b", pred, gt, ignore)  # I 4, U 4
    assert meter.per_class() == {"a": pytest.approx(40.0), "b": pytest.approx(100.0)}
    assert meter.mean_iou() == pytest.approx(70.0) and meter.episodes == 3
    # background: episode 1 I 10 U 12, episode 2 I 12 U 16, episode 3 (8 valid pixels) I 4 U 4
    assert meter.fb_iou() == pytest.approx(50 * (8 / 14 + 26 / 32))
    with pytest.raises(ValueError, match="differ in shape"):
        meter.add("a", pred[:3], gt)


def test_episodes_are_fixed_by_the_seed_and_shots_share_queries():
    items = {"cat": [f"c{i}" for i in range(10)], "dog": [f"d{i}" for i in range(7)], "rare": ["r0", "r1"]}
    every = sample_episodes(items, shots=5, seed=0)  # FSS-1000: every item is a query once
    assert sorted(e.query for e in every) == sorted(items["cat"] + items["dog"])  # 'rare' lacks 5 supports
    for episode in every:
        assert len(episode.support) == 5 and episode.query not in episode.support
        assert set(episode.support) <= set(items[episode.category])
    assert sample_episodes(items, shots=5, seed=0) == every
    assert sample_episodes(items, shots=5, seed=1) != every
    one = sample_episodes(items, shots=1, seed=0)
    assert [e.query for e in one if e.category != "rare"] == [e.query for e in every]
    assert all(a.support == b.support[:1] for a, b in zip((e for e in one if e.category != "rare"), every))
    drawn = sample_episodes(items, shots=1, num_episodes=200, seed=3)  # COCO-20i: random class, random query
    assert len(drawn) == 200 and {e.category for e in drawn} == {"cat", "dog", "rare"}
    pool = {"cat": ["s0", "s1"], "dog": ["s2"]}
    apart = sample_episodes(items, shots=2, seed=0, support_items=pool)  # supports from another split
    assert {e.category for e in apart} == {"cat"} and all(set(e.support) == {"s0", "s1"} for e in apart)


def make_fss(root, rng, classes=("bald_eagle", "yoyo", "zebra"), per_class=4):
    """FSS-1000's layout: one folder per class, N.jpg with a 0/255 N.png; each class one colour on grey."""
    colours = {}
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        colours[name] = np.array([(200, 30, 30), (30, 200, 30), (30, 30, 200)][c % 3])
        for n in range(1, per_class + 1):
            mask = np.zeros((48, 40), bool)
            y, x = rng.integers(0, 20, 2)
            mask[y : y + 20, x : x + 16] = True
            image = np.full((48, 40, 3), 120.0) + rng.normal(0, 4, (48, 40, 3))
            image[mask] = colours[name] + rng.normal(0, 4, (mask.sum(), 3))
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / name / f"{n}.jpg", quality=95)
            Image.fromarray(mask.astype(np.uint8) * 255).save(root / name / f"{n}.png")
    (root / "notes.txt").write_text("not a class")
    return classes


def test_fss1000_reader(tmp_path):
    classes = make_fss(tmp_path / "fss", np.random.default_rng(0))
    data = FSS1000(tmp_path / "fss")
    assert list(data.items()) == list(classes) and len(data.items()["yoyo"]) == 4
    key = data.items()["zebra"][2]
    assert key == ("zebra", "3") and data.image(key).shape == (48, 40, 3)
    mask, ignore = data.mask(key, "zebra")
    assert mask.dtype == bool and mask.sum() == 20 * 16 and ignore is None
    (tmp_path / "split.txt").write_text("yoyo\nzebra\n")
    assert list(FSS1000(tmp_path / "fss", tmp_path / "split.txt").items()) == ["yoyo", "zebra"]
    assert data.class_name("bald_eagle") == "bald eagle"
    with pytest.raises(FewShotDatasetError, match="does not exist"):
        FSS1000(tmp_path / "fss", ["yoyo", "unicorn"])


def make_coco(root, rng):
    """COCO 2014's layout with eight categories (ids with gaps, as COCO's), RLE and polygon instances."""
    from pycocotools import mask as mask_utils

    (root / "val2014").mkdir(parents=True)
    (root / "annotations").mkdir()
    category_ids = [1, 2, 3, 5, 7, 8, 11, 13]
    images, annotations, truth = [], [], {}
    for image_id in range(1, 9):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(root / "val2014" / f"{image_id}.jpg")
        images.append(dict(id=image_id, file_name=f"{image_id}.jpg", height=30, width=40))
        for category in rng.choice(category_ids, 2, replace=False):
            union = np.zeros((30, 40), bool)
            for _ in range(2):  # two instances of the class: its mask is their union
                inst = np.zeros((30, 40), bool)
                y, x = rng.integers(0, 20, 2)
                inst[y : y + 10, x : x + 12] = True
                rle = mask_utils.encode(np.asfortranarray(inst.astype(np.uint8)))
                rle["counts"] = rle["counts"].decode()
                annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=int(category),
                                        segmentation=rle, area=float(inst.sum()), bbox=[float(x), float(y), 12.0, 10.0],
                                        iscrowd=0))  # fmt: skip
                union |= inst
            truth[(image_id, int(category))] = union
    categories = [dict(id=c, name=f"thing{c}", supercategory="x") for c in category_ids]
    (root / "annotations/instances_val2014.json").write_text(
        json.dumps(dict(images=images, annotations=annotations, categories=categories)))  # fmt: skip
    return category_ids, truth


def test_coco20i_reader_folds_every_fourth_category(tmp_path):
    category_ids, truth = make_coco(tmp_path / "coco", np.random.default_rng(1))
    for fold in range(4):
        data = COCO20i(tmp_path / "coco", fold, min_area=0)  # its objects are 120 px: below PFENet's 2·32·32
        assert data.fold_classes == category_ids[fold::4]
        for category, images in data.items().items():
            assert images == sorted(i for i, c in truth if c == category)
    data = COCO20i(tmp_path / "coco", 1, min_area=0)
    (image_id, category), want = next((k, v) for k, v in truth.items() if k[1] in data.fold_classes)
    mask, _ = data.mask(image_id, category)
    np.testing.assert_array_equal(mask, want)
    assert data.image(image_id).shape == (30, 40, 3) and data.class_name(category) == f"thing{category}"
    with pytest.raises(FewShotDatasetError, match="instances_train2014.json"):
        COCO20i(tmp_path / "coco", 0, split="train2014")


def write_coco_instances(root, instances, size=(100, 100)):
    """COCO 2014's layout from ``{image id: [(category id, boolean mask), ...]}``: RLE instances, area = pixels."""
    from pycocotools import mask as mask_utils

    (root / "val2014").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, annotations = [], []
    for image_id, objects in instances.items():
        Image.new("RGB", size[::-1], 90).save(root / "val2014" / f"{image_id}.jpg")
        images.append(dict(id=image_id, file_name=f"{image_id}.jpg", height=size[0], width=size[1]))
        for category, inst in objects:
            rle = mask_utils.encode(np.asfortranarray(inst.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=category, iscrowd=0,
                                    segmentation=rle, area=float(inst.sum()), bbox=[0.0, 0.0, 1.0, 1.0]))  # fmt: skip
    categories = [dict(id=c, name=f"thing{c}", supercategory="x") for c in (1, 2, 3, 4)]
    (root / "annotations/instances_val2014.json").write_text(
        json.dumps(dict(images=images, annotations=annotations, categories=categories)))  # fmt: skip


def test_coco20i_min_area_counts_the_union_of_a_class_s_instances(tmp_path):
    """PFENet counts a class's pixels in the label map: two instances of 1.5·1024 px each pass 2·32·32 together only
    where they do not overlap (their ``area``s sum to 3072 either way)."""
    block = np.zeros((100, 100), bool)
    block[10:42, 10:58] = True  # 32 × 48 = 1536 px
    beside = np.zeros((100, 100), bool)
    beside[50:82, 10:58] = True
    part = np.zeros((100, 100), bool)
    part[10:42, 30:78] = True  # overlaps block by 32 × 28: union 32 × 68 = 2176 px
    write_coco_instances(tmp_path / "coco", {1: [(1, block), (1, block.copy())], 2: [(1, block), (1, beside)],
                                             3: [(1, block), (1, part)], 4: [(2, block), (2, block.copy())]})
    data = COCO20i(tmp_path / "coco", 0)  # fold 0: category 1 only
    assert data.fold_classes == [1] and data.items() == {1: [2, 3]}  # image 1: one 1536-px region, twice
    assert [data.mask(i, 1)[0].sum() for i in (2, 3)] == [2 * 1536, 2176]
    assert COCO20i(tmp_path / "coco", 0, min_area=0).items() == {1: [1, 2, 3]}
    assert COCO20i(tmp_path / "coco", 0, min_area=2177).items() == {1: [2]}
    assert COCO20i(tmp_path / "coco", 1).items() == {2: []}  # the other fold's class: the same rule


def test_fss1000_reads_its_published_masks_as_hsnet_does(tmp_path):
    """FSS-1000 as published: RGB masks, a few masks of another size than their image (crt_screen/6, screw/8), stray
    unannotated N.jpeg files; and masks a user re-saved as 0/1 or as a 0/1 palette PNG."""
    folder = tmp_path / "fss" / "abe's_flyingfish"
    folder.mkdir(parents=True)
    truth = np.zeros((40, 60), bool)
    truth[10:30, 20:50] = True
    for n in range(1, 6):
        Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(folder / f"{n}.jpg")
    Image.fromarray(np.repeat(truth[..., None] * np.uint8(255), 3, axis=2)).save(folder / "1.png")  # RGB 0/255
    Image.fromarray(truth.astype(np.uint8)).save(folder / "2.png")  # 0/1
    palette = Image.fromarray(truth.astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 255, 255])
    palette.save(folder / "3.png")  # palette indices 0/1
    Image.fromarray(truth.astype(np.uint8) * 255).resize((120, 80), Image.NEAREST).save(folder / "4.png")  # 2× size
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° to display": the mask is drawn on the stored pixels, as COCO's polygons are
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(folder / "5.jpg", exif=exif)
    Image.fromarray(truth.astype(np.uint8) * 255).save(folder / "5.png")
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(folder / "6.jpeg")  # unannotated
    data = FSS1000(tmp_path / "fss")
    assert data.items() == {"abe's_flyingfish": [("abe's_flyingfish", str(n)) for n in range(1, 6)]}
    for key in data.items()["abe's_flyingfish"]:
        assert data.image(key).shape == (40, 60, 3)
        np.testing.assert_array_equal(data.mask(key, "abe's_flyingfish")[0], truth)


def make_coco_2014(root):
    """COCO 2014 as published: 80 categories with gaps in their ids, polygons, a crowd (uncompressed RLE), a
    greyscale JPEG, and a speck of an annotation that rasterises to no pixels."""
    (root / "val2014").mkdir(parents=True)
    (root / "annotations").mkdir()
    ids = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
    images, annotations = [], []

    def add(category, polygon=None, crowd=None, area=0.0):
        annotations.append(dict(id=len(annotations) + 1, image_id=len(images), category_id=category, iscrowd=int(
            crowd is not None), segmentation=crowd or [polygon], area=area, bbox=[0.0, 0.0, 1.0, 1.0]))  # fmt: skip

    for n, (height, width, mode) in enumerate([(120, 100, "RGB"), (90, 130, "L"), (100, 100, "RGB")]):
        name = f"COCO_val2014_{n + 1:012d}.jpg"
        Image.new(mode, (width, height), 100).save(root / "val2014" / name)
        images.append(dict(id=n + 1, file_name=name, height=height, width=width))
        add(1, [10, 10, 70, 10, 70, 60, 10, 60], area=3000.0)  # person, 60 × 50
    crowd = np.zeros((100, 100), np.uint8)
    crowd[80:90, 5:95] = 1  # its runs, column-major, as COCO stores crowds
    flat = crowd.flatten(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    add(1, crowd={"counts": np.diff(np.r_[0, edges, flat.size]).tolist(), "size": [100, 100]}, area=900.0)
    add(5, [40.2, 40.2, 40.5, 40.2, 40.5, 40.5], area=0.05)  # airplane: a speck in image 3
    categories = [dict(id=c, name="person" if c == 1 else f"thing{c}", supercategory="x") for c in ids]
    (root / "annotations/instances_val2014.json").write_text(
        json.dumps(dict(images=images, annotations=annotations, categories=categories)))  # fmt: skip


def test_coco20i_reads_coco_2014_as_published_and_hsnets_lists(tmp_path):
    import pickle

    make_coco_2014(tmp_path / "COCO2014")
    data = COCO20i(tmp_path / "COCO2014", 0)
    assert data.fold_classes[:2] == [1, 5] and len(data.fold_classes) == 20  # indices 0, 4, 8, ...: HSNet's fold 0
    assert data.items()[1] == [1, 2, 3] and data.items()[5] == []  # the speck is no airplane image
    assert COCO20i(tmp_path / "COCO2014", 0, min_area=0).items()[5] == [3]
    assert data.image(2).shape == (90, 130, 3)  # greyscale JPEG
    mask, _ = data.mask(3, 1)
    assert mask.shape == (100, 100) and mask[80:90, 5:95].all() and mask.sum() == 60 * 50 + 900  # crowd included
    lists = {0: ["val2014/COCO_val2014_000000000002.jpg", "val2014/COCO_val2014_000000000001.jpg"], 1: [], 4: []}
    (tmp_path / "fold0.pkl").write_bytes(pickle.dumps(lists))
    hsnet = COCO20i(tmp_path / "COCO2014", 0, split_file=tmp_path / "fold0.pkl")
    assert hsnet.items()[1] == [1, 2] and hsnet.items()[5] == []
    tool = load_tool("eval_fewshot")
    args = ["coco20i", str(tmp_path / "COCO2014"), "--method", "colour", "--shots", "1", "--episodes", "5"]
    assert tool.main([*args, "--split-file", str(tmp_path / "fold0.pkl"), "--json", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["1-shot"]["per_class"].keys() == {"person"}


def test_eval_fewshot_goes_on_past_an_empty_support_mask_and_names_classes_left_out(tmp_path, capsys):
    make_fss(tmp_path / "fss", np.random.default_rng(4), per_class=3)
    for path in ["yoyo/3.jpg", "yoyo/3.png", "zebra/2.jpg", "zebra/2.png", "zebra/3.jpg", "zebra/3.png"]:
        (tmp_path / "fss" / path).unlink()
    Image.fromarray(np.zeros((48, 40), np.uint8)).save(tmp_path / "fss" / "yoyo" / "1.png")  # nothing marked
    tool = load_tool("eval_fewshot")
    args = ["fss1000", str(tmp_path / "fss"), "--method", "colour", "--shots", "1", "2", "--json", str(tmp_path / "s")]
    assert tool.main(args) == 0  # was: 'error: the support masks are empty' (yoyo/2's one support is yoyo/1)
    scores = json.loads((tmp_path / "s").read_text())
    assert scores["1-shot"]["per_class"]["yoyo"] == 0.0 and scores["1-shot"]["per_class"]["bald eagle"] > 90
    assert scores["2-shot"]["per_class"].keys() == {"bald eagle"}
    err = capsys.readouterr().err
    assert "1-shot leaves out 1 class(es) with fewer than 1 support images besides the query: zebra" in err
    assert "2-shot leaves out 2 class(es) with fewer than 2 support images besides the query: yoyo, zebra" in err


def test_pascal5i_reads_the_val_images_of_segmentation_class_aug(tmp_path):
    """PASCAL-5i: VOC2012's SegmentationClassAug (grayscale label PNGs, 255 on boundaries) holds the SBD training
    images too; the queries are VOC2012 val's (ImageSets/Segmentation/val.txt, or HSNet's name__NN fold lists)."""
    voc = tmp_path / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClassAug", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    names = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
             "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
    (tmp_path / "voc.txt").write_text("\n".join(names) + "\n")
    for name, labels in {"2007_000033": (1, 6), "2007_000061": (4, 15), "2008_000002": (1, 2)}.items():
        label_map = np.zeros((50, 70), np.uint8)
        for n, label in enumerate(labels):
            label_map[5 + 20 * n : 20 + 20 * n, 10:60] = label
        label_map[4, :] = 255
        Image.fromarray(label_map).save(voc / "SegmentationClassAug" / f"{name}.png")
        Image.fromarray(np.full((50, 70, 3), 90, np.uint8)).save(voc / "JPEGImages" / f"{name}.jpg")
    (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000033\n2007_000061\n")  # 2008_000002: training
    every = VOCLayout(voc, tmp_path / "voc.txt", "SegmentationClassAug", fold=0)
    assert every.items() == {1: ["2007_000033", "2008_000002"], 2: ["2008_000002"], 3: [], 4: ["2007_000061"], 5: []}
    val = VOCLayout(voc, tmp_path / "voc.txt", "SegmentationClassAug", fold=0,
                    image_list=voc / "ImageSets/Segmentation/val.txt")  # fmt: skip
    assert val.items() == {1: ["2007_000033"], 2: [], 3: [], 4: ["2007_000061"], 5: []}
    (tmp_path / "fold0.txt").write_text("2007_000033__01\n2007_000061__04\n")
    hsnet = VOCLayout(voc, tmp_path / "voc.txt", "SegmentationClassAug", fold=0, image_list=tmp_path / "fold0.txt")
    assert hsnet.items() == val.items() and hsnet.class_name(4) == "boat"
    mask, ignore = hsnet.mask("2007_000033", 1)
    assert mask.sum() == 15 * 50 and ignore.sum() == 70


VOC_GREY = np.array([128, 128, 128])


def make_voc2012(voc, images, masks="SegmentationClass", val=None, rng=None):
    """VOC2012's layout: ``JPEGImages/<name>.jpg`` and ``<masks>/<name>.png`` label PNGs (VOC's palette PNGs for
    ``SegmentationClass``, grayscale for HSNet's ``SegmentationClassAug``) from ``{name: label}``: one object of the
    label, a flat colour of its own on grey, its outer 2 pixels 255 (VOC's void outline);
    ``val``: the names ``ImageSets/Segmentation/val.txt`` lists."""
    rng = rng or np.random.default_rng(0)
    for folder in ("JPEGImages", masks):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    for name, label in images.items():
        labels = np.zeros((40, 56), np.uint8)
        y, x = rng.integers(3, 15), rng.integers(3, 30)
        labels[y - 2 : y + 16, x - 2 : x + 20] = 255
        colour = np.array([(37 * label) % 256, (91 * label + 60) % 256, (173 * label + 20) % 256])
        rgb = np.where((labels == 255)[..., None], colour, VOC_GREY)
        labels[y : y + 14, x : x + 18] = label
        Image.fromarray(rgb.astype(np.uint8)).save(voc / "JPEGImages" / f"{name}.jpg", quality=100, subsampling=0)
        png = Image.fromarray(labels, "P" if masks == "SegmentationClass" else "L")
        if masks == "SegmentationClass":
            png.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
        png.save(voc / masks / f"{name}.png")
    if val is not None:
        (voc / "ImageSets/Segmentation").mkdir(parents=True, exist_ok=True)
        (voc / "ImageSets/Segmentation/val.txt").write_text("".join(f"{n}\n" for n in val))


def colour_scores(data, shots, episodes, seed=0, queries=None):
    """What tools/eval_fewshot.py --method colour should get: the same episodes, scored here."""
    meter = FewShotIoU()
    for episode in sample_episodes(data.items(), shots=shots, num_episodes=episodes, seed=seed, queries=queries):
        supports = [(data.image(k), data.mask(k, episode.category)[0]) for k in episode.support]
        target, ignore = data.mask(episode.query, episode.category)
        meter.add(episode.category, colour_baseline_mask(supports, data.image(episode.query)), target, ignore)
    return meter


def test_eval_fewshot_pascal5i_reads_voc2012_val_and_scores_the_fold_s_classes(tmp_path, capsys):
    """PASCAL-5i fold 1 (bus, car, cat, chair, cow) from VOC's own SegmentationClass and val.txt: the training images
    beside them (here the only cows) are not read, 255 is not scored, other folds' classes are not evaluated, and an
    image holds a class only where the class covers --min-area pixels (PFENet's rule; a second chair is too small)."""
    from mmengine.config import Config

    voc = tmp_path / "VOCdevkit" / "VOC2012"
    val = {"2007_000001": 6, "2007_000002": 6, "2007_000003": 6, "2007_000004": 7, "2007_000005": 7,
           "2007_000006": 7, "2007_000007": 8, "2007_000008": 8, "2007_000009": 9, "2007_000010": 1,
           "2007_000011": 1, "2007_000012": 9}  # fmt: skip
    make_voc2012(voc, {**val, "2008_000001": 10, "2008_000002": 10, "2008_000003": 10}, val=list(val))
    small = Image.open(voc / "SegmentationClass" / "2007_000012.png")
    labels = np.asarray(small).copy()
    labels[labels == 9] = 0
    labels[10:20, 10:19] = 9  # 90 pixels of chair, under --min-area 200 (the others: 14 x 18 = 252)
    smaller = Image.fromarray(labels, "P")
    smaller.putpalette(small.getpalette())  # a P image saved without its palette is renumbered
    smaller.save(voc / "SegmentationClass" / "2007_000012.png")
    tool = load_tool("eval_fewshot")
    names = Config.fromfile(tool.VOC_CONFIG).class_names
    assert names[6:11] == ["bus", "car", "cat", "chair", "cow"]
    args = ["pascal5i", str(voc), "--fold", "1", "--method", "colour", "--shots", "1", "2", "--episodes", "40",
            "--min-area", "200", "--json", str(tmp_path / "s.json")]  # fmt: skip
    assert tool.main(args) == 0
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["dataset"] == "pascal5i" and scores["fold"] == 1
    assert scores["1-shot"]["per_class"].keys() == {"bus", "car", "cat"} and scores["1-shot"]["episodes"] == 40
    assert scores["2-shot"]["per_class"].keys() == {"bus", "car"}
    out, err = capsys.readouterr()
    assert f"masks from {voc / 'SegmentationClass'}" in err and "images of " + str(voc / "ImageSets") in err
    assert "PASCAL-5i fold 1 (bus, car, cat, chair, cow)" in err and "1-shot leaves out 2 class(es)" in err
    assert err.splitlines()[1].endswith("besides the query: chair, cow")  # no cow in val: the training cows unread
    assert out.startswith("pascal5i fold 1 few-shot foreground IoU (colour)")
    val_list = voc / "ImageSets/Segmentation/val.txt"
    data = VOCLayout(voc, names, "SegmentationClass", fold=1, image_list=val_list, min_area=200)
    assert data.items()[9] == ["2007_000009"]
    assert VOCLayout(voc, names, "SegmentationClass", fold=1, image_list=val_list).items()[9] == ["2007_000009",
                                                                                               "2007_000012"]
    assert tool.main([*args[:-4], "--json", str(tmp_path / "s.json")]) == 2  # PFENet's 2048: no image holds a class
    assert "holds no image of fold 1's classes" in capsys.readouterr().err
    for shots in (1, 2):
        want = colour_scores(data, shots, 40, queries=data.listed)
        assert scores[f"{shots}-shot"]["mIoU"] == pytest.approx(want.mean_iou())
        assert scores[f"{shots}-shot"]["per_class"] == {names[c]: round(v, 2) for c, v in want.per_class().items()}
    # one flat colour an object: the baseline finds it and its void outline, exact once the outline is not scored
    assert set(scores["1-shot"]["per_class"].values()) == {100.0}


def test_eval_fewshot_pascal5i_reads_hsnet_s_fold_lists_and_segmentation_class_aug(tmp_path, capsys):
    """HSNet's layout: ``--datapath`` holds VOC2012/, whose SegmentationClassAug (grayscale, SBD's training images
    too) has the masks; the fold list's ``name__NN`` lines name the queries and their classes; 1000 episodes."""
    from mmengine.config import Config

    voc = tmp_path / "Datasets_HSN" / "VOC2012"
    listed = {"2007_000033": 1, "2007_000042": 1, "2007_000061": 2, "2007_000123": 2, "2007_000129": 4,
              "2007_000323": 4, "2007_000332": 1}  # fmt: skip
    make_voc2012(voc, {**listed, "2008_000002": 3, "2008_000003": 3}, masks="SegmentationClassAug")
    make_voc2012(voc, {"2007_000033": 1}, masks="SegmentationClass")  # VOC's own: fewer images
    for name in ("2007_000042", "2007_000129"):  # one object of another colour: scores depend on the episodes drawn
        labels = np.asarray(Image.open(voc / "SegmentationClassAug" / f"{name}.png"))
        rgb = np.where((labels > 0)[..., None], np.array([250, 30, 200]), VOC_GREY).astype(np.uint8)
        Image.fromarray(rgb).save(voc / "JPEGImages" / f"{name}.jpg", quality=100, subsampling=0)
    lines = [f"{name}__{label:02d}" for name, label in listed.items()] + ["2007_000332__05"]  # one image, two lines
    (tmp_path / "fold0.txt").write_text("\n".join(lines) + "\n")
    tool = load_tool("eval_fewshot")
    args = ["pascal5i", str(tmp_path / "Datasets_HSN"), "--method", "colour", "--shots", "1",
            "--split-file", str(tmp_path / "fold0.txt"), "--json", str(tmp_path / "s.json")]  # fmt: skip
    assert tool.main(args) == 0
    scores = json.loads((tmp_path / "s.json").read_text())["1-shot"]
    assert scores["episodes"] == 1000 and scores["per_class"].keys() == {"aeroplane", "bicycle", "boat"}
    err = capsys.readouterr().err
    assert f"masks from {voc / 'SegmentationClassAug'}" in err and f"images of {tmp_path / 'fold0.txt'}" in err
    names = Config.fromfile(tool.VOC_CONFIG).class_names
    data = VOCLayout(voc, names, "SegmentationClassAug", fold=0, image_list=tmp_path / "fold0.txt")
    assert data.items() == {1: ["2007_000033", "2007_000042", "2007_000332"], 2: ["2007_000061", "2007_000123"],
                            3: [], 4: ["2007_000129", "2007_000323"], 5: ["2007_000332"]}  # fmt: skip
    assert scores["mIoU"] == pytest.approx(colour_scores(data, 1, 1000, queries=data.listed).mean_iou())
    assert scores["mIoU"] != pytest.approx(colour_scores(data, 1, 1000).mean_iou())  # not COCO-20i's draw
    # HSNet's order: the list's lines, cycled (boat's one-image line has no support besides its query: left out)
    episodes = sample_episodes(data.items(), shots=1, num_episodes=1000, queries=data.listed)
    usable = [(label, name) for name, label in listed.items()]
    assert [(e.category, e.query) for e in episodes[:14]] == usable * 2
    assert all(e.support[0] != e.query and e.support[0] in data.items()[e.category] for e in episodes)


def test_eval_fewshot_pascal5i_bad_input_is_one_error_line(tmp_path, capsys):
    voc = tmp_path / "VOC2012"
    make_voc2012(voc, {"2007_000001": 1, "2007_000002": 1, "2007_000003": 1}, masks="SegmentationClassAug")
    (voc / "JPEGImages" / "2007_000003.jpg").unlink()
    (tmp_path / "no_jpeg.txt").write_text("2007_000001__01\n2007_000003__01\n")
    tool = load_tool("eval_fewshot")
    base = ["--method", "colour", "--shots", "1", "--episodes", "3"]
    (tmp_path / "missing.txt").write_text("2007_000001__01\n2007_999999__01\n")
    (tmp_path / "fold1.txt").write_text("2007_000001__06\n2007_000002__06\n")
    (tmp_path / "bad.txt").write_text("2007_000001__cat\n")
    cases = [
        ([str(tmp_path / "nowhere")], f"PASCAL VOC folder {tmp_path / 'nowhere'} does not exist"),
        ([str(voc), "--fold", "4", "--split-file", str(tmp_path / "fold1.txt")], "--fold must be in 0..3"),
        ([str(voc), "--fold", "-1", "--split-file", str(tmp_path / "fold1.txt")], "--fold must be in 0..3"),
        ([str(voc)], f"{voc / 'ImageSets/Segmentation/val.txt'} does not exist: PASCAL-5i reads VOC2012 val"),
        ([str(voc), "--split-file", str(tmp_path / "nope.txt")], f"{tmp_path / 'nope.txt'} does not exist"),
        ([str(voc), "--split-file", str(tmp_path / "missing.txt")],
         f"lists 2007_999999, but {voc / 'SegmentationClassAug' / '2007_999999.png'} does not exist"),
        ([str(voc), "--split-file", str(tmp_path / "no_jpeg.txt")],
         f"lists 2007_000003, but {voc / 'JPEGImages' / '2007_000003.jpg'} does not exist"),
        ([str(voc), "--split-file", str(tmp_path / "fold1.txt")], "holds no image of fold 0's classes (aeroplane"),
        ([str(voc), "--split-file", str(tmp_path / "bad.txt")], "is neither NAME nor NAME__LABEL"),
    ]
    for extra, message in cases:
        assert tool.main(["pascal5i", *extra, *base]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (extra, err)
    with pytest.raises(SystemExit) as exit_:
        tool.main(["pascal5i", str(voc), "--labels", "colours", *base])
    assert exit_.value.code == 2 and "--labels applies to the synthetic layout only" in capsys.readouterr().err


def test_support_split_has_its_own_seed_space_and_exemplar_vocabularies(tmp_path):
    write_support(tmp_path / "a", 30, WORLD, seed=0)
    write_support(tmp_path / "b", 30, WORLD, seed=0)
    digest = {p.relative_to(tmp_path / "a"): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in (tmp_path / "a").rglob("*") if p.is_file()}  # fmt: skip
    assert digest == {p.relative_to(tmp_path / "b"): hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in (tmp_path / "b").rglob("*") if p.is_file()}  # fmt: skip
    for index in range(30):
        support = support_scene(0, index, WORLD).image
        for split in ("train", "val", "dev"):
            assert not np.array_equal(support, render(scene_rng(0, split, index), WORLD).image)
    support = VOCLayout(tmp_path / "a", "classes.txt")
    assert support.names[1:] == WORLD.kinds and sum(map(len, support.items().values())) >= 30
    exemplars = parse_vocabulary(tmp_path / "a" / "exemplars.txt")
    assert exemplars.names == ("background", *WORLD.kinds) and exemplars.words[1:] == ((),) * 6
    for label, (exemplar,) in enumerate(exemplars.exemplars[1:], 1):
        assert exemplar.mask_id == label and exemplar.foreground.any()
    both = parse_vocabulary(tmp_path / "a" / "text_exemplars_colours.txt")
    assert both.names[1:] == tuple(f"{c} shape" for c in WORLD.colours)
    assert all(words == (name,) and len(ex) == 1 for name, words, ex in zip(both.names[1:], both.words[1:],
                                                                           both.exemplars[1:]))  # fmt: skip


def test_colour_baseline_finds_a_colour_it_was_shown(tmp_path):
    make_fss(tmp_path / "fss", np.random.default_rng(2))
    data = FSS1000(tmp_path / "fss")
    (support,), (query,) = data.items()["zebra"][:1], data.items()["zebra"][1:2]
    prediction = colour_baseline_mask([(data.image(support), data.mask(support, "zebra")[0])], data.image(query))
    truth = data.mask(query, "zebra")[0]
    assert (prediction & truth).sum() / (prediction | truth).sum() > 0.9


def test_eval_fewshot_tool_on_fss_and_the_synthetic_world(tmp_path, sharp_tiny_model, capsys):
    make_fss(tmp_path / "fss", np.random.default_rng(3), per_class=6)
    tool = load_tool("eval_fewshot")
    fss = ["fss1000", str(tmp_path / "fss"), "--method", "colour"]
    assert tool.main([*fss, "--json", str(tmp_path / "scores" / "c.json")]) == 0  # its folder is made
    scores = json.loads((tmp_path / "scores" / "c.json").read_text())
    assert set(scores) >= {"1-shot", "5-shot"} and scores["1-shot"]["episodes"] == 18
    assert scores["5-shot"]["mIoU"] > 90 and set(scores["5-shot"]["per_class"]) == {"bald eagle", "yoyo", "zebra"}
    assert "1-shot: mIoU" in capsys.readouterr().out
    assert tool.main([*fss, "--json", str(tmp_path / "scores")]) == 2  # a folder: refused before the evaluation
    assert capsys.readouterr() == ("", f"error: --json {tmp_path / 'scores'} is a folder; give a file name\n")
    for ignored in (["--fold", "2"], ["--labels", "colours"], ["--bg-thresh", "0.3"], ["--checkpoint", "c"]):
        with pytest.raises(SystemExit) as exit_:  # an option the layout or the method would ignore: refused
            tool.main([*fss, *ignored])
        assert exit_.value.code == 2 and f"error: {ignored[0]} applies to" in capsys.readouterr().err
    assert tool.main([*fss, "--episodes", "0"]) == 2  # not "no class has 1 support images"
    assert capsys.readouterr() == ("", "error: --episodes must be at least 1, got 0\n")

    root = tmp_path / "world"
    write_segmentation(root / "val", 4, WORLD, seed=0)
    write_support(root / "support", 30, WORLD, seed=0)
    checkpoint = groupseg.save_checkpoint(sharp_tiny_model, tmp_path / "ckpt")
    args = ["synthetic", str(root), "--checkpoint", str(checkpoint), "--labels", "colours", "--shots", "1", "2",
            "--json", str(tmp_path / "s.json")]  # fmt: skip
    assert tool.main(args) == 0
    scores = json.loads((tmp_path / "s.json").read_text())
    query = VOCLayout(root / "val", "colours.txt", "SegmentationClassColour")
    assert scores["2-shot"]["episodes"] == sum(map(len, query.items().values()))  # every (image, colour) once
    assert all(0 <= v <= 100 for v in scores["1-shot"]["per_class"].values())

    assert tool.main(["synthetic", str(tmp_path / "nowhere"), "--method", "colour"]) == 2
    assert capsys.readouterr().err.startswith("error: ") and tool.main(["fss1000", str(tmp_path / "fss")]) == 2
    assert "needs --checkpoint" in capsys.readouterr().err
