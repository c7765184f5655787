"""Video data: the synthetic clips, VIPSeg's layout read back, frames from folders and video files, bad input."""
import json
import struct

import numpy as np
import pytest
from PIL import Image

from groupseg.synthetic.video import VideoConfig, make_clip, panomask, write_clips
from groupseg.synthetic.world import WorldConfig
from groupseg.video import FramesError, OverlayWriter, decode_panomask, list_clips, open_frames, read_categories
from groupseg.video import read_panomask
from helpers_tools import load_tool


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory):
    return write_clips(tmp_path_factory.mktemp("clips") / "video", 4, VideoConfig(frames=12), seed=0)


def test_clips_are_deterministic_and_objects_keep_their_instance_id_kind_and_colour():
    config = VideoConfig(frames=10)
    shapes, frames = make_clip(0, 5, config)
    again_shapes, again = make_clip(0, 5, config)
    assert shapes == again_shapes and all((a.image == b.image).all() for a, b in zip(frames, again))
    for frame in frames:
        for s in shapes:
            mine = frame.instance == s.instance
            assert (frame.kind_mask[mine] == 1 + config.world.kinds.index(s.kind)).all()
            assert (frame.colour_mask[mine] == 1 + config.world.colours.index(s.colour)).all()
        assert ((frame.instance > 0) == (frame.kind_mask > 0)).all()


def test_the_world_of_clips_has_occlusions_entries_and_exits():
    config = VideoConfig(frames=32)
    occluded = entered = left = 0
    for index in range(12):
        shapes, frames = make_clip(0, index, config)
        visible = {s.instance: [(f.instance == s.instance).sum() for f in frames] for s in shapes}
        for s in shapes:
            counts = np.array(visible[s.instance])
            entered += counts[0] == 0 and counts.any()
            left += counts[-1] == 0 and counts.any()
        cross = next((s for s in shapes if s.motion == "cross"), None)
        if cross is not None:  # the crossing object passes over the first one: it loses pixels to it
            first = np.array(visible[1])
            occluded += first.max() > 0 and first.min() < 0.8 * first.max()
    assert occluded >= 4 and entered >= 2 and left >= 2


def test_clips_are_written_in_vipseg_layout_and_read_back(clips_dir):
    clips = list_clips(clips_dir, "val")
    assert [c.name for c in clips] == [f"clip_{i:04d}" for i in range(4)]
    assert len(clips[0].frames) == 12 and clips[0].masks[3].name == "00003.png"
    categories = read_categories(clips_dir / "panoVIPSeg_categories.json")
    names = (clips_dir / "classes.txt").read_text().split()
    assert [c.name for c in categories] == names and [c.isthing for c in categories] == [False] + [True] * 6
    colours = read_categories(clips_dir / "categories_colours.json")
    assert [c.name for c in colours][1:] == [f"{c} shape" for c in WorldConfig().colours]
    shapes, frames = make_clip(0, 2, VideoConfig(frames=12))
    for t in (0, 6, 11):
        semantic, instance = read_panomask(clips[2].masks[t])
        np.testing.assert_array_equal(semantic, frames[t].kind_mask)
        for s in shapes:  # one raw id per object, the same in every frame
            raw_id = (semantic_of(s) + 1) * 100 + s.instance
            assert set(np.unique(instance[frames[t].instance == s.instance])) <= {raw_id}
        assert np.asarray(Image.open(clips[2].frames[t])).shape == (32, 32, 3)
    described = json.loads((clips_dir / "clips.json").read_text())["clip_0002"]
    assert [d["instance"] for d in described] == [s.instance for s in shapes]


def semantic_of(shape):
    return 1 + WorldConfig().kinds.index(shape.kind)


def test_vipseg_panomasks_decode_void_stuff_and_things_as_its_converter_does():
    raw = np.array([[0, 1, 14], [61 * 100 + 1, 61 * 100 + 2, 3 * 100]], np.uint16)
    semantic, instance = decode_panomask(raw)
    assert semantic.tolist() == [[255, 0, 13], [60, 60, 2]]
    assert instance.tolist() == [[0, 1, 14], [6101, 6102, 300]]
    assert (decode_panomask(panomask(np.array([[0, 2]]), np.array([[0, 7]])))[0] == [[0, 2]]).all()


def test_a_generated_vipseg_tree_with_imgs_folder_and_no_split_file_is_read(tmp_path):
    root = tmp_path / "VIPSeg"
    for video, frames in (("12_abc", 3), ("7_xyz", 2)):
        (root / "imgs" / video).mkdir(parents=True)
        (root / "panomasks" / video).mkdir(parents=True)
        for t in range(frames):
            Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / "imgs" / video / f"{t * 5:08d}.jpg")
            Image.fromarray(np.full((6, 8), 6101, np.uint16)).save(root / "panomasks" / video / f"{t * 5:08d}.png")
    categories = [{"id": i, "name": f"c{i}", "isthing": int(i == 60)} for i in range(124)]
    (root / "panoVIPSeg_categories.json").write_text(json.dumps(categories))
    clips = list_clips(root, "val")
    assert [c.name for c in clips] == ["12_abc", "7_xyz"] and len(clips[0].frames) == 3
    assert read_panomask(clips[1].masks[1])[0].max() == 60
    assert sum(c.isthing for c in read_categories(root / "panoVIPSeg_categories.json")) == 1
    (root / "val.txt").write_text("7_xyz\nmissing_video\n")
    with pytest.raises(FramesError, match="missing_video"):
        list_clips(root, "val")
    (root / "panomasks" / "7_xyz" / "00000005.png").unlink()
    with pytest.raises(FramesError, match="has no mask"):
        list_clips(root, "train")
    # VIPSeg_720P's panomasksRGB (colour-coded ids for its COCO-style evaluators) is named, not misread
    (root / "panomasksRGB" / "7_xyz").mkdir(parents=True)
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / "panomasksRGB" / "7_xyz" / "00000000.png")
    with pytest.raises(FramesError, match="3 channels.*not panomasksRGB"):
        read_panomask(root / "panomasksRGB" / "7_xyz" / "00000000.png")


