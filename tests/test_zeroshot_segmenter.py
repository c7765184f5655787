"""ZeroShotSegmenter on every kind of image input, overlays, and tools/demo.py."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import groupseg
from groupseg.zeroshot import make_palette, overlay
from helpers_tools import load_tool

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = groupseg.GroupViT(groupseg.build_config("groupvit-tiny")).eval()
    with torch.no_grad():  # sharper assignments than a fresh init: several groups per image
        for name, param in model.named_parameters():
            if name.endswith(("assign.q_proj.weight", "assign.k_proj.weight")):
                param.mul_(10)
    return model


@pytest.fixture(scope="module")
def segmenter(model):
    return groupseg.ZeroShotSegmenter(model, "cat, dog, grass", bg_thresh=0.5, short_side=64)


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)


def test_labels_and_scores_at_the_input_size(segmenter, rgb):
    result = segmenter(rgb)
    assert result.classes == ("background", "cat", "dog", "grass")
    assert result.labels.shape == (37, 53) and result.labels.dtype == np.int64
    assert result.scores.shape == (4, 37, 53)
    np.testing.assert_array_equal(result.labels, result.scores.argmax(0))
    assert set(np.unique(result.labels)) <= {0, 1, 2, 3}


def test_grayscale_rgba_pil_and_files_mean_the_same_pixels(segmenter, rgb, tmp_path):
    gray = rgb[..., 0]
    want = segmenter(np.repeat(gray[..., None], 3, axis=2)).labels
    Image.fromarray(gray).save(tmp_path / "gray.png")
    for image in (gray, gray[..., None], Image.fromarray(gray), tmp_path / "gray.png", str(tmp_path / "gray.png")):
        np.testing.assert_array_equal(segmenter(image).labels, want)
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    want = segmenter(rgb).labels
    np.testing.assert_array_equal(segmenter(rgba).labels, want)
    np.testing.assert_array_equal(segmenter(tmp_path / "rgba.png").labels, want)


@pytest.mark.parametrize("shape", [(1, 1), (5, 200), (201, 7), (64, 64)])
def test_any_image_size_whole_and_slide(model, shape):
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    for mode in ("whole", "slide"):
        seg = groupseg.ZeroShotSegmenter(model, ["cat", "dog"], mode=mode, short_side=32, crop_size=32, stride=16)
        assert seg(image).labels.shape == shape


def test_bad_inputs_fail_clearly(segmenter, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image"):
        segmenter(tmp_path / "broken.jpg")
    with pytest.raises(ValueError, match="uint8"):
        segmenter(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="H×W×3"):
        segmenter(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="mode"):
        groupseg.ZeroShotSegmenter(segmenter.segmentor.model, "cat", mode="tiles")
    for side in (0, -3):  # refused when built, not by OpenCV's resize at the first image
        with pytest.raises(ValueError, match="short_side must be a positive number of pixels"):
            groupseg.ZeroShotSegmenter(segmenter.segmentor.model, "cat", short_side=side)


def test_an_image_thinner_than_a_patch_fails_clearly(model):
    """At its own size (short_side=None) a 1×200 image has no row of patches: a ValueError that says so, for target
    images and for exemplars alike, not the convolution's RuntimeError."""
    thin = np.full((1, 200, 3), 128, np.uint8)
    segmenter = groupseg.ZeroShotSegmenter(model, "cat, dog", short_side=None)
    with pytest.raises(ValueError, match=r"image \(200×1 px.*smaller than one 4 px patch"):
        segmenter(thin)
    with pytest.raises(ValueError, match="smaller than one 4 px patch"):
        segmenter.set_classes([groupseg.Exemplar("line", thin, np.ones((1, 200), bool))])
    assert segmenter(np.full((4, 200, 3), 128, np.uint8)).labels.shape == (4, 200)  # one row of patches is enough


def test_whole_mode_equals_the_segmentor_on_the_resized_image(model, rgb):
    """The API adds only loading, resizing (short side) and normalisation around the mmseg segmentor."""
    import cv2

    seg = groupseg.ZeroShotSegmenter(model, ["sky", "tree"], background=False, short_side=64)
    resized = cv2.resize(rgb, (92, 64), interpolation=cv2.INTER_LINEAR)  # 37×53 → 64×round(53·64/37)
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    x = torch.from_numpy(((resized - mean) / std).transpose(2, 0, 1)).float()[None]
    with torch.no_grad():
        logits = seg.segmentor.encode_decode(x)
        logits = torch.nn.functional.interpolate(logits, size=rgb.shape[:2], mode="bilinear", align_corners=False)
    np.testing.assert_allclose(seg(rgb).scores, logits[0].numpy(), atol=1e-5)


