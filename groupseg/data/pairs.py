"""Image–caption training pairs from img2dataset webdataset shards: a deterministic, resumable stream of batches,
split over ranks and DataLoader workers.

Shards are plain ``.tar`` files in img2dataset's ``--output_format webdataset`` layout: consecutive members
``KEY.jpg`` (or ``.jpeg``/``.png``/``.webp``) and ``KEY.txt`` (or ``.text``, as in the reference's YFCC shards),
optionally ``KEY.json``, whose "caption" string (img2dataset writes the caption there too) is the caption of a key
without ``.txt``/``.text``. Compressed shards (``.tar.gz``, ...) are refused: the loader seeks inside shards. How a
rank's stream is made, and why it resumes exactly:

1. Shards. Each dataset's shard list is shuffled by (seed, epoch), the same order on every rank, and dealt out
   round-robin: shard ``i`` of the shuffled list goes to rank ``i % world_size``.
2. Scan. The rank's shards are read in that order, tar headers and the small caption members only; image bytes
   are seeked over. A sample with a missing member or an unusable caption becomes a counted skip here.
3. Shuffle buffer of ``shuffle_buffer`` sample records (metadata, not pixels) seeded by (seed, epoch, rank), like the
   reference's 10k-sample webdataset buffer; it is emptied at the end of each pass over the rank's shards.
4. Windows. Consecutive groups of ``batch_size`` records are the rank's batches 0, 1, 2, ... A skip is counted in
   the batch whose window was being filled when it was met; skips after the last full window go to the last
   batch; the last partial window is dropped.
5. Workers. Every DataLoader worker replays steps 1-4 (metadata only, cheap) and builds only the batches it owns:
   batch ``j`` belongs to worker ``(j - start_batch) % num_workers``, the order DataLoader hands batches out in.
   Decoding happens once per sample, and batches before ``start_batch`` are never decoded: resuming costs a scan.
6. Per-sample randomness (crop, RandAugment, erasing, prompt choice) is seeded from (seed, epoch, shard name, key),
   never from a worker's RNG state.

So the stream is a function of (seed, epoch, rank, world_size) only; it does not even depend on num_workers.

Training sizes an epoch (``num_batches``) from ``count_samples``: img2dataset's ``<shard>_stats.json`` where present.
That count is an estimate (a rank that runs short starts a new pass); a stats file that is malformed or plainly
stale is ignored, with a warning naming it, and the shard scanned instead.

An undecodable image is only found while decoding, after the batch boundaries are fixed: its slot is refilled with
a fresh augmentation of another sample of the same batch (the image is still counted as skipped), so batches are
exactly ``batch_size`` and boundaries never depend on decoding. img2dataset re-encodes every image it writes, so
this is rare. If no image of a batch decodes, that batch is dropped (counted, and logged): the one case in which
a resumed run can differ from an uninterrupted one.

Why not webdataset's pipeline: step 2 needs each member's offset, to seek over the images that other workers (or a
resume) skip, and exact per-reason counts; webdataset's tar iterator reads every byte and its handlers warn and
continue without counting. So tar headers are read here (``_tar_members``: plain ustar headers directly, anything
else through the standard ``tarfile`` module), and webdataset expands the shard patterns (braces, ``::`` lists).
"""
from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import os
import random
import signal
import tarfile
import threading
from collections import Counter, OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.shardlists import expand_urls

from ..tokenizer import tokenize
from .images import eight_bit
from .prompts import make_prompts

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
CAPTION_EXTS = ("txt", "text")
_READ_EXTS = frozenset((*IMAGE_EXTS, *CAPTION_EXTS, "json"))
_DECOMPRESS = {"gz": "gunzip", "tgz": "gunzip", "bz2": "bunzip2", "xz": "unxz", "zst": "unzstd"}  # shard -> .tar
SKIP_REASONS = (
    "missing_image",  # a key with a caption but no image member
    "missing_caption",  # an image with no .txt/.text member, and no .json with a "caption" string
    "empty_caption",  # caption empty or whitespace only
    "non_text_caption",  # caption bytes are not UTF-8 text (or contain NUL)
    "undecodable_image",  # PIL could not decode the image bytes
    "unreadable_shard",  # a shard (or its remainder) that is not a readable plain tar: counts shards, not samples
)

