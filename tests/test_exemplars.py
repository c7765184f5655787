"""Exemplars: the pooled embedding, vocabularies with exemplars, their errors, and both tools that use them
(tools/test.py with an exemplar vocabulary, tools/incontext.py)."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import groupseg
from groupseg.prompts.exemplars import Exemplar, ExemplarError, exemplar_embeddings, pool_groups
from groupseg.zeroshot import VocabularyError, class_embeddings, parse_vocabulary
from groupseg.zeroshot.head import group_maps, pixel_groups
from groupseg.zeroshot.single_image import IMAGENET_MEAN, IMAGENET_STD
from helpers_tools import REPO, load_tool


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def labels():
    """A label map with two classes (ids 3 and 7) and VOC's ignore value."""
    mask = np.zeros((40, 52), np.uint8)
    mask[4:22, 6:30] = 3
    mask[25:38, 28:50] = 7
    mask[22, :] = 255
    return mask


def tower_by_hand(model, rgb):
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    x = (torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() - mean) / std
    with torch.no_grad():
        return model.forward_image(x[None])


def test_pooling_weights_each_group_by_the_share_of_it_under_the_mask():
    embeds = F.normalize(torch.randn(3, 8), dim=-1)
    groups = torch.zeros(4, 4, dtype=torch.long)  # group 0: top half, group 1: bottom left, group 2: bottom right
    groups[2:, :2], groups[2:, 2:] = 1, 2
    maps = F.one_hot(groups, 3).permute(2, 0, 1)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:2] = True  # all of group 0
    mask[2, :2] = True  # half of group 1, none of group 2
    want = F.normalize(1.0 * embeds[0] + 0.5 * embeds[1], dim=-1)
    torch.testing.assert_close(pool_groups(embeds, maps, mask), want)
    soft = torch.full((3, 4, 4), 1 / 3)  # every pixel one third in each group: every group half under the mask
    torch.testing.assert_close(pool_groups(embeds, soft, mask), F.normalize(embeds.sum(0), dim=-1))


def test_exemplar_embedding_equals_the_direct_computation(sharp_tiny_model, image, labels):
    model = sharp_tiny_model
    out = tower_by_hand(model, image)
    soft = [a.soft for a in out.vision.assignments]
    groups = pixel_groups(soft, out.vision.grid, labels.shape)[0]
    maps = group_maps(soft, out.vision.grid, labels.shape)[0]  # [G, H, W], each pixel's weights sum to 1
    for mask_id in (3, 7):
        mask = torch.from_numpy(labels == mask_id)
        hard = torch.stack([(mask & (groups == g)).sum() / (groups == g).sum().clamp(min=1)
                            for g in range(out.group_embeds.shape[1])]).float()  # fmt: skip
        soft_weights = (maps * mask).sum(dim=(1, 2)) / maps.sum(dim=(1, 2))
        assert (hard > 0).any() and (hard < 1).any() and not torch.allclose(hard, soft_weights, atol=1e-3)
        exemplar = Exemplar("x", image, labels, mask_id)
        for coverage, weights in (("hard", hard), ("soft", soft_weights)):
            want = F.normalize(weights @ out.group_embeds[0], dim=-1)
            got = exemplar_embeddings(model, [exemplar], coverage=coverage)[0]
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
        torch.testing.assert_close(exemplar_embeddings(model, [exemplar])[0], got)  # soft is the default
    # a scale resizes the image fed to the tower (as mmseg's test pipeline would); the mask keeps its own size
    big = exemplar_embeddings(model, [Exemplar("x", image, labels, 3)], scale=(2048, 64))
    assert not torch.allclose(big, exemplar_embeddings(model, [Exemplar("x", image, labels, 3)]), atol=1e-4)