def test_frames_come_from_a_folder_in_natural_order_or_from_a_video_file(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(11)]
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"frame_{i}.png")
    info, frames = open_frames(folder)
    read = list(frames)
    assert [n for n, _ in read] == [f"frame_{i}" for i in range(11)]  # frame_2 before frame_10
    assert all((a == b).all() for (_, a), b in zip(read, images))
    with OverlayWriter(tmp_path / "clip.mp4", fps=12) as writer:
        for image in images:
            writer.write(np.repeat(np.repeat(image, 4, 0), 4, 1))
    info, frames = open_frames(tmp_path / "clip.mp4")
    decoded = list(frames)
    assert len(decoded) == 11 and decoded[0][1].shape == (96, 160, 3) and info.fps == pytest.approx(12)
    assert decoded[3][0] == "000003"
    big = np.repeat(np.repeat(images[3], 4, 0), 4, 1).astype(float)
    assert np.abs(decoded[3][1] - big).mean() < 40  # lossy, but the same picture


def test_a_phone_video_stored_landscape_with_a_rotation_is_read_as_shown(tmp_path):
    """Phones store portrait video as landscape frames and a display matrix (the video's EXIF orientation): frames
    come as players show them, as EXIF-rotated JPEGs in a folder do, so labels line up with what the user sees."""
    frame = np.zeros((24, 40, 3), np.uint8)
    frame[:8, :16] = (255, 0, 0)  # a red block in the stored frame's top-left corner
    plain = tmp_path / "plain.mp4"
    with OverlayWriter(plain, fps=10) as writer:
        for _ in range(3):
            writer.write(frame)
    data = plain.read_bytes()
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    at = data.index(identity, data.index(b"tkhd"))  # the track header's matrix: rotate 90° clockwise to show
    rotated = tmp_path / "phone.mp4"
    rotated.write_bytes(data[:at] + struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
                        + data[at + len(identity):])  # fmt: skip
    _, frames = open_frames(rotated)
    decoded = [rgb for _, rgb in frames]
    assert len(decoded) == 3 and decoded[0].shape == (40, 24, 3)  # portrait, as shown
    red = (decoded[0][..., 0] > 128) & (decoded[0][..., 1] < 128)
    rows, cols = np.nonzero(red)
    assert rows.max() < 18 and cols.min() > 14  # clockwise: the top-left block is now top-right
    _, frames = open_frames(plain)
    assert next(frames)[1].shape == (24, 40, 3)


def test_bad_frame_sources_fail_with_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here")
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_text("this is not a video")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(mixed / "0.png")
    Image.fromarray(np.zeros((8, 9, 3), np.uint8)).save(mixed / "1.png")
    cases = [(empty, "no images"), (bad_video, "cannot read"), (tmp_path / "nothing", "does not exist"),
             (mixed, "9x8 but frame 0 is 8x8")]  # fmt: skip
    for source, message in cases:
        with pytest.raises(FramesError, match=message) as err:
            _, frames = open_frames(source)
            list(frames)
        assert "\n" not in str(err.value)


def test_make_synthetic_writes_clips_beside_the_image_world_and_never_over_them_unasked(tmp_path, capsys):

    tool = load_tool("make_synthetic")
    out = tmp_path / "world"
    assert tool.main([str(out), "--train", "0", "--val", "2", "--set", "image_size=24"]) == 0
    assert tool.main([str(out), "--video", "2", "--video-frames", "3", "--set", "image_size=24"]) == 0
    clips = list_clips(out / "video")
    assert len(clips) == 2 and len(clips[0].frames) == 3 and (out / "val").is_dir()
    assert np.asarray(Image.open(clips[0].frames[0])).shape == (24, 24, 3)
    assert tool.main([str(out), "--video", "1"]) == 2  # the clips are there: not replaced without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert tool.main([str(out), "--video", "1", "--video-frames", "3", "--overwrite"]) == 0
    assert len(list_clips(out / "video")) == 1
    assert tool.main([str(out), "--train", "0", "--val", "1", "--overwrite"]) == 0  # the image world again...
    assert len(list_clips(out / "video")) == 1  # ...leaves the clips alone
    (tmp_path / "a-file").write_text("mine")
    capsys.readouterr()
    assert tool.main([str(tmp_path / "a-file"), "--video", "1", "--video-frames", "2"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'a-file'} exists and is not a folder\n"
    assert (tmp_path / "a-file").read_text() == "mine"
