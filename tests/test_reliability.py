"""No lost work, no code execution, one-line errors: every item of the bad-input audit (issue 16), as a user meets it.

Tools run in-process through their ``main(argv)`` on data the tests write; training runs are tiny. The kill / SIGTERM
and resume guarantees are in tests/test_train.py.
"""
import json
import os
import pickle
import resource
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import groupseg
from groupseg.engine import ConfigError, TrainingDiverged, WorkDirInUse, load_config, train
from groupseg.engine.checkpointing import (
    CheckpointWriteError,
    UnhealthyWeights,
    check_weights,
    last_good_checkpoint,
    save_training_checkpoint,
)
from groupseg.engine.config import training_config
from groupseg.models.checkpoint import CheckpointError
from groupseg.engine.trainer import schedule
from groupseg.synthetic.world import WorldConfig, write_segmentation
from helpers_shards import make_dataset
from helpers_tools import REPO, load_tool

SYNTHETIC_TEST = str(REPO / "configs/synthetic/zeroshot_synthetic.py")


@pytest.fixture(scope="module")
def checkpoint(tiny_model, tmp_path_factory) -> str:
    return str(groupseg.save_checkpoint(tiny_model, tmp_path_factory.mktemp("ckpt") / "tiny"))


@pytest.fixture()
def world_val(tmp_path) -> Path:
    """A held-out synthetic set (PASCAL VOC layout, 7 shape labels) of 3 images, 32 px."""
    return write_segmentation(tmp_path / "world" / "val", 3, WorldConfig(image_size=32), seed=0)


def eval_args(val: Path, work: Path) -> list[str]:
    return ["--work-dir", str(work), "--cfg-options", f"test_dataloader.dataset.data_root={val}",
            "test_dataloader.num_workers=0"]  # fmt: skip


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("shards")
    make_dataset(root, num_shards=2, per_shard=24, image_size=(40, 36))
    return str(root / "{00000..00001}.tar")


def tiny_training(shards: str, **train_options) -> dict:
    return dict(
        model=dict(preset="groupvit-tiny", context_length=24),
        data=dict(train=shards, batch_size=8, image_size=32, num_prompts=2, augment="light", num_workers=0),
        optimizer=dict(lr=3e-3, warmup_steps=1, scale_lr=False),
        train={**dict(max_steps=2, seed=0, log_interval=1, ckpt_interval=2, device="cpu"), **train_options},
    )