# Keyword arguments of timm.data.create_transform, the function the reference calls. As in timm (and therefore in
# the reference run), colour jitter is skipped whenever RandAugment is on.
AUGMENT_PRESETS: dict[str, dict[str, Any]] = {
    "reference": dict(scale=(0.08, 1.0), hflip=0.5, color_jitter=0.4, auto_augment="rand-m9-mstd0.5-inc1",
                      interpolation="bilinear", re_prob=0.25, re_mode="pixel", re_count=1),
    "light": dict(scale=(0.5, 1.0), hflip=0.5, color_jitter=None, auto_augment=None, interpolation="bilinear",
                  re_prob=0.0),
}  # fmt: skip
AUGMENT_KEYS = frozenset(
    {"scale", "ratio", "hflip", "vflip", "color_jitter", "auto_augment", "interpolation", "re_prob", "re_mode",
     "re_count", "mean", "std"}
)  # fmt: skip


def build_train_transform(augment: str | Mapping[str, Any], image_size: int) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> normalised float tensor [3, S, S] (ImageNet mean/std unless overridden).

    ``augment`` is a preset name ("reference": RandomResizedCrop(0.08-1) + flip + RandAugment m9 + random erasing
    0.25, "light": RandomResizedCrop(0.5-1) + flip), or a dict of ``timm.data.create_transform`` options laid over
    the preset named by its "base" entry (default "light"), e.g. ``{"base": "reference", "re_prob": 0.0}``.
    """
    from timm.data import create_transform

    if isinstance(augment, str):
        if augment not in AUGMENT_PRESETS:
            raise ValueError(f"unknown augment preset {augment!r}: use one of {sorted(AUGMENT_PRESETS)} or a dict")
        cfg = dict(AUGMENT_PRESETS[augment])
    else:
        augment = dict(augment)
        base = augment.pop("base", "light")
        if base not in AUGMENT_PRESETS:
            raise ValueError(f"unknown augment base {base!r}; choose from {sorted(AUGMENT_PRESETS)}")
        unknown = set(augment) - AUGMENT_KEYS
        if unknown:
            allowed = ", ".join(["base", *sorted(AUGMENT_KEYS)])
            raise ValueError(f"unknown augment option(s) {sorted(unknown)}; allowed: {allowed}")
        cfg = {**AUGMENT_PRESETS[base], **augment}
    transform = create_transform(input_size=image_size, is_training=True, **cfg)
    transform.transforms = _fuse_to_tensor_normalize(transform.transforms)
    for t in transform.transforms:
        for op in getattr(t, "ops", ()):  # timm RandAugment ops
            if getattr(op, "name", "").startswith("Posterize"):
                op.aug_fn = _posterize
    return transform


class _ToNormalizedTensor:
    """``MaybeToTensor`` then ``Normalize`` for PIL images in one numpy expression: the two torch ops cost ~10x more
    per image at the synthetic world's 32 px (per-op overhead). Tensors in pass through both ops as before."""

    def __init__(self, to_tensor: Callable, normalize: Callable):
        self.to_tensor, self.normalize = to_tensor, normalize
        self.mean = np.asarray(normalize.mean, np.float32).reshape(-1) * 255
        self.inv_std = 1 / (np.asarray(normalize.std, np.float32).reshape(-1) * 255)

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        if not isinstance(image, Image.Image) or image.mode != "RGB" or self.mean.shape != (3,):
            return self.normalize(self.to_tensor(image))
        pixels = (np.asarray(image, np.float32) - self.mean) * self.inv_std
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_tensor!r}, {self.normalize!r})"


def _fuse_to_tensor_normalize(transforms: list) -> list:
    from torchvision.transforms import Normalize

    out = []
    for t in transforms:
        if isinstance(t, Normalize) and out and type(out[-1]).__name__ in ("MaybeToTensor", "ToTensor"):
            out[-1] = _ToNormalizedTensor(out[-1], t)
        else:
            out.append(t)
    return out


def _posterize(img: Image.Image, bits_to_keep: int, **_: Any) -> Image.Image:
    """timm's posterize op, which asks for 0 bits at magnitude 10 (m9 + noise reaches it): Pillow < 13 returned a
    black image for that, as in the reference run; Pillow 13 raises. Keep the old result."""
    from PIL import ImageOps

    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits_to_keep)


