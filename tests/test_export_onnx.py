"""The exported image tower (tools/export.py → ONNX Runtime) gives the eager model's outputs at any size and batch,
drives the zero-shot segmentor and ZeroShotSegmenter to the eager labels, and refuses what it cannot run."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import groupseg
from groupseg.models.checkpoint import CheckpointError
from groupseg.models.export import export_image_tower
from groupseg.models.onnx_tower import OnnxImageTower, use_onnx_tower
from groupseg.models.vision import bicubic_matrix
from groupseg.zeroshot import GroupViTSegmentor
from groupseg.zeroshot.head import seg_logits
from helpers_tools import load_tool

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["background", "cat", "dog", "car", "tree"]


@pytest.fixture(scope="module")
def exported(sharp_tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tower.onnx"
    return export_image_tower(sharp_tiny_model, path, image_size=(48, 40))  # traced off the native 32 px


def test_bicubic_matrices_resize_a_table_as_torch_interpolate_does():
    table = torch.randn(1, 7, 7, 12)
    for size in [(7, 7), (14, 14), (5, 11), (23, 9)]:
        expected = F.interpolate(table.permute(0, 3, 1, 2), size=size, mode="bicubic", align_corners=False)
        got = torch.einsum("hi,bijc,wj->bchw", bicubic_matrix(size[0], 7), table, bicubic_matrix(size[1], 7))
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("batch,size", [(1, (32, 32)), (2, (48, 40)), (3, (40, 56))])
def test_onnx_tower_equals_eager_tower_at_any_size_and_batch(sharp_tiny_model, exported, batch, size):
    tower = OnnxImageTower(exported, model=sharp_tiny_model)
    images = torch.randn(batch, 3, *size)
    with torch.no_grad():
        expected = sharp_tiny_model.forward_image(images)
    got = tower(images)

    assert got.vision.grid == expected.vision.grid == (size[0] // 4, size[1] // 4)
    for name in ("image_embeds", "group_embeds"):
        torch.testing.assert_close(getattr(got, name), getattr(expected, name), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got.vision.tokens, expected.vision.tokens, atol=1e-4, rtol=1e-4)
    assert len(got.vision.assignments) == len(expected.vision.assignments) == 2
    for a, b in zip(got.vision.assignments, expected.vision.assignments):
        torch.testing.assert_close(a.soft, b.soft, atol=1e-5, rtol=1e-4)
        assert torch.equal(a.hard, b.hard)  # the eval-mode one-hot of each token's group
    # the zero-shot head on either output labels every pixel alike
    class_embeds = F.normalize(torch.randn(len(CLASSES), got.image_embeds.shape[1]), dim=-1)
    labels = [seg_logits([a.soft for a in out.vision.assignments], out.vision.grid, out.group_embeds,
                         out.image_embeds, class_embeds, sharp_tiny_model.scale(), size=size, bg_thresh=0.5).argmax(1)
              for out in (got, expected)]  # fmt: skip
    assert torch.equal(labels[0], labels[1])


def test_segmentor_and_single_image_api_with_onnx_backend_give_the_eager_labels(sharp_tiny_model, exported):
    eager = GroupViTSegmentor(model=sharp_tiny_model, vocabulary=CLASSES, test_cfg=dict(mode="slide",
                              crop_size=(32, 32), stride=(16, 16), precision="fp32"))  # fmt: skip
    onnx = GroupViTSegmentor(model=sharp_tiny_model, vocabulary=CLASSES, test_cfg=dict(mode="slide",
                             crop_size=(32, 32), stride=(16, 16), backend="onnx", onnx_path=str(exported)))  # fmt: skip
    assert onnx.test_cfg.precision == "fp32" and onnx._onnx is not None and eager._onnx is None
    images = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        expected, got = eager.slide_inference(images, None), onnx.slide_inference(images, None)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(got.argmax(1), expected.argmax(1)) and got.argmax(1).unique().numel() > 1

    rgb = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    results = [groupseg.ZeroShotSegmenter(sharp_tiny_model, CLASSES[1:], short_side=48, **extra)(rgb)
               for extra in ({"precision": "fp32"}, {"onnx_path": exported})]  # fmt: skip
    assert results[0].labels.shape == (50, 70) and len(np.unique(results[0].labels)) > 1
    np.testing.assert_array_equal(results[1].labels, results[0].labels)


def test_prompt_tools_on_a_model_using_the_onnx_tower_give_the_eager_masks(sharp_tiny_model, exported):
    import copy

    from groupseg.prompts import GroupMaskGenerator, GroupPredictor

    onnx_model = use_onnx_tower(copy.deepcopy(sharp_tiny_model), exported)
    assert isinstance(onnx_model.forward_image, OnnxImageTower)
    rgb = np.random.default_rng(1).integers(0, 256, (44, 60, 3), dtype=np.uint8)
    outputs = []
    for model in (sharp_tiny_model, onnx_model):
        predictor = GroupPredictor(model, short_side=40)
        predictor.set_image(rgb)
        masks, scores = predictor.predict(point_coords=[[30, 20]], point_labels=[1], text="a cat")
        records = GroupMaskGenerator(model, short_side=40).generate(rgb, vocabulary=CLASSES[1:])
        outputs.append((masks, scores, [(r["segmentation"], r["label"]) for r in records]))
    (masks, scores, records), (onnx_masks, onnx_scores, onnx_records) = outputs
    np.testing.assert_array_equal(onnx_masks, masks)
    np.testing.assert_allclose(onnx_scores, scores, atol=1e-4)
    assert len(records) == len(onnx_records) > 1
    for (mask, label), (onnx_mask, onnx_label) in zip(records, onnx_records):
        np.testing.assert_array_equal(onnx_mask, mask)
        assert onnx_label == label


def test_onnx_backend_refuses_a_missing_file_another_models_file_and_options_it_cannot_honour(
    sharp_tiny_model, exported, tmp_path
):
    def build(**test_cfg):
        return GroupViTSegmentor(model=sharp_tiny_model, vocabulary=CLASSES, test_cfg=dict(backend="onnx", **test_cfg))

    with pytest.raises(FileNotFoundError, match="does not exist; write one with: python tools/export.py"):
        build(onnx_path=str(tmp_path / "missing.onnx"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(CheckpointError, match="cannot load ONNX image tower") as err:
        build(onnx_path=str(garbage))
    assert "\n" not in str(err.value)
    other = groupseg.GroupViT(groupseg.build_config("groupvit-tiny")).eval()  # same architecture, other weights
    with pytest.raises(CheckpointError, match="another model's image tower"):
        GroupViTSegmentor(model=other, vocabulary=CLASSES, test_cfg=dict(backend="onnx", onnx_path=str(exported)))
    with pytest.raises(ValueError, match="needs test_cfg.onnx_path"):
        build()
    with pytest.raises(ValueError, match="apply to the torch backend"):
        build(onnx_path=str(exported), compile=True)
    with pytest.raises(ValueError, match="apply to the torch backend"):
        build(onnx_path=str(exported), precision="bf16")
    with pytest.raises(ValueError, match="backend"):  # a ConfigError: the typed test_cfg names the choices
        GroupViTSegmentor(model=sharp_tiny_model, vocabulary=CLASSES, test_cfg=dict(backend="tensorrt"))


def test_export_tool_writes_a_checked_file_and_refuses_bad_input_in_one_line(sharp_tiny_model, tmp_path, capsys):
    tool = load_tool("export")
    checkpoint = groupseg.save_checkpoint(sharp_tiny_model, tmp_path / "ckpt")
    out = tmp_path / "tower.onnx"

    assert tool.main([str(checkpoint), "--out", str(out), "--image-size", "40"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "at 40x40 and 48x56: max |diff|" in printed and "(ok," in printed
    assert OnnxImageTower(out, model=sharp_tiny_model).metadata["groupseg.stages"] == "2"

    before = out.read_bytes()
    cases = [([str(checkpoint), "--out", str(out)], "exists; pass --overwrite"),
             ([str(tmp_path / "nope"), "--out", str(tmp_path / "x.onnx")], "does not exist"),
             ([str(checkpoint), "--out", str(tmp_path)], "is a folder; give a file name"),
             ([str(checkpoint), "--out", str(tmp_path / "x.txt")], "should be a .onnx file"),
             ([str(checkpoint), "--out", str(tmp_path / "y.onnx"), "--image-size", "2"], "at least the patch size")]
    for argv, message in cases:
        assert tool.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert out.read_bytes() == before  # an existing file is never replaced without --overwrite
    assert tool.main([str(checkpoint), "--out", str(tmp_path / "new" / "t.onnx"), "--no-check"]) == 0  # as elsewhere,
    assert (tmp_path / "new" / "t.onnx").is_file()  # the output's folder is made
