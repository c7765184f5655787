"""The webdataset pair loader on generated img2dataset-layout shards: skips, patterns, mixing, rank/worker split,
determinism and exact resume."""
from collections import Counter

import pytest
import torch

from groupseg.data.nouns import NounExtractor
from groupseg.data.prompts import TEMPLATES
from groupseg.data.pairs import build_pair_loader, count_samples, estimate_batches_per_epoch, resolve_shards
from groupseg.tokenizer import get_tokenizer
from helpers_shards import make_dataset

EXTRACT = NounExtractor()  # the fallback rule: no warning, same in every environment


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    a_paths, a_keys = make_dataset(root / "a", num_shards=4, per_shard=6, defects=True)
    b_paths, b_keys = make_dataset(root / "b", num_shards=3, per_shard=8, shard_offset=50, stats=True)
    return dict(root=root, a=a_paths, a_keys=a_keys, b=b_paths, b_keys=b_keys)


def load(shards, batch_size=4, num_workers=0, k=2, **kw):
    args = dict(batch_size=batch_size, image_size=32, context_length=24, num_prompts=k, augment="light", seed=0,
                epoch=0, rank=0, world_size=1, num_workers=num_workers, noun_extractor=EXTRACT)  # fmt: skip
    args.update(kw)
    return list(build_pair_loader(shards, **args))


def pattern(paths):
    return str(paths[0].parent / f"{{00000..{len(paths) - 1:05d}}}.tar")


def assert_same(batches1, batches2):
    assert len(batches1) == len(batches2)
    for x, y in zip(batches1, batches2):
        assert x["keys"] == y["keys"] and x["captions"] == y["captions"] and x["skipped"] == y["skipped"]
        assert x["batch_index"] == y["batch_index"]
        assert torch.equal(x["images"], y["images"]) and torch.equal(x["tokens"], y["tokens"])


def test_batches_and_skips_counted_by_reason(data):
    batches = load(pattern(data["a"]))
    valid = data["a_keys"]["valid"]  # 24 samples - 5 defects; the undecodable image is found only when decoding
    assert len(batches) == (len(valid) + 1) // 4
    for i, b in enumerate(batches):
        assert b["batch_index"] == i
        assert b["images"].shape == (4, 3, 32, 32) and b["images"].dtype == torch.float32
        assert b["tokens"].shape == (4, 3, 24) and b["tokens"].dtype == torch.long
        assert len(b["captions"]) == len(b["keys"]) == 4
    total = sum((Counter(b["skipped"]) for b in batches), Counter())
    assert total == {r: 1 for r in ("undecodable_image", "empty_caption", "non_text_caption", "missing_caption",
                                    "missing_image")}  # fmt: skip
    keys = [k for b in batches for k in b["keys"]]
    # every usable sample once; the undecodable one's slot re-uses another sample of its batch
    assert set(keys) == valid and len(keys) == len(valid) + 1
    # the images are normalised: roughly zero-mean, not [0, 1]
    images = torch.cat([b["images"] for b in batches])
    assert images.min() < -1 and images.max() > 1.5


def test_tokens_are_caption_then_noun_prompts(data):
    tok = get_tokenizer(77)

    def norm(text):  # the BPE round trip splits digits and punctuation: compare without spaces
        return "".join(text.lower().split())

    batch = load(pattern(data["a"]), k=3, context_length=77)[0]
    for caption, tokens in zip(batch["captions"], batch["tokens"]):
        texts = [norm(tok.decode([t for t in row.tolist() if t][1:-1])) for row in tokens]
        assert texts[0] == norm(caption)
        allowed = {norm(t(n)) for t in TEMPLATES for n in EXTRACT(caption)} | {norm(caption)}
        assert all(p in allowed for p in texts[1:])
        assert any(p != norm(caption) for p in texts[1:])  # these captions have nouns
    assert load(pattern(data["a"]), k=0)[0]["tokens"].shape == (4, 1, 24)