# ----------------------------------------------------------------------------------------------------- shard lists
@dataclass(frozen=True)
class ShardSource:
    """One dataset: its shard paths and its mixing weight (None: concatenated with the others)."""

    shards: tuple[str, ...]
    weight: float | None = None


def resolve_shards(shards: str | Sequence[str | Mapping[str, Any]]) -> list[ShardSource]:
    """Expand patterns into sources. Plain patterns (and dicts without "weight") are concatenated into one source,
    every sample once per epoch, as the reference mixes its datasets. If any dict has a "weight", each dict is its
    own source and the rank's stream interleaves them at random in proportion to the weights (missing weight = 1)
    until the first of them runs out."""
    items = [shards] if isinstance(shards, (str, os.PathLike)) else list(shards)
    if not items:
        raise ValueError("no training shards given")
    entries: list[tuple[list[str], float | None]] = []
    for item in items:
        if isinstance(item, Mapping):
            unknown = set(item) - {"shards", "weight"}
            if unknown or "shards" not in item:
                raise ValueError(f"a shard entry is {{'shards': pattern, 'weight': w}}; got keys {sorted(item)}")
            patterns, weight = item["shards"], item.get("weight")
        else:
            patterns, weight = item, None
        patterns = [patterns] if isinstance(patterns, (str, os.PathLike)) else list(patterns)
        paths = [p for pattern in patterns for p in expand_urls(os.fspath(pattern))]
        if weight is not None and not float(weight) > 0:
            raise ValueError(f"shard weights must be > 0; got {weight} for {patterns}")
        entries.append((paths, None if weight is None else float(weight)))
    every = [p for paths, _ in entries for p in paths]
    remote = [p for p in every if "://" in p or p.startswith("pipe:")]
    if remote:
        raise ValueError(f"only local shard files are supported (the loader seeks inside them); got {remote[0]!r}")
    folders = [p for p in every if os.path.isdir(p)]
    if folders:
        raise ValueError(
            f"training shard {folders[0]!r} is a folder; name its .tar files with a brace pattern, e.g. "
            f"'{os.path.join(folders[0], '{00000..00099}.tar')}' (data/README.md, 'Training data')"
        )
    for p in every:  # tarfile would read them, but only front to back: the loader seeks inside shards
        ext = p.rsplit(".", 1)[-1].lower()
        if ext in _DECOMPRESS:
            raise ValueError(
                f"training shard {p!r} is compressed (.{ext}); the loader seeks inside shards, so they must be plain "
                f".tar files: decompress them first (e.g. {_DECOMPRESS[ext]} {p}) and name the .tar files"
            )
    seen: set[str] = set()
    for p in every:
        real = os.path.realpath(p)
        if real in seen:
            raise ValueError(
                f"training shard {p!r} is listed more than once (overlapping patterns?), so its samples would be "
                "read twice per epoch; list each shard once (to weight a dataset: dict(shards=..., weight=w))"
            )
        seen.add(real)
    missing = [p for p in every if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(every)} training shards do not exist, e.g. {missing[:3]}; check the pattern "
            + ("(brace ranges such as {00000..00099} are expanded, '*' and '?' wildcards are not) "
               if any(c in p for p in missing for c in "*?[") else "")
            + "and see data/README.md ('Training data') for the expected layout"
        )
    if all(w is None for _, w in entries):
        return [ShardSource(tuple(every))]
    return [ShardSource(tuple(paths), 1.0 if w is None else w) for paths, w in entries]


# ------------------------------------------------------------------------------------------------------- scanning
@dataclass(frozen=True)
class _Record:
    path: str
    key: str
    caption: str
    offset: int  # image bytes inside the tar file
    size: int
    uid: tuple[int, int]  # from (shard name, key): seeds this sample's randomness
    pass_: int  # repeat pass (num_batches mode), part of the seed


def _shard_name(path: str) -> str:
    """The last two path components, so seeds survive moving the data root."""
    head, tail = os.path.split(os.path.normpath(path))
    return f"{os.path.basename(head)}/{tail}"


def _uid(name: str, key: str) -> tuple[int, int]:
    h = int.from_bytes(hashlib.blake2b(f"{name}/{key}".encode(), digest_size=8).digest(), "little")
    return h & 0xFFFFFFFF, h >> 32