def test_an_exemplar_over_one_segment_finds_that_segment(sharp_tiny_model, image):
    """The head gives each segment its nearest class: an exemplar whose mask is exactly a segment has that
    segment's own embedding, so segmenting the same image paints that segment with the exemplar's class."""
    model = sharp_tiny_model
    out = tower_by_hand(model, image)
    groups = pixel_groups([a.soft for a in out.vision.assignments], out.vision.grid, image.shape[:2])[0].numpy()
    used, counts = np.unique(groups, return_counts=True)
    assert len(used) >= 2
    a, b = used[np.argsort(-counts)[:2]]
    exemplars = [Exemplar("a", image, groups == a), Exemplar("b", image, groups == b)]
    hard = exemplar_embeddings(model, exemplars, coverage="hard")
    torch.testing.assert_close(hard[0], out.group_embeds[0, a], rtol=0, atol=1e-5)
    result = groupseg.ZeroShotSegmenter(model, exemplars, background=False, short_side=None, precision="fp32")(image)
    assert (result.labels[groups == a] == 0).all() and (result.labels[groups == b] == 1).all()


def test_text_and_exemplars_of_one_class_average_half_and_half(sharp_tiny_model, image, labels):
    model = sharp_tiny_model
    one, two = Exemplar("dog", image, labels, 3), Exemplar("dog", image, labels, 7)
    vocab = parse_vocabulary(["background", "cat", "dog", one, two])
    assert vocab.names == ("background", "cat", "dog") and vocab.words[2] == ("dog",)
    assert vocab.exemplars == ((), (), (one, two))
    got = class_embeddings(model, vocab)
    text = class_embeddings(model, parse_vocabulary(["cat", "dog"]))
    pooled = exemplar_embeddings(model, [one, two])
    exemplar_part = F.normalize(pooled.mean(0), dim=-1)
    torch.testing.assert_close(got[0], text[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1], F.normalize(text[1] + exemplar_part, dim=-1), rtol=0, atol=1e-6)
    exemplar_only = class_embeddings(model, parse_vocabulary([Exemplar("cat", image, labels, 7), one, two]))
    torch.testing.assert_close(exemplar_only, torch.stack([pooled[1], exemplar_part]), rtol=0, atol=1e-6)


def test_vocabulary_files_and_strings_read_exemplars(tmp_path, image, labels):
    (tmp_path / "ex").mkdir()
    Image.fromarray(image).save(tmp_path / "ex/pets.png")
    mask = Image.fromarray(labels, mode="P")
    mask.putpalette([0, 0, 0, 255, 0, 0] * 128)
    mask.save(tmp_path / "ex/pets_mask.png")
    path = tmp_path / "vocab.txt"
    path.write_text("background\ncat\ndog: exemplar=ex/pets.png mask=ex/pets_mask.png id=3\n"
                    "Dog: exemplar='ex/pets.png' mask=ex/pets_mask.png id=7  # a second example\n")  # fmt: skip
    vocab = parse_vocabulary(path)
    assert vocab.names == ("background", "cat", "dog") and vocab.words == (("background",), ("cat",), ())
    assert [e.mask_id for e in vocab.exemplars[2]] == [3, 7] and vocab.has_exemplars
    np.testing.assert_array_equal(vocab.exemplars[2][0].foreground, labels == 3)
    assert parse_vocabulary(vocab.to_config()) == vocab  # absolute paths: readable from anywhere
    as_string = f"background; cat; dog: exemplar={tmp_path}/ex/pets.png mask={tmp_path}/ex/pets_mask.png id=3"
    assert parse_vocabulary(as_string).exemplars[2] == vocab.exemplars[2][:1]
    in_memory = parse_vocabulary(["cat", Exemplar("dog", image, labels, 3)])
    assert parse_vocabulary(in_memory) == in_memory  # arrays stay objects in the config form
    with pytest.raises(VocabularyError, match="duplicate"):
        parse_vocabulary(["cat", "dog", Exemplar("dog", image, labels, 3), "dog"])