def test_brace_pattern_list_and_pattern_list_agree(data):
    a = data["a"]
    by_pattern = load(pattern(a))
    by_list = load([str(p) for p in a])
    by_two_patterns = load([str(a[0].parent / "{00000..00001}.tar"), str(a[0].parent / "0000{2,3}.tar")])
    assert_same(by_pattern, by_list)
    assert_same(by_pattern, by_two_patterns)


def test_workers_build_the_same_stream(data):
    """Decoding happens in 2 worker processes; the stream does not depend on num_workers."""
    assert_same(load(pattern(data["a"])), load(pattern(data["a"]), num_workers=2))


def test_deterministic_and_varies_with_seed_and_epoch(data):
    first = load(pattern(data["b"]), augment="reference", image_size=48)
    assert_same(first, load(pattern(data["b"]), augment="reference", image_size=48))
    order = [b["keys"] for b in first]
    assert order != [b["keys"] for b in load(pattern(data["b"]), epoch=1)]
    assert order != [b["keys"] for b in load(pattern(data["b"]), seed=1)]


def test_same_sample_gets_new_augmentation_next_epoch(data):
    one = {k: img for b in load(pattern(data["b"]), batch_size=1) for k, img in zip(b["keys"], b["images"])}
    two = {k: img for b in load(pattern(data["b"]), batch_size=1, epoch=1) for k, img in zip(b["keys"], b["images"])}
    assert one.keys() == two.keys()
    assert sum(not torch.equal(one[k], two[k]) for k in one) > len(one) // 2


def test_start_batch_resumes_exactly_without_processing_skipped_batches(data):
    full = load(pattern(data["a"]), batch_size=3)
    seen = []

    def recording_extractor(caption):
        seen.append(caption)
        return EXTRACT(caption)

    resumed = load(pattern(data["a"]), batch_size=3, start_batch=2, noun_extractor=recording_extractor)
    assert_same(full[2:], resumed)
    assert len(seen) == sum(len(b["captions"]) for b in resumed)  # batches 0 and 1 were never built
    assert_same(full[3:], load(pattern(data["a"]), batch_size=3, start_batch=3, num_workers=2))
    assert load(pattern(data["a"]), batch_size=3, start_batch=len(full)) == []


@pytest.mark.parametrize("world_size, num_workers", [(2, 2), (3, 0)])
def test_ranks_and_workers_cover_each_sample_once(data, world_size, num_workers):
    per_rank = [
        [k for b in load(pattern(data["b"]), batch_size=1, rank=r, world_size=world_size, num_workers=num_workers)
         for k in b["keys"]]
        for r in range(world_size)
    ]  # fmt: skip
    every = [k for keys in per_rank for k in keys]
    assert sorted(every) == sorted(data["b_keys"]["valid"])
    assert all(keys for keys in per_rank)


def test_num_batches_equalises_ranks(data):
    # 3 shards over 2 ranks: rank 0 holds 16 samples, rank 1 holds 8 and must start its shards over
    for rank in (0, 1):
        batches = load(pattern(data["b"]), batch_size=4, rank=rank, world_size=2, num_batches=3)
        assert [b["batch_index"] for b in batches] == [0, 1, 2]
        keys = [k for b in batches for k in b["keys"]]
        assert len(set(keys[:8])) == 8  # no sample twice before the rank's shards are used up
        assert set(keys) <= data["b_keys"]["valid"]  # rank 1 runs short and continues with a new deal of shards
    resumed = load(pattern(data["b"]), batch_size=4, rank=1, world_size=2, num_batches=3, start_batch=1)
    assert_same(load(pattern(data["b"]), batch_size=4, rank=1, world_size=2, num_batches=3)[1:], resumed)