def _tar_members(f) -> Iterator[tuple[str, int, int]]:
    """(name, data offset, size) of each regular file of a plain tar, in order. Plain ustar headers are parsed here
    (checksum verified): tarfile spends ~50 us per member and every worker scans every header; anything else (pax
    or GNU long-name headers, old v7 tars) is resolved by tarfile from the same offset."""
    offset, end = 0, os.fstat(f.fileno()).st_size
    while True:
        f.seek(offset)
        buf = f.read(512)
        if not buf or buf == bytes(512):  # end of archive
            return
        if len(buf) < 512:
            raise tarfile.ReadError("unexpected end of data")
        kind = buf[156:157]
        if buf[257:262] == b"ustar" and kind in (b"0", b"\0", b"5") and not buf[124] & 0x80 and _checksum_ok(buf):
            size = int(buf[124:136].split(b"\0")[0].strip() or b"0", 8)
            name = buf[:100].split(b"\0")[0].decode("utf-8", "surrogateescape")
            prefix = buf[345:500].split(b"\0")[0]
            if prefix:
                name = prefix.decode("utf-8", "surrogateescape") + "/" + name
            data = offset + 512
            offset = data + -(-size // 512) * 512
        else:
            f.seek(offset)
            tf = tarfile.TarFile(fileobj=f, mode="r")  # reads the member at f's position, extensions resolved
            info = tf.firstmember
            if info is None:
                return
            kind = b"0" if info.isreg() else b"5"
            name, data, size, offset = info.name, info.offset_data, info.size, tf.offset
        if data + size > end:
            raise tarfile.ReadError("unexpected end of data")
        if kind != b"5":
            yield name, data, size


def _checksum_ok(header: bytes) -> bool:
    try:
        stored = int(header[148:156].split(b"\0")[0].strip() or b"0", 8)
    except ValueError:
        return False
    return stored == sum(header[:148]) + 256 + sum(header[156:])  # the checksum field counts as 8 spaces


def _groups(f) -> Iterator[tuple[str, dict[str, tuple[int, int]]]]:
    """(key, {extension: (offset, size)}) for runs of consecutive members sharing a key (webdataset's convention:
    the key is the path up to the first dot of the file name, except that a name ending in one of the extensions
    read here keeps its other dots in the key: ``a.b.c.jpg`` is key ``a.b.c``, not ``a`` with extension ``b.c.jpg``)."""
    key, members = None, {}
    for name, offset, size in _tar_members(f):
        folder, base = os.path.split(name)
        dot = base.find(".")
        last = base.rfind(".")
        if last > dot > 0 and base[last + 1 :].lower() in _READ_EXTS:
            dot = last
        if dot <= 0:
            continue
        k, ext = os.path.join(folder, base[:dot]), base[dot + 1 :].lower()
        if k != key:
            if key is not None:
                yield key, members
            key, members = k, {}
        members.setdefault(ext, (offset, size))
    if key is not None:
        yield key, members


def _classify(f, path: str, name: str, key: str, members: dict, pass_: int) -> _Record | str:
    image = next((members[e] for e in IMAGE_EXTS if e in members), None)
    text = next((members[e] for e in CAPTION_EXTS if e in members), None)
    if image is None:
        return "missing_image"
    if text is not None:
        try:
            caption = _read(f, text).decode("utf-8-sig")  # a leading byte-order mark (Windows editors write one)
        except UnicodeDecodeError:
            return "non_text_caption"
    else:
        caption = _json_caption(_read(f, members["json"])) if "json" in members else None
        if caption is None:
            return "missing_caption"
    if "\x00" in caption:
        return "non_text_caption"
    caption = caption.strip()
    if not caption:
        return "empty_caption"
    return _Record(path, key, caption, image[0], image[1], _uid(name, key), pass_)


def _read(f, member: tuple[int, int]) -> bytes:
    f.seek(member[0])
    raw = f.read(member[1])
    if len(raw) < member[1]:
        raise tarfile.ReadError("unexpected end of data")
    return raw


def _json_caption(raw: bytes) -> str | None:
    """The "caption" string of a ``KEY.json`` (img2dataset writes it there as well as in ``KEY.txt``); None where
    there is none, or the member is not a JSON object."""
    try:
        caption = json.loads(raw).get("caption")
    except (ValueError, AttributeError, RecursionError):  # not JSON (or not UTF-8/16/32), not an object
        return None
    return caption if isinstance(caption, str) else None


def _scan_shard(path: str, pass_: int = 0) -> Iterator[_Record | str]:
    """The shard's samples as records, and skip reasons (str) in their place."""
    name = _shard_name(path)
    try:
        f = open(path, "rb")
    except OSError as err:
        log.warning("skipping unreadable shard %s: %s", path, err)
        yield "unreadable_shard"
        return
    with f:
        groups = _groups(f)
        while True:
            try:
                key, members = next(groups)
                event = _classify(f, path, name, key, members, pass_)
            except StopIteration:
                return
            except (OSError, EOFError, ValueError, tarfile.TarError) as err:
                log.warning("shard %s is damaged (not a plain tar, or truncated); stopped reading it: %s", path, err)
                yield "unreadable_shard"
                return
            yield event


def _shard_count(path: str, use_stats: bool = True) -> int:
    """Samples in a shard: img2dataset's ``<shard>_stats.json`` "successes" if usable, else a header scan that
    counts keys with an image and a caption (a .txt/.text member, its contents unchecked, or a .json caption)."""
    stats = os.path.splitext(path)[0] + "_stats.json"
    if use_stats and os.path.isfile(stats):
        n = _stats_count(stats, path)
        if n is not None:
            return n
    n = 0
    try:
        with open(path, "rb") as f:
            for _, members in _groups(f):
                if any(e in members for e in IMAGE_EXTS):
                    n += any(e in members for e in CAPTION_EXTS) or (
                        "json" in members and _json_caption(_read(f, members["json"])) is not None)
    except (OSError, EOFError, ValueError, tarfile.TarError) as err:
        log.warning("counting stopped early in damaged shard %s: %s", path, err)
    return n


def _stats_count(stats: str, path: str) -> int | None:
    """img2dataset's "successes" in ``stats``; None (warned) where it is malformed or plainly stale. The count only
    sizes an epoch (a rank that runs short of ``num_batches`` starts a new pass), so a stale one that looks right is
    harmless; but one claiming more than the shard's bytes can hold, or samples in a shard without a usable one
    (which could leave a rank nothing to train on), is not trusted: checking costs a stat and a few header reads."""
    try:
        with open(stats) as f:
            n = json.load(f)["successes"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
        problem = f"no \"successes\" count in it ({type(err).__name__}: {err})"
    else:
        size = os.path.getsize(path)
        if type(n) is not int or n < 0:
            problem = f"\"successes\" is {n!r}, not a sample count"
        elif n > size // 1024:  # a sample is two tar members at least, each with a 512-byte header
            problem = f"it claims {n} samples, more than the {size} bytes of {path} can hold"
        elif n and not any(isinstance(event, _Record) for event in _scan_shard(path)):
            problem = f"it claims {n} samples, but {path} holds no usable one"
        else:
            return n
    log.warning("ignoring %s: %s; counting by scanning the shard", stats, problem)
    return None


def count_samples(shards: str | Sequence[str | Mapping[str, Any]], use_stats: bool = True) -> int:
    """Samples over all shards (stats files where img2dataset wrote them, else a header scan: about 1 s per
    10k-sample shard from a warm cache). An upper bound on what the loader yields: skips are not known in advance."""
    return sum(_shard_count(p, use_stats) for src in resolve_shards(shards) for p in src.shards)


def estimate_batches_per_epoch(
    shards: str | Sequence[str | Mapping[str, Any]], batch_size: int, world_size: int = 1, use_stats: bool = True
) -> int:
    """Per-rank batches an epoch holds, from ``count_samples``: pass it as ``num_batches`` so every rank runs the
    same number of steps (needed under DDP: ranks hold different shards, hence different sample counts)."""
    sources = resolve_shards(shards)
    counts = [sum(_shard_count(p, use_stats) for p in s.shards) for s in sources]
    if len(sources) == 1:
        samples = counts[0]
    else:  # weighted mixing stops when the first source runs out
        total = sum(s.weight for s in sources)
        samples = int(min(n * total / s.weight for n, s in zip(counts, sources)))
    return samples // (batch_size * world_size)


# ------------------------------------------------------------------------------------------------------- the stream
class ShardError(ValueError):
    """Shards that cannot make an epoch. Raised in a DataLoader worker, it reaches the main process as torch
    re-raises it, ``ShardError("Caught ShardError in DataLoader worker ...<the worker's traceback>")``: only the
    message is kept, so that tools/train.py reports it in one line, not as a traceback from inside a worker."""

    def __init__(self, message: str):
        if "\nOriginal Traceback" in message:
            message = message.rstrip().rpartition("\n")[2].partition(": ")[2]
        super().__init__(message)


def _rank_shards(source: ShardSource, index: int, seed: int, epoch: int, pass_: int, rank: int, world: int):
    order = np.random.default_rng([seed, epoch, pass_, index]).permutation(len(source.shards))
    return [source.shards[i] for i in order[rank::world]]


def _source_events(
    source: ShardSource, index: int, seed: int, epoch: int, rank: int, world: int, repeat: bool, buffer: int
) -> Iterator[_Record | str]:
    """One source's records (shuffled within each pass over the rank's shards) and skip reasons; endless if
    ``repeat``, each pass with a new shard order."""
    for pass_ in itertools.count() if repeat else (0,):
        shards = _rank_shards(source, index, seed, epoch, pass_, rank, world)
        events = (event for path in shards for event in _scan_shard(path, pass_))
        rng = np.random.default_rng([seed, epoch, rank, index, pass_, 2])
        any_valid, skipped = False, Counter()
        for event in _shuffled(events, buffer, rng):
            if isinstance(event, str):
                skipped[event] += 1
            else:
                any_valid = True
            yield event
        if repeat and not any_valid:
            raise ShardError(
                f"the {len(shards)} training shard(s) dealt to rank {rank} in epoch {epoch} hold no usable sample "
                f"(an image and a non-empty UTF-8 caption; skipped: {dict(skipped)}), e.g. {shards[0]}: check them "
                "as data/README.md ('Training data') shows"
            )


def _mixed(streams: list[Iterator], weights: list[float], rng: np.random.Generator) -> Iterator:
    p = np.asarray(weights, dtype=np.float64) / sum(weights)
    while True:
        for d in rng.choice(len(streams), size=1024, p=p).tolist():
            try:
                yield next(streams[d])
            except StopIteration:
                return


def _shuffled(events: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """Records through a shuffle buffer of ``size``; skip reasons pass straight through."""
    buf: list[_Record] = []
    for event in events:
        if isinstance(event, str) or size <= 1:
            yield event
        elif len(buf) < size:
            buf.append(event)
        else:
            i = int(rng.integers(size))
            yield buf[i]
            buf[i] = event
    for i in rng.permutation(len(buf)).tolist():
        yield buf[i]


def _windows(events: Iterator, batch_size: int, num_batches: int | None) -> Iterator[tuple[int, list, Counter]]:
    """(batch index, records, skips) per full window; see step 4 of the module docstring."""
    j, records, skips, pending = 0, [], Counter(), None
    for event in events:
        if isinstance(event, str):
            skips[event] += 1
            continue
        records.append(event)
        if len(records) == batch_size:
            if pending is not None:
                yield pending
            pending, j, records, skips = (j, records, skips), j + 1, [], Counter()
            if num_batches is not None and j >= num_batches:
                break
    else:
        if pending is not None:
            pending[2].update(skips)
        elif skips or records:
            log.warning("epoch holds no full batch of %d: %d usable samples; skipped %s", batch_size, len(records),
                        dict(skips))  # fmt: skip
    if pending is not None:
        yield pending


@contextmanager
def _preserved_rngs():
    """Restore the python/numpy/torch-CPU global RNGs (timm and torchvision draw from them) after a batch, so with
    num_workers=0 the trainer's own RNG streams are untouched. Once per batch: saving and restoring the three
    states costs several times more than the small images' augmentation."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def _seed_rngs(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.random.default_generator.manual_seed(seed)


@contextmanager
def _single_thread():
    """Per-image tensor ops are tiny: torch's intra-op threads only add contention (6x slower measured on a busy
    2-core machine). DataLoader workers already run with one thread; this does the same for num_workers=0."""
    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads != 1:
            torch.set_num_threads(threads)


class _ByteReader:
    """Reads image bytes by offset, keeping a few shard files open (records in the shuffle buffer span shards)."""

    def __init__(self, max_open: int = 16):
        self.files: OrderedDict[str, Any] = OrderedDict()
        self.max_open = max_open

    def read(self, path: str, offset: int, size: int) -> bytes:
        f = self.files.pop(path, None) or open(path, "rb")
        self.files[path] = f
        while len(self.files) > self.max_open:
            self.files.popitem(last=False)[1].close()
        f.seek(offset)
        return f.read(size)

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()


class PairStream(IterableDataset):
    """The batches of one rank for one epoch (module docstring); iterate it through ``build_pair_loader``."""

    def __init__(
        self,
        sources: list[ShardSource],
        batch_size: int,
        transform: Callable[[Image.Image], torch.Tensor],
        context_length: int,
        num_prompts: int,
        noun_extractor: Callable[[str], list[str]] | None,
        seed: int,
        epoch: int,
        rank: int,
        world_size: int,
        start_batch: int = 0,
        num_batches: int | None = None,
        shuffle_buffer: int = 10_000,
    ):
        super().__init__()
        self.sources, self.batch_size, self.transform = sources, batch_size, transform
        self.context_length, self.num_prompts, self.noun_extractor = context_length, num_prompts, noun_extractor
        self.seed, self.epoch, self.rank, self.world_size = seed, epoch, rank, world_size
        self.start_batch, self.num_batches, self.shuffle_buffer = start_batch, num_batches, shuffle_buffer

    def windows(self) -> Iterator[tuple[int, list[_Record], Counter]]:
        """Every batch window of this rank, metadata only (what each worker replays)."""
        repeat = self.num_batches is not None
        streams = [
            _source_events(s, i, self.seed, self.epoch, self.rank, self.world_size, repeat, self.shuffle_buffer)
            for i, s in enumerate(self.sources)
        ]
        if len(streams) == 1:
            events = streams[0]
        else:
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, 1])
            events = _mixed(streams, [s.weight for s in self.sources], rng)
        return _windows(events, self.batch_size, self.num_batches)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        reader, carry = _ByteReader(), Counter()
        try:
            for j, records, skips in self.windows():
                if j < self.start_batch or (j - self.start_batch) % workers != worker:
                    continue
                batch = self._batch(j, records, skips + carry, reader)
                if batch is None:
                    carry = skips + carry + Counter(undecodable_image=len(records))
                    continue
                carry = Counter()
                yield batch
        finally:
            reader.close()
        if carry:
            log.warning("skip counts of a dropped last batch were not reported: %s", dict(carry))

    def _batch(self, j: int, records: list[_Record], skips: Counter, reader: _ByteReader) -> dict[str, Any] | None:
        with _single_thread(), _preserved_rngs():
            return self._build(j, records, skips, reader)

    def _build(self, j: int, records: list[_Record], skips: Counter, reader: _ByteReader) -> dict[str, Any] | None:
        samples = [self._sample(r, reader) for r in records]
        good = [i for i, s in enumerate(samples) if s is not None]
        bad = [i for i, s in enumerate(samples) if s is None]
        if not good:
            log.warning("dropping batch %d of epoch %d (rank %d): none of its %d images decodes", j, self.epoch,
                        self.rank, len(records))  # fmt: skip
            return None
        records = list(records)
        if bad:
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, 3, j])
            for slot in bad:
                donor = records[good[int(rng.integers(len(good)))]]
                samples[slot], records[slot] = self._sample(donor, reader, extra=1 + slot), donor
        skipped = skips + Counter(undecodable_image=len(bad))
        return {
            "images": torch.stack([s[0] for s in samples]),
            "tokens": torch.stack([s[1] for s in samples]),
            "captions": [r.caption for r in records],
            "keys": [r.key for r in records],
            "skipped": {k: int(v) for k, v in skipped.items() if v},
            "batch_index": j,
        }

    def _sample(self, rec: _Record, reader: _ByteReader, extra: int = 0) -> tuple[torch.Tensor, torch.Tensor] | None:
        try:
            data = reader.read(rec.path, rec.offset, rec.size)
            image = _decode_rgb(data)
        except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...) on bad bytes
            log.debug("undecodable image %s in %s: %s", rec.key, rec.path, err)
            return None
        entropy = [self.seed, self.epoch, rec.pass_, *rec.uid, extra]
        image_seed, text_seed = np.random.SeedSequence(entropy).generate_state(2)
        _seed_rngs(int(image_seed))
        pixels = self.transform(image)
        texts = [rec.caption]
        if self.num_prompts:
            nouns = self.noun_extractor(rec.caption)
            texts += make_prompts(rec.caption, nouns, self.num_prompts, np.random.default_rng(int(text_seed)))
        return pixels, tokenize(texts, self.context_length)


def _decode_rgb(data: bytes) -> Image.Image:
    """Image bytes -> RGB as a viewer shows them: EXIF orientation applied (as ``load_rgb`` does at evaluation),
    16-bit grayscale scaled to 8 bits (``convert`` clips it to white), transparency composited on white (as
    img2dataset does; dropping alpha would show whatever colour transparent pixels happen to store)."""
    with Image.open(io.BytesIO(data)) as im:
        image = im
        if im.getexif().get(0x0112, 1) != 1:
            image = ImageOps.exif_transpose(im)
        image = eight_bit(image)
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
        return image.convert("RGB")


def build_pair_loader(
    shards: str | Sequence[str | Mapping[str, Any]],
    batch_size: int,
    image_size: int,
    context_length: int,
    num_prompts: int,
    augment: str | Mapping[str, Any],
    seed: int,
    epoch: int,
    rank: int,
    world_size: int,
    num_workers: int,
    start_batch: int = 0,
    noun_extractor: Callable[[str], list[str]] | None = None,
    *,
    num_batches: int | None = None,
    shuffle_buffer: int = 10_000,
    pin_memory: bool = False,
) -> DataLoader:
    """This rank's batches of ``epoch``, from batch ``start_batch`` on (module docstring for the guarantees).

    Each batch: ``images`` float [B, 3, S, S] (normalised), ``tokens`` long [B, 1 + K, L] (caption, then the K
    noun prompts), ``captions``/``keys`` lists of B, ``skipped`` {reason: count} met since the previous batch built
    by the same worker (sum them), ``batch_index`` (position in the epoch). Without ``num_batches`` the epoch ends
    when the rank's shards run out (ranks may then differ by a few batches); with it, every rank yields exactly
    ``num_batches`` batches, going on with a new pass (the shards shuffled and dealt out again) if it runs short:
    use that under DDP, with ``estimate_batches_per_epoch``.
    """
    for name, value, low in (("batch_size", batch_size, 1), ("image_size", image_size, 1),
                             ("context_length", context_length, 2), ("num_prompts", num_prompts, 0),
                             ("seed", seed, 0), ("epoch", epoch, 0), ("world_size", world_size, 1),
                             ("num_workers", num_workers, 0), ("start_batch", start_batch, 0)):  # fmt: skip
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    if num_batches is not None and num_batches < 1:
        raise ValueError(f"num_batches must be >= 1 or None, got {num_batches}")
    sources = resolve_shards(shards)
    for s in sources:
        if len(s.shards) < world_size:
            raise ValueError(
                f"{len(s.shards)} shard(s) cannot be split over {world_size} ranks (each rank needs at least one); "
                f"first shard: {s.shards[0]}"
            )
    if num_prompts and noun_extractor is None:
        from .nouns import default_noun_extractor

        noun_extractor = default_noun_extractor()
    stream = PairStream(
        sources, batch_size, build_train_transform(augment, image_size), context_length, num_prompts, noun_extractor,
        seed, epoch, rank, world_size, start_batch, num_batches, shuffle_buffer,
    )  # fmt: skip
    # Its own generator: DataLoader draws a base seed per iterator, which would otherwise consume the global RNG.
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]))
    return DataLoader(stream, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, generator=generator,
                      worker_init_fn=_leave_stop_signals_to_the_main_process)  # fmt: skip


def _leave_stop_signals_to_the_main_process(worker_id: int) -> None:
    """Ctrl-C and a scheduler's SIGTERM reach the whole process group. The trainer's main process answers them by
    finishing its step and saving a checkpoint, which needs no more batches; workers that died of the signal would
    instead break the batch it is waiting for. Workers still exit with the main process (DataLoader's watchdog), and
    on a SIGTERM sent by the main process itself: multiprocessing terminates daemonic workers that way at exit, and
    joins them, so a deaf worker hung the exit forever after an error raised while a loader was being iterated."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not hasattr(signal, "sigwaitinfo"):  # macOS: no sender to tell apart
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # threads started from here on inherit the mask
    parent = os.getppid()

    def exit_when_the_parent_asks() -> None:
        while signal.sigwaitinfo({signal.SIGTERM}).si_pid != parent:
            pass
        os._exit(0)

    threading.Thread(target=exit_when_the_parent_asks, daemon=True).start()