def test_overlay_tints_labels_and_leaves_background():
    image = np.full((20, 30, 3), 200, np.uint8)
    labels = np.zeros((20, 30), np.int64)
    labels[5:10, 5:25] = 2
    palette = make_palette(3)
    out = overlay(image, labels, ["background", "cat", "dog"], palette, opacity=0.5)
    assert out.shape[0] >= 20 and out.shape[1] > 30  # legend panel on the right
    np.testing.assert_array_equal(out[:20, :30][labels == 0], image[labels == 0])
    want = np.round(200 * 0.5 + palette[2] * 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out[7, 7], want)
    assert tuple(palette[0]) == (0, 0, 0) and len({tuple(c) for c in make_palette(100)}) == 100


def test_side_by_side_upscales_pixels_and_colours_labels_by_their_legend():
    from groupseg.zeroshot.visualize import side_by_side

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(2)]
    truth = [np.zeros((8, 8), np.uint8), np.full((8, 8), 2, np.uint8)]
    truth[0][2:4, 5:7] = 1
    pred = [np.full((8, 8), 255, np.uint8), truth[1]]  # 255: ignored pixels, drawn white
    palette = make_palette(3)
    out = side_by_side(images, [("truth", truth, "v"), ("predicted", pred, "v")], {"v": (["bg", "a", "b"], palette)},
                       scale=5)  # fmt: skip
    cell, gap, title = 40, 4, 16  # 8 px x 5; the layout side_by_side draws
    top = title + cell + gap  # row 1
    np.testing.assert_array_equal(out[title : title + cell, gap : gap + cell], np.kron(images[0], np.ones((5, 5, 1))))
    np.testing.assert_array_equal(out[title + 2 * 5, gap + cell + gap + 5 * 5], palette[1])  # truth row 0 at (2, 5)
    np.testing.assert_array_equal(out[title + 1, 2 * (cell + gap) + gap + 1], (255, 255, 255))
    np.testing.assert_array_equal(out[top + 3, 2 * (cell + gap) + gap + 3], palette[2])
    assert out.shape[1] == 3 * (cell + gap) + gap and out.shape[0] > title + 2 * (cell + gap)  # legend below
    with pytest.raises(ValueError, match="no legend"):
        side_by_side(images, [("truth", truth, "other")], {"v": (["bg", "a", "b"], palette)})


def test_demo_writes_one_overlay_per_image(model, tmp_path, capsys):
    ckpt = groupseg.save_checkpoint(model, tmp_path / "ckpt")
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (33, 71), dtype=np.uint8)).save(tmp_path / "gray.jpg")
    Image.fromarray(rng.integers(0, 256, (50, 21, 4), dtype=np.uint8)).save(tmp_path / "rgba.png")
    (tmp_path / "broken.jpg").write_bytes(b"junk")
    demo = load_tool("demo")
    images = [str(tmp_path / n) for n in ("gray.jpg", "rgba.png", "broken.jpg")]
    args = ["--vocab", "cat,dog,grass", "--checkpoint", str(ckpt), "--out", str(tmp_path / "out"), "--short-side", "64"]
    assert demo.main([*images, *args]) == 0
    for name, (h, w) in (("gray", (33, 71)), ("rgba", (50, 21))):
        shown = Image.open(tmp_path / "out" / f"{name}.png")
        assert shown.mode == "RGB" and shown.height >= h and shown.width > w
    assert "skipped: cannot read image" in capsys.readouterr().err
    assert demo.main([images[0], "--vocab", "cat,cat", "--checkpoint", str(ckpt)]) == 2
    assert demo.main([images[0], "--vocab", "cat", "--checkpoint", str(tmp_path / "nothing")]) == 2
    capsys.readouterr()
    assert demo.main([images[0], "--vocab", "cat", "--checkpoint", str(ckpt), "--short-side", "0"]) == 2
    assert capsys.readouterr().err == "error: short_side must be a positive number of pixels, got 0\n"
    assert demo.main([images[0], "--vocab", "cat", "--checkpoint", str(ckpt), "--out", images[0]]) == 2  # a file
    assert capsys.readouterr().err == f"error: cannot make the folder {images[0]} (--out): File exists\n"
    no_background = [images[0], "--checkpoint", str(ckpt), "--no-background"]
    assert demo.main([*no_background, "--vocab", "cat,dog", "--bg-thresh", "0.3"]) == 2  # would be ignored
    assert "--bg-thresh has no effect with --no-background" in capsys.readouterr().err
    assert demo.main([*no_background, "--vocab", "background,cat,dog"]) == 2  # the option says there is none
    assert "the vocabulary starts with 'background'" in capsys.readouterr().err