def test_two_datasets_concatenated_or_weighted(data):
    a_valid, b_valid = data["a_keys"]["valid"], data["b_keys"]["valid"]
    concat = load([{"shards": pattern(data["a"])}, {"shards": pattern(data["b"])}], batch_size=1)
    keys = [k for b in concat for k in b["keys"]]
    assert sorted(keys) == sorted(a_valid | b_valid)  # concatenation: every sample once

    weighted = [{"shards": pattern(data["a"]), "weight": 1.0}, {"shards": pattern(data["b"]), "weight": 3.0}]
    mixed = load(weighted, batch_size=1, shuffle_buffer=0)
    keys = [k for b in mixed for k in b["keys"]]
    assert len(keys) == len(set(keys)) and set(keys) <= a_valid | b_valid
    n_a, n_b = len(set(keys) & a_valid), len(set(keys) & b_valid)
    assert n_a > 0 and n_b > 0
    # weighted mixing stops when the first source runs out (here b, drawn 3x as often)
    assert set(keys) >= b_valid and n_a < len(a_valid)
    assert_same(mixed, load(weighted, batch_size=1, shuffle_buffer=0))


def test_counts_from_stats_or_scan(data):
    assert count_samples(pattern(data["b"])) == 24  # from _stats.json
    assert count_samples(pattern(data["a"])) == 24 - 2  # scan: keys with both an image and a caption member
    assert estimate_batches_per_epoch(pattern(data["b"]), batch_size=4, world_size=2) == 3


def test_bad_arguments_are_clear_errors(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="do not exist"):
        load(str(data["root"] / "a" / "{00000..00009}.tar"))
    with pytest.raises(ValueError, match="cannot be split over 5 ranks"):
        load(pattern(data["a"]), world_size=5)
    with pytest.raises(ValueError, match="unknown augment option"):
        load(pattern(data["a"]), augment={"rotate": 3})
    with pytest.raises(ValueError, match="rank"):
        load(pattern(data["a"]), rank=1)
    with pytest.raises(ValueError, match="local"):
        resolve_shards("https://example.com/{0..3}.tar")


def test_damaged_shard_is_counted_not_fatal(data, tmp_path):
    good = data["b"][0].read_bytes()
    (tmp_path / "00000.tar").write_bytes(good)
    (tmp_path / "00001.tar").write_bytes(good[: len(good) // 2])  # truncated mid-shard
    (tmp_path / "00002.tar").write_bytes(b"not a tar file" * 50)
    batches = load(str(tmp_path / "{00000..00002}.tar"), batch_size=2)
    total = sum((Counter(b["skipped"]) for b in batches), Counter())
    assert total["unreadable_shard"] == 2 and len(batches) >= 4


def test_reference_augmentation_survives_posterize_at_full_magnitude():
    """timm's RandAugment asks PIL for 0-bit posterize at magnitude 10 (m9 + noise gets there); Pillow 13 raises."""
    from PIL import Image

    from groupseg.data.pairs import build_train_transform

    transform = build_train_transform("reference", 48)
    names = [type(t).__name__ for t in transform.transforms]
    assert names[:3] == ["RandomResizedCropAndInterpolation", "RandomHorizontalFlip", "RandAugment"]
    assert "ColorJitter" not in names and names[-1] == "RandomErasing"  # timm: no jitter with RandAugment
    posterize = next(op for op in transform.transforms[2].ops if op.name.startswith("Posterize"))
    posterize.magnitude, posterize.magnitude_std, posterize.prob = 10, 0.0, 1.0
    out = posterize(Image.new("RGB", (48, 48), (200, 120, 40)))
    assert out.getextrema() == ((0, 0), (0, 0), (0, 0))


def test_fused_normalisation_is_timms_to_tensor_and_normalize():
    """The loader turns timm's MaybeToTensor + Normalize into one numpy step: the same tensors for RGB images;
    tensors still go through timm's ops."""
    import numpy as np
    from PIL import Image
    from timm.data import create_transform

    from groupseg.data.pairs import build_train_transform

    fused = build_train_transform("light", 32).transforms[-1]
    timm_ops = [t for t in create_transform(input_size=32, is_training=True).transforms
                if type(t).__name__ in ("MaybeToTensor", "Normalize")]  # fmt: skip
    assert type(fused).__name__ == "_ToNormalizedTensor" and len(timm_ops) == 2
    rng = np.random.default_rng(0)
    for image in (Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)),
                  Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).convert("RGB")):  # fmt: skip
        torch.testing.assert_close(fused(image), timm_ops[1](timm_ops[0](image)), rtol=1e-6, atol=1e-6)
    tensor = torch.rand(3, 8, 8)
    torch.testing.assert_close(fused(tensor), timm_ops[1](timm_ops[0](tensor)))