# -- 1. code execution ---------------------------------------------------------------------------------------------
class RunsACommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused_by_mmengines_loader_and_by_tools_test(tmp_path, world_val, checkpoint,
                                                                                  capsys):  # fmt: skip
    from mmengine.runner.checkpoint import _load_checkpoint

    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": RunsACommand(marker)}, evil)
    with pytest.raises(pickle.UnpicklingError, match="(?i)unsupported global"):
        _load_checkpoint(str(evil), map_location="cpu")
    assert not marker.exists()
    code = load_tool("test").main([SYNTHETIC_TEST, checkpoint, *eval_args(world_val, tmp_path / "work"),
                                   f"load_from={evil}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "refusing to load" in err and "posix.system" in err and not marker.exists()
    assert "HistoryBuffer" not in str(torch.serialization.get_safe_globals())  # the allow-list is scoped, not global


# -- 2. a work dir with a previous run -----------------------------------------------------------------------------
def test_a_work_dir_holding_a_run_is_refused_unless_resumed_or_overwritten(tmp_path, shards):
    work = tmp_path / "run"
    train(training_config(tiny_training(shards)), work)
    before = {p: p.read_bytes() for p in work.rglob("*") if p.is_file() and "tb" not in p.parts}
    with pytest.raises(WorkDirInUse, match=r"--resume.*--work-dir.*--overwrite"):
        train(training_config(tiny_training(shards)), work)
    assert {p: p.read_bytes() for p in work.rglob("*") if p.is_file() and "tb" not in p.parts} == before
    (work / "notes.txt").write_text("mine")
    train(training_config(tiny_training(shards, max_steps=1, ckpt_interval=1)), work, overwrite=True)
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["latest", "step_00000001"]
    assert [json.loads(line)["step"] for line in (work / "metrics.jsonl").read_text().splitlines()] == [1]
    assert (work / "notes.txt").read_text() == "mine"  # --overwrite deletes the run's outputs, nothing else


def test_overwrite_deletes_nothing_when_the_new_run_cannot_start(tmp_path, shards):
    work = tmp_path / "run"
    train(training_config(tiny_training(shards)), work)
    before = {p: p.read_bytes() for p in work.rglob("*") if p.is_file() and "tb" not in p.parts}
    with pytest.raises(FileNotFoundError, match="training shards do not exist"):
        train(training_config(tiny_training(str(tmp_path / "nope" / "00000.tar"))), work, overwrite=True)
    with pytest.raises(ConfigError, match="global batch"):
        train(training_config({**tiny_training(shards), "data": {**tiny_training(shards)["data"], "batch_size": 64}}),
              work, overwrite=True)  # fmt: skip
    assert {p: p.read_bytes() for p in work.rglob("*") if p.is_file() and "tb" not in p.parts} == before


def test_old_checkpoints_are_pruned_by_step_number_not_by_name(tmp_path, tiny_model):
    ckpts = tmp_path / "checkpoints"
    for step in (99_999_999, 100_000_000):  # 'step_100000000' sorts before 'step_99999999' by name
        save_training_checkpoint(ckpts, step, tiny_model, {"step": step}, keep_last=1)
    assert [p.name for p in ckpts.glob("step_*")] == ["step_100000000"]
    assert (ckpts / "latest").read_text().strip() == "step_100000000"


# -- 3. checkpoint writers never replace what they did not write ----------------------------------------------------
def test_convert_and_init_checkpoint_refuse_to_replace_anything_but_a_checkpoint(tmp_path, checkpoint, capsys):
    convert, init = load_tool("convert_checkpoint"), load_tool("init_checkpoint")
    other = tmp_path / "other_run"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8 not really a jpeg")
    for dst in (other, other / "model.safetensors", photo):
        assert convert.main([checkpoint, str(dst)]) == 2
        assert init.main([str(REPO / "configs/train/groupvit_tiny_debug.py"), str(dst)]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert convert.main([checkpoint, str(photo / "sub")]) == 2  # under a file: named, not "[Errno 17] File exists"
    assert init.main([str(REPO / "configs/train/groupvit_tiny_debug.py"), str(photo / "sub" / "x")]) == 2
    assert capsys.readouterr().err.count(f"{photo} is a file, so the checkpoint directory") == 2
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"] and (other / "notes.txt").read_text() == "keep me"
    assert photo.read_bytes() == b"\xff\xd8 not really a jpeg"
    assert convert.main([checkpoint, str(tmp_path / "new")]) == 0
    assert convert.main([checkpoint, str(tmp_path / "new")]) == 2  # a checkpoint is replaced only when asked
    assert "--overwrite" in capsys.readouterr().err
    assert convert.main([checkpoint, str(tmp_path / "new"), "--overwrite"]) == 0
    assert init.main([str(REPO / "configs/train/groupvit_tiny_debug.py"), str(tmp_path / "new"), "--overwrite"]) == 0
    capsys.readouterr()
    for device, message in (("foo", "is not one torch knows"), ("cuda", "torch sees no GPU")):
        if device == "cuda" and torch.cuda.is_available():
            continue
        assert convert.main([checkpoint, str(tmp_path / "on_device"), "--device", device]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "on_device").exists()
        with pytest.raises(ValueError, match=message):
            groupseg.load_model(checkpoint, device)


# -- 4. the demo never writes over an input -------------------------------------------------------------------------
def test_demo_never_overwrites_an_input_or_an_unrelated_file_and_names_outputs_uniquely(tmp_path, checkpoint):
    rng = np.random.default_rng(0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    photos = [tmp_path / "photo.png", tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.png"]
    for path in photos:
        Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).save(path)
    unrelated = tmp_path / "x.png"
    unrelated.write_bytes(b"someone else's file")
    before = {p: p.read_bytes() for p in photos}
    args = [*map(str, photos), "--vocab", "cat,dog", "--checkpoint", checkpoint, "--out", str(tmp_path),
            "--short-side", "32"]  # fmt: skip
    demo = load_tool("demo")
    assert demo.main(args) == 0
    assert {p: p.read_bytes() for p in photos} == before and unrelated.read_bytes() == b"someone else's file"
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == ["photo.png", "photo_overlay.png", "x.png", "x_overlay.png", "x_overlay_2.png"]
    assert demo.overlay_paths(list(map(str, photos)), str(tmp_path)) == [
        str(tmp_path / n) for n in ("photo_overlay.png", "x_overlay.png", "x_overlay_2.png")
    ]  # a re-run writes to the same names: its own earlier overlays are the only files it replaces


# -- 5 and 16. the synthetic world's generator ----------------------------------------------------------------------
def test_make_synthetic_refuses_a_non_empty_folder_and_bad_settings_without_leaving_files(tmp_path, capsys):
    make = load_tool("make_synthetic")
    out = tmp_path / "world"
    base = [str(out), "--train", "0", "--val", "2", "--workers", "1"]
    assert make.main([*base, "--seed", "1"]) == 0
    assert "{00000..-0001}" not in capsys.readouterr().out
    first = (out / "val" / "world.json").read_text()
    assert make.main([*base, "--seed", "2"]) == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "val" / "world.json").read_text() == first
    assert make.main([*base, "--seed", "2", "--overwrite"]) == 0
    assert json.loads((out / "val" / "world.json").read_text())["seed"] == 2
    for bad in ("image_size=abc", "size_range=(0.7,0.45)", "p_frame=2"):
        fresh = tmp_path / bad.split("=")[0]
        assert make.main([str(fresh), "--train", "4", "--val", "1", "--set", bad, "--workers", "1"]) == 2
        assert not fresh.exists()
    for video in ([], ["--video", "1"]):
        assert make.main([str(tmp_path / "seed"), "--train", "4", "--val", "1", "--seed", "-1", *video]) == 2
        assert not (tmp_path / "seed").exists()
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 5 and all(line.startswith("error: ") for line in errors)
    assert [p.name for p in tmp_path.iterdir()] == ["world"]  # no partial folder left anywhere


# -- 6. typed configs -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "option, message",
    [
        ({"train.max_step": 10}, "unknown config key train.max_step: did you mean train.max_steps?"),
        ({"optimizer.lrr": 1}, "unknown config key optimizer.lrr: did you mean optimizer.lr?"),
        ({"trian.max_steps": 4}, "unknown config key trian: did you mean train?"),
        ({"data.batchsize": 4}, "unknown config key data.batchsize: did you mean data.batch_size?"),
        ({"model.vision_widht": 64}, "unknown config key model.vision_widht: did you mean model.vision_width?"),
        ({"data.batch_size": "abc"}, "data.batch_size must be an integer, got str 'abc'"),
        ({"optimizer.lr": -1}, "optimizer.lr must be in (0, inf), got -1.0"),
        ({"train.precision": "fp64"}, "train.precision must be one of 'auto', 'fp32', 'bf16', 'fp16'"),
        ({"train.device": "gpu"}, "train.device must be one of 'auto', 'cpu', 'cuda'"),
    ],
)
def test_training_config_refuses_typos_wrong_types_and_ranges_in_one_line(option, message):
    with pytest.raises(ConfigError) as err:
        load_config(str(REPO / "configs/synthetic/groupvit_synthetic.py"), option)
    assert str(err.value).endswith(message) or message in str(err.value)
    assert "\n" not in str(err.value)


def test_every_training_config_loads_and_its_dump_loads_back_the_same(tmp_path):
    from groupseg.engine.trainer import _dump_config

    configs = sorted((REPO / "configs").rglob("*.py"))
    training = [p for p in configs if "zeroshot" not in p.parts and "_base_" not in p.parts
                and not p.name.startswith("zeroshot_")]  # fmt: skip
    assert len(training) >= 4
    for path in training:
        cfg = load_config(str(path))
        _dump_config(cfg, tmp_path / "dumped.py")
        assert load_config(str(tmp_path / "dumped.py")) == cfg, path
    synthetic = load_config(str(REPO / "configs/synthetic/groupvit_synthetic.py"))
    assert (synthetic.train.max_steps, synthetic.optimizer.warmup_lr, synthetic.data.num_workers) == (1000, 1e-5, 1)
    assert synthetic.optimizer.weight_decay == 0.05 and synthetic.train.keep_last == 2


def test_train_tool_prints_a_config_typo_as_one_line(capsys):
    code = load_tool("train").main([str(REPO / "configs/synthetic/groupvit_synthetic.py"), "--cfg-options",
                                    "train.max_step=10"])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err == "error: unknown config key train.max_step: did you mean train.max_steps?\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_train_tool_on_cuda_without_a_gpu_is_one_line(tmp_path, shards, capsys):
    code = load_tool("train").main([str(REPO / "configs/synthetic/groupvit_synthetic.py"), "--work-dir",
                                    str(tmp_path / "run"), "--cfg-options", "train.device=cuda",
                                    f"data.train={shards}", "data.batch_size=8"])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err == "error: device 'cuda': torch sees no GPU here (use 'cpu' or 'auto')\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "test_cfg, message",
    [
        (dict(bg_threshh=0.9), "model.test_cfg.bg_threshh: did you mean model.test_cfg.bg_thresh?"),
        (dict(mdoe="slide"), "model.test_cfg.mdoe: did you mean model.test_cfg.mode?"),
        (dict(mode="slid"), "model.test_cfg.mode must be one of 'whole', 'slide'"),
        (dict(crop_size=(0, 32)), "model.test_cfg.crop_size must be positive"),
    ],
)
def test_zero_shot_test_cfg_refuses_typos(tiny_model, test_cfg, message):
    from groupseg.zeroshot import GroupViTSegmentor

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        GroupViTSegmentor(model=tiny_model, vocabulary=["background", "cat"], test_cfg=test_cfg)


def test_tools_test_reports_a_test_cfg_typo_before_the_run(tmp_path, world_val, checkpoint, capsys):
    code = load_tool("test").main([SYNTHETIC_TEST, checkpoint, *eval_args(world_val, tmp_path / "work"),
                                   "model.test_cfg.bg_threshh=0.9"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2 and "did you mean model.test_cfg.bg_thresh?" in captured.err
    assert "System environment" not in captured.out + captured.err


@pytest.mark.parametrize(
    "option, message",
    [
        ("test_dataloadr.dataset.data_root=x", "error: unknown config key test_dataloadr: did you mean test_datal"),
        ("data_root=x", "error: --cfg-options data_root: data_root is a variable of the config file"),
        ("test_dataloader.dataset.data_rot=x", "error: BaseSegDataset.__init__() got an unexpected keyword argument"),
        ("test_dataloader.batchsize=2", "error: DataLoader.__init__() got an unexpected keyword argument 'batchsize'"),
        ("model.tst_cfg.mode=whole", "error: GroupViTSegmentor.__init__() got an unexpected keyword argument"),
    ],
)
def test_tools_test_refuses_cfg_options_that_change_nothing_or_no_class_takes(tmp_path, world_val, checkpoint,
                                                                             capsys, option, message):  # fmt: skip
    code = load_tool("test").main([SYNTHETIC_TEST, checkpoint, *eval_args(world_val, tmp_path / "work"), option])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("option", ["--out", "--show-dir", "--json"])
def test_tools_test_reports_an_output_path_it_cannot_write_before_the_run(tmp_path, world_val, checkpoint, capsys,
                                                                          option):  # fmt: skip
    in_the_way = tmp_path / ("a-folder" if option == "--json" else "a-file")
    in_the_way.mkdir() if option == "--json" else in_the_way.write_text("mine")
    code = load_tool("test").main([SYNTHETIC_TEST, checkpoint, option, str(in_the_way),
                                   *eval_args(world_val, tmp_path / "work")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and option in err and len(err.splitlines()) == 1, err
    assert in_the_way.is_dir() if option == "--json" else in_the_way.read_text() == "mine"


# -- 7. vocabularies that do not fit the labels ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "vocab, message",
    [
        ("background,circle,square", "holds label id 6, but the vocabulary has 3 classes"),
        ("", "--vocab is empty"),
        ("my_names", "vocabulary file my_names does not exist"),
    ],
)
def test_a_vocabulary_that_cannot_label_the_dataset_is_refused(tmp_path, world_val, checkpoint, capsys, vocab,
                                                               message):  # fmt: skip
    if "label id 6" in message:
        mask = world_val / "SegmentationClass" / "val_000000.png"  # make sure the last label (heart, 6) is present
        labels = np.array(Image.open(mask))
        labels[:2, :2] = 6
        Image.fromarray(labels).save(mask)
    code = load_tool("test").main([SYNTHETIC_TEST, checkpoint, "--vocab", vocab,
                                   *eval_args(world_val, tmp_path / "work")])  # fmt: skip
    assert code == 2 and message in capsys.readouterr().err


# -- 8. background threshold ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [1.5, -1, float("nan"), "0.5"])
def test_bg_thresh_outside_0_1_is_refused_by_the_api(tiny_model, value):
    with pytest.raises(ValueError, match=r"bg_thresh must be a number in \[0, 1\]"):
        groupseg.ZeroShotSegmenter(tiny_model, "cat,dog", bg_thresh=value)


@pytest.mark.parametrize("tool", ["test", "demo"])
@pytest.mark.parametrize("value", ["1.5", "-1", "nan"])
def test_bg_thresh_outside_0_1_is_refused_by_the_tools(tool, value, capsys):
    args = ["config.py", "ckpt"] if tool == "test" else ["photo.jpg", "--vocab", "cat"]
    with pytest.raises(SystemExit) as exit_:
        load_tool(tool).parse_args([*args, "--bg-thresh", value])
    assert exit_.value.code == 2 and "must be a number in [0, 1]" in capsys.readouterr().err


# -- 9. 16-bit images -----------------------------------------------------------------------------------------------
def test_16_bit_png_is_scaled_to_8_bits_as_the_evaluation_pipeline_reads_it(tmp_path):
    import mmcv

    from groupseg.zeroshot import load_rgb

    gradient = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491
    Image.fromarray(gradient).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I;16")
    rgb = load_rgb(tmp_path / "gray16.png")
    assert (rgb == 255).mean() < 0.01  # not saturated
    np.testing.assert_array_equal(rgb[..., 0], (gradient >> 8).astype(np.uint8))
    pipeline = mmcv.imfrombytes((tmp_path / "gray16.png").read_bytes(), flag="color", channel_order="rgb")
    np.testing.assert_array_equal(rgb, pipeline)  # what tools/test.py's LoadImageFromFile reads
    np.testing.assert_array_equal(load_rgb(gradient), rgb)


def test_a_float_tiff_is_refused_in_one_line_not_read_as_black(tmp_path, tiny_model, capsys):
    """A 32-bit float image (0-1, as numpy writes them) has no fixed range: PIL's convert would read it as black."""
    from groupseg.zeroshot import load_rgb

    Image.fromarray(np.linspace(0, 1, 48 * 64, dtype=np.float32).reshape(48, 64), "F").save(tmp_path / "depth.tif")
    with pytest.raises(ValueError, match=r"cannot read image .*depth.tif: the pixels are 32-bit floats"):
        load_rgb(tmp_path / "depth.tif")
    groupseg.save_checkpoint(tiny_model, tmp_path / "ckpt")
    code = load_tool("demo").main([str(tmp_path / "depth.tif"), "--vocab", "cat,dog", "--checkpoint",
                                   str(tmp_path / "ckpt"), "--out", str(tmp_path / "out"), "--short-side", "32"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("skipped: cannot read image") and "\n" not in err


# -- 10. a batch larger than the data -------------------------------------------------------------------------------
def test_a_global_batch_larger_than_the_dataset_is_refused(shards):
    cfg = training_config(tiny_training(shards))
    cfg.data.batch_size = 64  # 48 samples in the shards
    with pytest.raises(ConfigError, match=r"global batch \(64 x 1 rank\(s\) = 64\) is larger than the 48 samples"):
        schedule(cfg, world_size=1)


def test_shards_without_a_usable_sample_are_named_not_blamed_on_the_batch_size(tmp_path):
    from helpers_shards import image_bytes, write_shard

    write_shard(tmp_path / "00000.tar", [{"key": "k0", "jpg": image_bytes(0), "json": {"caption": None}}])
    with pytest.raises(ConfigError, match="holds no sample with both an image .* and a caption"):
        schedule(training_config(tiny_training(str(tmp_path / "00000.tar"))), world_size=1)


def test_training_on_shards_whose_images_never_decode_stops_in_one_line_not_an_endless_loop(tmp_path, capsys):
    """Every batch is dropped, so every epoch is empty: the loop used to go on to the next epoch forever."""
    from helpers_shards import caption, image_bytes, write_shard

    broken = [{"key": f"k{i}", "jpg": image_bytes(i)[:150], "txt": caption(i)} for i in range(8)]
    write_shard(tmp_path / "00000.tar", broken)
    cfg = tiny_training(str(tmp_path / "00000.tar"))
    cfg["data"]["batch_size"] = 4
    with pytest.raises(ValueError, match="epoch 0 of data.train yielded no batch: no image of its samples decodes"):
        train(training_config(cfg), tmp_path / "run")

# -- 11. diverged weights are never a "good" checkpoint ---------------------------------------------------------------
def test_diverged_weights_are_not_checkpointed_and_the_named_good_checkpoint_predates_the_failure(tmp_path, shards,
                                                                                                  capsys):  # fmt: skip
    model = groupseg.GroupViT(groupseg.build_config("groupvit-tiny"))
    check_weights(model)
    with torch.no_grad():
        model.text_encoder.token_embedding.weight[0, 0] = 3e29  # a finite loss can hide this (LayerNorm follows)
    with pytest.raises(UnhealthyWeights, match="3e\\+29"):
        check_weights(model)
    work = tmp_path / "run"
    cfg = tiny_training(shards, max_steps=3, ckpt_interval=1)
    cfg["optimizer"].update(lr=1e30, warmup_steps=0)  # the first update sends the weights to ~1e30
    with pytest.raises(TrainingDiverged):
        train(training_config(cfg), work)
    assert not list((work / "checkpoints").glob("step_*"))  # nothing unusable was saved ...
    assert "the last good checkpoint is none" in capsys.readouterr().err  # ... nor named as good
    for step in (1, 2):
        save_training_checkpoint(work / "checkpoints", step, groupseg.GroupViT(groupseg.build_config("groupvit-tiny")),
                                 {"step": step})  # fmt: skip
    assert last_good_checkpoint(work / "checkpoints", before_step=2).name == "step_00000001"  # step 3 ran on step_2


# -- 12, 13, 17. tools/test.py checks before the run ----------------------------------------------------------------
def test_a_missing_label_png_is_one_line_before_the_run(tmp_path, world_val, checkpoint, capsys):
    (world_val / "SegmentationClass" / "val_000001.png").unlink()
    code = load_tool("test").main([SYNTHETIC_TEST, checkpoint, *eval_args(world_val, tmp_path / "work")])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.startswith("error: label PNG") and "1 of 3 labels are missing" in captured.err
    assert "Traceback" not in captured.err and "System environment" not in captured.out + captured.err


def test_a_label_png_of_another_size_than_its_image_is_one_line(tmp_path, world_val, checkpoint, capsys):
    Image.fromarray(np.zeros((20, 32), np.uint8)).save(world_val / "SegmentationClass" / "val_000002.png")
    code = load_tool("test").main([SYNTHETIC_TEST, checkpoint, *eval_args(world_val, tmp_path / "work")])
    err = capsys.readouterr().err
    assert code == 2 and "is 32x20 but its image" in err and "is 32x32" in err and err.count("\n") == 1


def test_an_unreadable_checkpoint_is_reported_before_the_runner_starts(tmp_path, world_val, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"format": "groupseg", "model": {"image_size": 32}}))
    (broken / "model.safetensors").write_bytes(b"truncated")
    code = load_tool("test").main([SYNTHETIC_TEST, str(broken), *eval_args(world_val, tmp_path / "work")])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.startswith(f"error: {broken} is a broken groupseg checkpoint")
    assert captured.err.count("\n") == 1 and "System environment" not in captured.out + captured.err


# -- 15. a work dir that cannot be written --------------------------------------------------------------------------
def test_a_failed_checkpoint_write_leaves_no_partial_files_and_latest_valid(tmp_path, tiny_model):
    ckpts = tmp_path / "checkpoints"
    save_training_checkpoint(ckpts, 1, tiny_model, {"step": 1})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))  # writes past 64 KiB fail (EFBIG), like a full disk
    try:
        with pytest.raises(CheckpointWriteError) as err:
            save_training_checkpoint(ckpts, 2, tiny_model, {"step": 2, "pad": torch.zeros(1 << 16)})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert "could not write checkpoint" in str(err.value) and "File too large" in str(err.value)
    assert "latest checkpoint is still" in str(err.value) and "step_00000001" in str(err.value)
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step_00000001"]  # no .tmp_step_* left behind
    assert groupseg.load_model(ckpts / "latest").config == tiny_model.config


def test_train_tool_reports_an_unwritable_work_dir_in_one_line(tmp_path, shards, capsys):
    config = tmp_path / "tiny.py"
    config.write_text("\n".join(f"{k} = {v!r}" for k, v in tiny_training(shards).items()))
    (tmp_path / "a_file").write_text("")
    code = load_tool("train").main([str(config), "--work-dir", str(tmp_path / "a_file" / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "a_file" in err


# -- 19 (and 14). `latest` and a work dir stand for the run's latest checkpoint ----------------------------------
def test_load_model_and_tools_follow_latest_and_a_work_dir(tmp_path, tiny_model, world_val, capsys):
    ckpts = tmp_path / "run" / "checkpoints"
    for step in (4, 8):
        save_training_checkpoint(ckpts, step, tiny_model, {"step": step})
    for path in (ckpts / "latest", tmp_path / "run", ckpts):
        model = groupseg.load_model(path)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), tiny_model.state_dict().values()))
    (ckpts / "latest").write_text("step_00000099\n")
    with pytest.raises(CheckpointError, match="names 'step_00000099'"):
        groupseg.load_model(tmp_path / "run")
    (ckpts / "latest").write_text("step_00000008\n")
    out = tmp_path / "results" / "deep" / "metrics.json"  # 14: a folder that does not exist yet is created
    code = load_tool("test").main([SYNTHETIC_TEST, str(ckpts / "latest"), "--json", str(out),
                                   *eval_args(world_val, tmp_path / "work")])  # fmt: skip
    assert code == 0, capsys.readouterr().err[-2000:]
    assert json.loads(out.read_text())["images"] == 3


def test_resume_takes_a_latest_pointer_or_a_work_dir_as_load_model_does(tmp_path, shards):
    first = tmp_path / "first"
    train(training_config(tiny_training(shards, max_steps=2, ckpt_interval=1)), first)
    (first / "checkpoints" / "latest").write_text("step_00000001")  # continue from step 1, in another work dir
    for i, source in enumerate((first / "checkpoints" / "latest", first)):
        work = tmp_path / f"continued_{i}"
        last = train(training_config(tiny_training(shards, max_steps=2, ckpt_interval=1)), work, resume=str(source))
        assert last.name == "step_00000002"
        assert [json.loads(line)["step"] for line in (work / "metrics.jsonl").read_text().splitlines()] == [2]