def write_pair(folder, image, labels):
    Image.fromarray(image).save(folder / "a.jpg", quality=95)
    Image.fromarray(labels).save(folder / "a.png")
    return folder / "a.jpg", folder / "a.png"


def test_a_voc_mask_with_one_class_and_its_void_border_is_that_class(image, labels):
    """VOC masks carry a 255 border: beside one class id it is ignored (as incontext.py reads it); alone, 0/255."""
    one_class = np.where(labels == 7, 0, labels)  # ids 0, 3 and the 255 border
    mask = Exemplar("a", image, one_class)._load()[1]
    assert np.array_equal(mask, labels == 3)
    assert np.array_equal(Exemplar("a", image, (labels == 3).astype(np.uint8) * 255)._load()[1], labels == 3)
    soft = np.linspace(0, 255, labels.size).reshape(labels.shape).astype(np.uint8)  # an antialiased 0-255 mask
    with pytest.raises(ExemplarError, match=r"soft 0-255 mask\? threshold it first"):
        Exemplar("a", image, soft)


def test_a_mask_drawn_on_an_exif_rotated_photo_as_stored_is_refused_with_the_reason(tmp_path, image, labels):
    """Phones store portrait photos as landscape pixels plus an EXIF orientation; images are read upright, so a mask
    drawn on the stored pixels is the image's size turned: the error says so, and the upright mask works."""
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90° clockwise
    Image.fromarray(image).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    Image.fromarray(labels).save(tmp_path / "stored.png")
    with pytest.raises(ExemplarError, match=r"is 52×40 but the image is 40×52 \(upright, as its EXIF orientation"):
        Exemplar("a", tmp_path / "phone.jpg", tmp_path / "stored.png", mask_id=3)._load()
    Image.fromarray(np.ascontiguousarray(np.rot90(labels, -1))).save(tmp_path / "upright.png")
    mask = Exemplar("a", tmp_path / "phone.jpg", tmp_path / "upright.png", mask_id=3)._load()[1]
    assert np.array_equal(mask, np.rot90(labels, -1) == 3)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_a_mask_with_alpha_is_unlabelled_where_transparent(tmp_path, image, labels, mode):
    """Editors keep a colour under transparent pixels (often white): the mask is what is shown, not that colour."""
    region = labels == 3
    gray = np.full(labels.shape, 255, np.uint8)  # white everywhere; only the alpha draws the region
    alpha = np.where(region, 255, 0).astype(np.uint8)
    channels = [gray, gray, gray, alpha] if mode == "RGBA" else [gray, alpha]
    Image.fromarray(np.stack(channels, axis=-1), mode).save(tmp_path / "painted.png")
    assert np.array_equal(Exemplar("a", image, tmp_path / "painted.png")._load()[1], region)
    ids = np.where(labels == 255, 0, labels)  # a label map with ids 3 and 7, opaque: read as before
    rgba = np.stack([ids, ids, ids, np.full_like(ids, 255)], axis=-1)
    assert np.array_equal(Exemplar("a", image, rgba, mask_id=7)._load()[1], labels == 7)


@pytest.mark.parametrize(
    "case, message",
    [
        ("size", r"mask .*a.png is 40×20 but the image is 52×40"),
        ("empty", "is empty"),
        ("missing id", r"no pixels with id 5 \(its ids: 0, 3, 7, 255\)"),
        ("several ids", r"holds several labels \(3, 7\); choose one"),
        ("unreadable image", "cannot read image"),
        ("unreadable mask", "cannot read mask"),
    ],
)
def test_bad_exemplars_are_one_line_errors(tmp_path, image, labels, case, message):
    img_path, mask_path = write_pair(tmp_path, image, labels)
    mask_id = 3
    if case == "size":
        Image.fromarray(labels[:20, :40]).save(mask_path)
    elif case == "empty":
        Image.fromarray(np.zeros_like(labels)).save(mask_path)
        mask_id = None
    elif case == "missing id":
        mask_id = 5
    elif case == "several ids":
        mask_id = None
    elif case == "unreadable image":
        img_path.write_bytes(b"not an image")
    else:
        mask_path.write_text("not a png")
    with pytest.raises(ExemplarError, match=message) as err:
        Exemplar("dog", img_path, mask_path, mask_id)
    assert "\n" not in str(err.value) and "'dog'" in str(err.value)
    entry = f"dog: exemplar={img_path} mask={mask_path}" + ("" if mask_id is None else f" id={mask_id}")
    with pytest.raises(VocabularyError, match=message):
        parse_vocabulary(["background", entry])