def test_loading_in_process_leaves_global_rngs_alone(data):
    import random

    import numpy as np

    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = draw()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    load(pattern(data["a"]), augment="reference", image_size=48)
    assert draw() == expected


@pytest.mark.parametrize("fmt", ["PAX_FORMAT", "GNU_FORMAT", "USTAR_FORMAT"])
def test_tar_headers_read_like_tarfile(tmp_path, fmt):
    """The loader's own ustar reader agrees with the tarfile module, extension headers included."""
    import io
    import tarfile

    from groupseg.data.pairs import _tar_members

    path = tmp_path / "x.tar"
    long_dir = "d" * 90 + "/" + "e" * 60  # needs the ustar prefix field, or an extension header
    names = ["000000000.jpg", "000000000.txt", f"{long_dir}/000000001.jpg", "ünïcode/000000002.txt", "big.bin"]
    if fmt == "USTAR_FORMAT":
        names[3] = "plain/000000002.txt"
    with tarfile.open(path, "w", format=getattr(tarfile, fmt)) as tf:
        folder = tarfile.TarInfo("a_directory")
        folder.type = tarfile.DIRTYPE
        tf.addfile(folder)
        for i, name in enumerate(names):
            data = bytes([i]) * (700 * i + 3)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with tarfile.open(path) as tf:
        expected = [(m.name, m.offset_data, m.size) for m in tf if m.isreg()]
    with open(path, "rb") as f:
        assert list(_tar_members(f)) == expected
    assert [e[0] for e in expected] == names


def test_png_images_and_text_captions(tmp_path):
    """GroupViT's own YFCC shards use KEY.text; img2dataset can write PNG (--encode_format png)."""
    from helpers_shards import caption, image_bytes, write_shard

    samples = [{"key": f"{i:09d}", "png": image_bytes(i, fmt="PNG"), "text": caption(i)} for i in range(4)]
    write_shard(tmp_path / "00000.tar", samples)
    (batch,) = load(str(tmp_path / "00000.tar"), batch_size=4)
    assert sorted(batch["keys"]) == [s["key"] for s in samples] and batch["skipped"] == {}
    assert sorted(batch["captions"]) == sorted(s["text"] for s in samples)


def _pixels(batch, key):
    """The batch image of ``key`` back in 0-255 (ImageNet mean/std undone), [H, W, 3]."""
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    image = batch["images"][batch["keys"].index(key)]
    return ((image.permute(1, 2, 0) * std + mean) * 255).numpy()


def test_16_bit_alpha_and_exif_orientation_are_read_as_a_viewer_shows_them(tmp_path):
    """PIL's convert('RGB') clips 16-bit gray to white, drops alpha (showing what transparent pixels store) and
    ignores EXIF orientation; training reads them as evaluation's load_rgb and img2dataset do."""
    import io

    import numpy as np
    from PIL import Image

    from helpers_shards import write_shard

    def encode(image, fmt, **kw):
        buf = io.BytesIO()
        image.save(buf, format=fmt, **kw)
        return buf.getvalue()

    gradient = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    hidden_red = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # fully transparent
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:, :32, 0], stored[:, 32:, 2] = 255, 255  # left red, right blue; orientation 6: top red, bottom blue
    exif = Image.Exif()
    exif[0x0112] = 6
    samples = [
        {"key": "gray16", "png": encode(Image.fromarray(gradient), "PNG"), "txt": "a gray gradient"},
        {"key": "alpha", "png": encode(hidden_red, "PNG"), "txt": "a transparent logo"},
        {"key": "turned", "jpg": encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes()),
         "txt": "a phone photo"},
    ]  # fmt: skip
    write_shard(tmp_path / "00000.tar", samples)
    augment = dict(base="light", scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0)  # the (central) square, unscaled
    (batch,) = load(str(tmp_path / "00000.tar"), batch_size=3, k=0, augment=augment)
    assert batch["skipped"] == {}
    gray = _pixels(batch, "gray16")
    np.testing.assert_allclose(gray[..., 0], gradient >> 8, atol=1)  # not clipped to white
    np.testing.assert_allclose(_pixels(batch, "alpha"), 255, atol=1)  # on white, not the stored red
    turned = _pixels(batch, "turned")
    np.testing.assert_allclose(turned[2, 2], [255, 0, 0], atol=40)  # top red
    np.testing.assert_allclose(turned[29, 2], [0, 0, 255], atol=40)  # bottom blue


