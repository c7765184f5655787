"""Write small tar shards in img2dataset's webdataset layout (KEY.jpg + KEY.txt + KEY.json), with chosen defects."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

NOUNS = ["dog", "cat", "tree", "car", "boat", "house", "bird", "horse", "chair", "flower", "river", "bridge"]


def image_bytes(seed: int, size: tuple[int, int] = (40, 32), fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def caption(i: int) -> str:
    return f"a photo of a {NOUNS[i % len(NOUNS)]} near the {NOUNS[(i * 5 + 3) % len(NOUNS)]} number {i}"


def write_shard(path: Path, samples: list[dict]) -> None:
    """samples: {"key": str, "jpg"/"png"/...: bytes, "txt": str | bytes, "json": dict (or str | bytes as is)}, written
    in that order."""
    with tarfile.open(path, "w") as tf:
        for s in samples:
            for ext, value in s.items():
                if ext == "key":
                    continue
                if ext == "json" and not isinstance(value, (str, bytes)):
                    value = json.dumps(value)
                data = value.encode() if isinstance(value, str) else value
                info = tarfile.TarInfo(f"{s['key']}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


def make_dataset(
    root: Path,
    num_shards: int,
    per_shard: int,
    defects: bool = False,
    shard_offset: int = 0,
    image_size: tuple[int, int] = (40, 32),
    stats: bool = False,
) -> tuple[list[Path], dict[str, set[str]]]:
    """Shards ``root/{00000..}.tar``; keys as img2dataset makes them (shard id then index). Returns the paths and
    {"valid": keys that must come out, reason: keys skipped for it}. With ``defects``, shard 1 holds one of each:
    a truncated JPEG, a whitespace caption, a non-UTF-8 caption, a missing .txt and a missing image."""
    root.mkdir(parents=True, exist_ok=True)
    paths, keys = [], {"valid": set()}
    for s in range(num_shards):
        samples = []
        for i in range(per_shard):
            sid = s + shard_offset
            key = f"{sid:05d}{i:04d}"
            n = sid * 1000 + i
            sample = {"key": key, "jpg": image_bytes(n, image_size), "txt": caption(n), "json": {"key": key}}
            reason = None
            if defects and s == 1:
                if i == 0:
                    sample["jpg"], reason = sample["jpg"][: len(sample["jpg"]) // 3], "undecodable_image"
                elif i == 1:
                    sample["txt"], reason = "  \n\t ", "empty_caption"
                elif i == 2:
                    sample["txt"], reason = b"\xff\xfe\xfa caption \xc3\x28", "non_text_caption"
                elif i == 3:
                    del sample["txt"]
                    reason = "missing_caption"
                elif i == 4:
                    del sample["jpg"]
                    reason = "missing_image"
            samples.append(sample)
            keys.setdefault(reason or "valid", set()).add(key)
        path = root / f"{s:05d}.tar"
        write_shard(path, samples)
        if stats:
            (root / f"{s:05d}_stats.json").write_text(json.dumps({"count": per_shard, "successes": per_shard}))
        paths.append(path)
    return paths, keys