@pytest.mark.parametrize(
    "entry, message",
    [
        ("dog: exemplar=a.jpg", "has no mask"),
        ("dog: exemplar=a.jpg mask=a.png colour=red", "cannot read 'colour=red'"),
        ("dog: exemplar=a.jpg mask=a.png id=three", "id must be an integer"),
        ("background: exemplar=a.jpg mask=a.png", "takes no exemplars"),
    ],
)
def test_malformed_exemplar_entries_say_how_to_write_them(tmp_path, image, labels, monkeypatch, entry, message):
    monkeypatch.chdir(tmp_path)
    write_pair(tmp_path, image, labels)
    with pytest.raises(VocabularyError, match=message):
        parse_vocabulary(["background", "cat", entry])


def numpy_miou(pred_dir, gt_paths, num_classes):
    inter, union = np.zeros(num_classes), np.zeros(num_classes)
    for gt_path in gt_paths:
        gt = np.array(Image.open(gt_path))
        pred = np.array(Image.open(Path(pred_dir) / gt_path.name))
        assert pred.shape == gt.shape
        valid = gt != 255
        for k in range(num_classes):
            p, g = (pred == k) & valid, (gt == k) & valid
            inter[k] += (p & g).sum()
            union[k] += (p | g).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.round(np.nanmean(inter / union) * 100, 2))


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    from groupseg.synthetic.support import write_support
    from groupseg.synthetic.world import WorldConfig, write_segmentation

    root = tmp_path_factory.mktemp("world")
    world = WorldConfig(image_size=32)
    write_segmentation(root / "val", 6, world, seed=0)
    write_support(root / "support", 40, world, seed=0)
    return root


@pytest.fixture(scope="module")
def checkpoint(sharp_tiny_model, tmp_path_factory):
    return str(groupseg.save_checkpoint(sharp_tiny_model, tmp_path_factory.mktemp("ckpt") / "tiny"))


@pytest.mark.parametrize("vocab", ["exemplars.txt", pytest.param("text_exemplars.txt", marks=pytest.mark.slow)])
def test_exemplar_vocabularies_through_tools_test(tiny_world, checkpoint, tmp_path, capsys, vocab):
    val = tiny_world / "val"
    code = load_tool("test").main([
        str(REPO / "configs/synthetic/zeroshot_synthetic.py"), checkpoint,
        "--vocab", str(tiny_world / "support" / vocab),
        "--bg-thresh", "0.5", "--out", str(tmp_path / "pred"), "--work-dir", str(tmp_path / "work"),
        "--cfg-options", f"test_dataloader.dataset.data_root={val}", "test_dataloader.num_workers=0",
    ])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    printed = float(re.search(r"^mIoU: ([0-9.]+)", out.out, re.M).group(1))
    gts = sorted((val / "SegmentationClass").glob("*.png"))
    assert printed == numpy_miou(tmp_path / "pred", gts, 7)
    assert len(list((tmp_path / "pred").glob("*.png"))) == len(gts)