def test_dotted_keys_and_a_byte_order_mark_give_the_right_samples_and_captions(tmp_path):
    """Keys made from file names keep their dots ("a.b.c.jpg" is key "a.b.c", as other tools write them; the
    first-dot rule merged such samples into one key "a" and skipped it); a UTF-8 BOM is not part of the caption."""
    from helpers_shards import image_bytes, write_shard

    samples = [{"key": "photo.2021.a", "jpg": image_bytes(0), "txt": "\ufeffa dog on a beach"},
               {"key": "photo.2021.b", "jpg": image_bytes(1), "txt": "a cat on a mat", "json": {"k": 1}},
               {"key": "000000002", "jpg": image_bytes(2), "txt": "a bird in a tree"}]  # fmt: skip
    write_shard(tmp_path / "00000.tar", samples)
    (batch,) = load(str(tmp_path / "00000.tar"), batch_size=3)
    assert batch["skipped"] == {}
    assert dict(zip(batch["keys"], batch["captions"])) == {
        "photo.2021.a": "a dog on a beach", "photo.2021.b": "a cat on a mat", "000000002": "a bird in a tree"}
    assert count_samples(str(tmp_path / "00000.tar")) == 3


def test_shard_lists_that_would_mislead_are_refused_in_one_line(data):
    shard = str(data["a"][0])
    with pytest.raises(ValueError, match="listed more than once"):
        resolve_shards([pattern(data["a"]), shard])  # overlapping: shard 0 would be read twice an epoch
    with pytest.raises(ValueError, match=r"is a folder; name its .tar files with a brace pattern"):
        resolve_shards(str(data["a"][0].parent))
    with pytest.raises(FileNotFoundError, match="wildcards are not"):
        resolve_shards(str(data["a"][0].parent / "*.tar"))


def test_caption_only_in_json_is_read_and_txt_is_preferred(tmp_path):
    """img2dataset writes the caption into KEY.json's "caption" too: a key without .txt/.text is read from there
    (.txt wins when both exist); a .json without a caption string, or not JSON, stays a counted skip."""
    from helpers_shards import image_bytes, write_shard

    samples = [
        {"key": "only_json", "jpg": image_bytes(0), "json": {"caption": "a dog from json", "status": "success"}},
        {"key": "both", "jpg": image_bytes(1), "txt": "a cat from txt", "json": {"caption": "a cat from json"}},
        {"key": "null_caption", "jpg": image_bytes(2), "json": {"caption": None}},
        {"key": "not_json", "jpg": image_bytes(3), "json": b"{not json \xff"},
        {"key": "a_list", "jpg": image_bytes(4), "json": "[1, 2]"},
        {"key": "blank", "jpg": image_bytes(5), "json": {"caption": " \n "}},
    ]
    write_shard(tmp_path / "00000.tar", samples)
    batches = load(str(tmp_path / "00000.tar"), batch_size=1, k=0)
    assert {k: c for b in batches for k, c in zip(b["keys"], b["captions"])} == {
        "only_json": "a dog from json", "both": "a cat from txt"}
    total = sum((Counter(b["skipped"]) for b in batches), Counter())
    assert total == {"missing_caption": 3, "empty_caption": 1}
    assert count_samples(str(tmp_path / "00000.tar")) == 3  # a caption string, contents unchecked (as for .txt)


def test_stale_or_malformed_stats_json_is_not_trusted(tmp_path, caplog):
    """A _stats.json that is malformed, or claims more than the shard can hold, is ignored (warned, naming it) and
    the shard is scanned; training's loader (num_batches from the estimate, a worker process) then runs as usual."""
    paths, keys = make_dataset(tmp_path, num_shards=2, per_shard=6, stats=True)
    stats = tmp_path / "00000_stats.json"
    for text in ('{"successes": 1000}', '{"successes": 1e400}', '{"successes": "5"}', '{"successes": 5.5}',
                 '{"successes": -5}', "[5]", '{"successes": 5'):  # fmt: skip
        stats.write_text(text)
        caplog.clear()
        assert count_samples(pattern(paths)) == 12, text
        assert f"ignoring {stats}" in caplog.text, text
    stats.write_text('{"successes": 1000}')
    n = estimate_batches_per_epoch(pattern(paths), batch_size=4)
    batches = load(pattern(paths), num_workers=1, num_batches=n, k=0)
    assert n == 3 and [b["batch_index"] for b in batches] == [0, 1, 2]
    assert {k for b in batches for k in b["keys"]} == keys["valid"]


def test_shards_without_a_usable_sample_are_one_line_errors_not_worker_tracebacks(tmp_path):
    """Stats claiming samples of shards that hold none: a caption-less shard counts 0 (the trainer then stops in one
    line before training); shards whose captions are all empty fail in the loader's worker with one line."""
    from helpers_shards import image_bytes, write_shard

    for name, extra in (("none", {"json": {"key": "x"}}), ("empty", {"txt": "  "})):
        (tmp_path / name).mkdir()
        for s in range(2):
            write_shard(tmp_path / name / f"{s:05d}.tar",
                        [{"key": f"{s:05d}{i:04d}", "jpg": image_bytes(i), **extra} for i in range(6)])  # fmt: skip
            (tmp_path / name / f"{s:05d}_stats.json").write_text('{"count": 6, "successes": 6}')
    assert count_samples(str(tmp_path / "none" / "{00000..00001}.tar")) == 0
    shards = str(tmp_path / "empty" / "{00000..00001}.tar")
    n = estimate_batches_per_epoch(shards, batch_size=4)  # empty captions are only seen when read: 12 samples
    with pytest.raises(ValueError, match=r"hold no usable sample .*skipped: \{'empty_caption': 12\}") as err:
        load(shards, num_workers=1, num_batches=n)
    assert "\n" not in str(err.value) and str(tmp_path / "empty") in str(err.value)


def test_an_error_in_a_loader_worker_does_not_hang_the_exit(tmp_path):
    """Workers ignore a scheduler's SIGTERM (the main process saves a checkpoint first), but not the one by which
    their own process terminates them at exit: a deaf worker hung the exit forever after a loader error."""
    import subprocess
    import sys

    from helpers_shards import image_bytes, write_shard

    write_shard(tmp_path / "00000.tar", [{"key": f"{i:09d}", "jpg": image_bytes(i), "txt": " "} for i in range(4)])
    script = (
        "import sys\nfrom groupseg.data.pairs import build_pair_loader\n"
        f"loader = build_pair_loader({str(tmp_path / '00000.tar')!r}, 2, 32, 24, 0, 'light', 0, 0, 0, 1, 1, "
        "num_batches=2)\n"
        "try:\n    list(loader)\nexcept ValueError as err:\n    sys.exit(f'error: {err}')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.startswith("error: the 1 training shard(s)"), out.stderr[-2000:]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("name", ["00000.tar.gz", "00000.tgz"])
def test_compressed_shards_are_refused_in_one_line(data, tmp_path, name):
    """The loader seeks inside shards, so it cannot read compressed ones: named up front, not counted unreadable."""
    import gzip

    (tmp_path / name).write_bytes(gzip.compress(data["b"][0].read_bytes()))
    with pytest.raises(ValueError, match=rf"{name}' is compressed \(\.t?gz\).*decompress them first \(e\.g\. gunzip"):
        resolve_shards([str(data["b"][0]), str(tmp_path / name)])