def test_bad_exemplar_vocabulary_stops_tools_test_with_one_line(tiny_world, checkpoint, tmp_path, capsys):
    vocab = tmp_path / "bad.txt"
    vocab.write_text("background\ncircle: exemplar=nowhere.jpg mask=nowhere.png\n" +
                     "".join(f"c{i}\n" for i in range(5)))  # fmt: skip
    config = str(REPO / "configs/synthetic/zeroshot_synthetic.py")
    code = load_tool("test").main([config, checkpoint, "--vocab", str(vocab), "--cfg-options",
                                   f"test_dataloader.dataset.data_root={tiny_world / 'val'}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: exemplar 'circle': cannot read image") and err.count("\n") == 1


def test_incontext_tool_segments_targets_like_the_prompt_pairs(tiny_world, checkpoint, sharp_tiny_model, tmp_path,
                                                               capsys):
    support, val = tiny_world / "support", tiny_world / "val"
    pairs = [(support / "JPEGImages" / f"support_{i:06d}.jpg", support / "SegmentationClass" / f"support_{i:06d}.png")
             for i in (0, 1, 2)]  # fmt: skip
    targets = sorted((val / "JPEGImages").glob("*.jpg"))[:3]
    prompt_args = [a for image, mask in pairs for a in ("--prompt-image", str(image), "--prompt-mask", str(mask))]
    tool = load_tool("incontext")
    code = tool.main([*prompt_args, *map(str, targets), "--checkpoint", checkpoint, "--out", str(tmp_path / "out"),
                      "--show-dir", str(tmp_path / "show"), "--bg-thresh", "0.5"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    ids = sorted({int(i) for _, mask in pairs for i in np.unique(np.array(Image.open(mask))) if i})
    # the same classes by hand: one exemplar per (pair, id), pairs of one id averaged, background by threshold
    exemplars = [Exemplar(f"id {i}", image, mask, i) for i in ids for image, mask in pairs
                 if (np.array(Image.open(mask)) == i).any()]  # fmt: skip
    segmenter = groupseg.ZeroShotSegmenter(sharp_tiny_model, exemplars, bg_thresh=0.5, bg_score="cosine",
                                           short_side=None)  # fmt: skip
    assert segmenter.classes == ("background", *(f"id {i}" for i in ids))
    for target in targets:
        written = np.array(Image.open(tmp_path / "out" / f"{target.stem}.png"))
        assert written.shape == np.array(Image.open(target)).shape[:2]
        np.testing.assert_array_equal(written, np.array([0, *ids])[segmenter(target).labels])
        assert (tmp_path / "show" / f"{target.stem}.png").is_file()
    assert set(np.unique(written)) <= {0, *ids}


def test_incontext_tool_refuses_bad_input_with_one_line(tiny_world, checkpoint, tmp_path, capsys):
    support = tiny_world / "support"
    image, mask = support / "JPEGImages/support_000000.jpg", support / "SegmentationClass/support_000000.png"
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(empty)
    target = tmp_path / "t.png"
    Image.open(image).save(target)
    tool = load_tool("incontext")
    cases = [
        (["--prompt-image", str(image), str(target)], "give them in pairs"),
        (["--prompt-image", str(image), "--prompt-mask", str(empty), str(target)], "has no labelled pixels"),
        (["--prompt-image", str(image), "--prompt-mask", str(tmp_path / "no.png"), str(target)], "cannot read mask"),
    ]
    for args, message in cases:
        assert tool.main([*args, "--checkpoint", checkpoint, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    before = target.read_bytes()
    assert tool.main(["--prompt-image", str(image), "--prompt-mask", str(mask), str(target), "--checkpoint",
                      checkpoint, "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "is an input" in capsys.readouterr().err and target.read_bytes() == before
    pair = ["--prompt-image", str(image), "--prompt-mask", str(mask), str(target), "--checkpoint", checkpoint]
    for option in ("--out", "--show-dir"):  # a file where the folder goes
        out = ["--out", str(tmp_path / "o"), option, str(empty)] if option == "--show-dir" else ["--out", str(empty)]
        assert tool.main([*pair, *out]) == 2
        assert capsys.readouterr().err == f"error: cannot make the folder {empty} ({option}): File exists\n"
