#!/usr/bin/env python
"""How fast groupseg is, next to transformers' GroupViT port, on identical weights and inputs, in one process.

    python tools/benchmark.py                          # GroupViT-S; fp32 and bf16; GPU if there is one; ~5 min
    python tools/benchmark.py --only train --repeats 9 # one part, more repeats
    python tools/benchmark.py --tiny --repeats 1       # the tiny preset: a smoke test (seconds)

One random ``transformers.GroupViTModel`` (a fixed seed) is saved with ``save_pretrained`` and read back with
``groupseg.load_model``, so both implementations hold the same weights (checked: ``parity_max_abs_diff``). Every
measurement runs the implementations interleaved (A B A B ..., the order flipped each round) after warm-up, so that
load from other processes hits both alike; the table gives medians, the inter-quartile spread, throughput, ratios,
model FLOPs (``FlopCounterMode``) over the matmul peak measured in the same process (MFU), and peak memory.

Parts (``--only``): ``peak`` (square matmul GFLOP/s, fp32/bf16), ``vision`` (image tower forward, batch 1, at each
``--sizes``; the port: ``get_image_features``), ``zeroshot`` (groupseg's full zero-shot inference of one image:
tower, head, mmseg post-processing; whole and slide; and ``--infer-batch`` images per call at the native size, the
port's vision forward batched alike), ``train`` (image + text forward, contrastive loss, backward,
gradient clipping, AdamW; groupseg through ``engine.train_step``, also with the multi-label loss), ``scaling``
(zero-shot whole vs slide at ``--scaling-sizes``), ``data`` (the training data pipeline's decode + augmentation
throughput on generated JPEG shards), ``accuracy`` (bf16 and the ONNX tower vs eager fp32: embeddings and zero-shot
label agreement), ``rss`` (peak resident memory of a fresh process running one zero-shot inference at 2× native).
On a GPU, times come from CUDA events with synchronisation; on a CPU from ``perf_counter``.

Default settings: rows marked ``*`` (``default`` in the JSON) run what a user gets without options: precision
``'auto'`` (bf16 only where the hardware runs it natively; the report header names the CPU and says which), eager
torch, no compile; the closing lines compare each of them with the port's fp32. Other rows: every precision in
``--precisions``, the image tower exported to ONNX and run by ONNX Runtime (``onnx``, CPU only; ``tools/export.py``),
and with ``--compile`` the inductor-compiled tower at the default precision, weights frozen. MFU is against the
matmul peak of the precision the row ran.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import groupseg  # noqa: F401  (applies the stack's compatibility shims first)
from groupseg.cli import output_file

if TYPE_CHECKING:  # imported where used, after the arguments are parsed: --help answers without loading torch
    import torch

    from groupseg.models import GroupViT, GroupViTConfig

PARTS = ("peak", "vision", "zeroshot", "train", "scaling", "data", "accuracy", "rss")
TARGETS = {"train_img_s_vs_port_fp32": 2.0, "zeroshot_vs_port_vision_fp32": 3.0,
           "default_never_slower_than_port_fp32": 1.0}
REPO = Path(__file__).resolve().parents[1]
CAPTIONS = ["a photo of a dog on a sofa", "two cats", "a red car parked by a tree", "boats in a harbour at dusk",
            "a man riding a horse", "a plate of food", "a bird on a branch", "people walking in the rain"]  # fmt: skip


# -- timing -----------------------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds for one call: CUDA events around it on a GPU, perf_counter on a CPU."""
    import torch

    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        sync(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


# ONNX Runtime's threads spin-wait for a while after each run: a torch call timed right after one shares the cores
# with them (on a 2-core Intel Xeon with AMX, bf16 vision at 224 read 60 ms instead of 35). 50 ms lets them park.
CPU_SETTLE_S = 0.05


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int, device: torch.device) -> dict[str, list]:
    """Times of each function over ``repeats`` rounds, A B C / C B A / ..., after ``warmup`` untimed rounds."""
    names, times = list(fns), {name: [] for name in fns}
    for round_ in range(warmup + repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            if device.type == "cpu":
                time.sleep(CPU_SETTLE_S)
            seconds = time_once(fns[name], device)
            if round_ >= warmup:
                times[name].append(seconds)
    return times


def summary(times: list[float]) -> dict[str, float]:
    """Median, extremes and inter-quartile spread (% of the median) of a list of seconds, in ms."""
    ms = sorted(t * 1e3 for t in times)
    quartiles = statistics.quantiles(ms, n=4, method="inclusive") if len(ms) > 1 else [ms[0]] * 3
    median = statistics.median(ms)
    return dict(median_ms=median, min_ms=ms[0], max_ms=ms[-1], iqr_pct=100 * (quartiles[2] - quartiles[0]) / median,
                times_ms=ms)  # fmt: skip


def count_flops(fn: Callable[[], Any]) -> int:
    """Matmul/conv FLOPs of one call; SDPA through its math backend, whose matmuls the counter sees (it has no
    formula for the fused CPU kernel), so that both implementations are counted alike."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        fn()
    return counter.get_total_flops()


def peak_memory_mb(fn: Callable[[], Any], device: torch.device) -> float:
    """Peak memory allocated during one call (above what was live before it): CUDA allocator statistics on a GPU,
    the profiler's allocation events on a CPU."""
    import torch

    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


def autocast(precision: str, device: torch.device):
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


# -- the two implementations ------------------------------------------------------------------------------------------
def hf_config_for(config: GroupViTConfig):
    """transformers' GroupViTConfig with the architecture of a groupseg config."""
    from transformers import GroupViTConfig as HFConfig

    vision = dict(hidden_size=config.vision_width, intermediate_size=int(config.vision_width * config.mlp_ratio),
                  depths=list(config.vision_depths), num_hidden_layers=sum(config.vision_depths),
                  num_group_tokens=list(config.num_group_tokens),
                  num_output_groups=list(config.num_output_groups) + [config.num_output_groups[-1]],
                  num_attention_heads=config.vision_heads, image_size=config.image_size,
                  patch_size=config.patch_size, assign_eps=config.assign_eps, dropout=0.0, attention_dropout=0.0)
    text = dict(hidden_size=config.text_width, intermediate_size=4 * config.text_width,
                num_hidden_layers=config.text_layers, num_attention_heads=config.text_heads,
                max_position_embeddings=config.context_length, vocab_size=config.vocab_size,
                eos_token_id=config.vocab_size - 1, bos_token_id=config.vocab_size - 2, pad_token_id=0,
                dropout=0.0, attention_dropout=0.0)  # fmt: skip
    return HFConfig(text_config=text, vision_config=vision, projection_dim=config.embed_dim,
                    projection_intermediate_dim=config.proj_hidden_dim,
                    logit_scale_init_value=config.logit_scale_init)  # fmt: skip


def build_pair(preset: str, device: torch.device, seed: int = 0):
    """(port, groupseg model): one random transformers model, and groupseg reading its save_pretrained directory."""
    import torch
    from transformers import GroupViTModel

    from groupseg.models import build_config

    config = build_config(preset, drop_path_rate=0.0)  # the port has no stochastic depth
    torch.manual_seed(seed)
    port = GroupViTModel(hf_config_for(config)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        port.save_pretrained(tmp)
        model = groupseg.load_model(tmp)
    return port.to(device), model.to(device).eval()


def port_image_features(port, images: torch.Tensor) -> torch.Tensor:
    """The port's ``get_image_features``, written out so that other sizes get the interpolated position table
    (its ``vision_model.forward`` has no ``interpolate_pos_encoding``; the embeddings module has)."""
    vision = port.vision_model
    size = vision.config.image_size
    embeddings = vision.embeddings(images, interpolate_pos_encoding=tuple(images.shape[2:]) != (size, size))
    pooled = vision.layernorm(vision.encoder(hidden_states=embeddings, return_dict=True)[0]).mean(dim=1)
    return port.visual_projection(pooled)


def parity(port, model, size: int, device: torch.device) -> float:
    import torch
    import torch.nn.functional as F

    images = torch.randn(2, 3, size, size, device=device)
    with torch.no_grad():
        expected = F.normalize(port.get_image_features(pixel_values=images).pooler_output, dim=-1)
        assert torch.equal(F.normalize(port_image_features(port, images), dim=-1), expected)
        big = torch.randn(1, 3, 2 * size, 2 * size, device=device)  # the interpolated position table too
        diffs = [(model.encode_image(images) - expected).abs().max().item(),
                 (model.encode_image(big) - F.normalize(port_image_features(port, big), dim=-1)).abs().max().item()]
        return max(diffs)


def segmentor(model: GroupViT, precision: str, mode: str, crop: int, stride: int, compile: bool = False,
              onnx_path: str | None = None):  # fmt: skip
    from groupseg.zeroshot import GroupViTSegmentor

    classes = ["background"] + [f"class {i}" for i in range(20)]  # VOC-sized vocabulary; embeddings are cached
    test_cfg = dict(mode=mode, crop_size=(crop, crop), stride=(stride, stride), bg_thresh=0.95, precision=precision,
                    compile=compile)  # fmt: skip
    if onnx_path:
        test_cfg.update(backend="onnx", onnx_path=onnx_path)
    return GroupViTSegmentor(model=model, vocabulary=classes, test_cfg=test_cfg).eval()


def predict_fn(seg, images: torch.Tensor) -> Callable[[], Any]:
    """One image through ``predict``: tower, head, and mmseg's post-processing (resize, argmax)."""
    import torch
    from mmseg.structures import SegDataSample

    shape = tuple(images.shape[2:])
    meta = dict(ori_shape=shape, img_shape=shape, pad_shape=shape, padding_size=[0, 0, 0, 0])

    def run():
        with torch.no_grad():
            return seg.predict(images, [SegDataSample(metainfo=meta) for _ in range(len(images))])

    return run


# -- the parts --------------------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, device: torch.device, workdir: Path):
        from groupseg.models.precision import resolve_precision

        self.args, self.device, self.workdir = args, device, workdir
        self.rows: list[dict] = []
        self.peak: dict[str, float] = {}
        self.default = resolve_precision("auto", device)  # what a user gets without options
        self.onnx = device.type == "cpu" and not args.no_onnx  # ONNX Runtime runs here on the CPU only
        self._onnx_path: str | None = None

    def onnx_path(self, model: GroupViT) -> str:
        """The model's image tower exported once (``tools/export.py``'s function), for the ONNX rows."""
        if self._onnx_path is None:
            from groupseg.models.export import export_image_tower

            self._onnx_path = str(export_image_tower(model, self.workdir / "tower.onnx"))
        return self._onnx_path

    def run(self, part: str, case: dict[str, Any], fns: dict[str, Callable[[], Any]], items: int = 1,
            flops: bool = True, memory: bool = True) -> dict[str, dict]:  # fmt: skip
        """Time ``fns`` interleaved; one row per implementation, ``case`` fields shared."""
        args = self.args
        times = interleaved(fns, args.repeats, args.warmup, self.device)
        rows = {}
        for name, fn in fns.items():
            stats = summary(times[name])
            row = dict(part=part, **case, impl=name, items=items, **stats,
                       items_per_s=items / (stats["median_ms"] / 1e3))  # fmt: skip
            precision = name.split(" ")[-1] if name.endswith(("fp32", "bf16")) else case.get("precision", "fp32")
            row["default"] = name in self.default_impls(part)
            if flops:
                # ONNX Runtime's work is invisible to the counter: the same computation's count from its eager twin
                twin = rows.get(name.replace(" onnx", "")) if "onnx" in name else None
                row["gflop"] = twin["gflop"] if twin else count_flops(fn) / 1e9
                if self.peak.get(precision):
                    row["mfu_pct"] = 100 * row["gflop"] / (stats["median_ms"] / 1e3) / self.peak[precision]
            if memory and "onnx" not in name:  # the profiler sees torch's allocations, not ONNX Runtime's: see `rss`
                row["peak_mem_mb"] = peak_memory_mb(fn, self.device)
            rows[name] = row
            self.rows.append(row)
        print(format_rows(list(rows.values())), flush=True)
        return rows

    def default_impls(self, part: str) -> set[str]:
        """The rows that run the default settings (precision 'auto', eager, no compile, torch backend)."""
        p = self.default
        # (the multi-label train step does ~1.5× the work of the port's caption-only step: not a like-for-like row)
        return {"vision": {f"groupseg {p}"}, "train": {f"groupseg {p}"},
                "zeroshot": {f"groupseg whole {p}", f"groupseg slide {p}"}}.get(part, set())  # fmt: skip

    def matmul_peak(self) -> None:
        import torch

        sides = {}
        for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            n = sides[precision] = self.matmul_side(dtype)
            a, b = (torch.randn(n, n, device=self.device, dtype=dtype) for _ in range(2))
            times = interleaved({"mm": lambda: a @ b}, max(5, self.args.repeats), 2, self.device)["mm"]
            self.peak[precision] = 2 * n**3 / statistics.median(times) / 1e9
        print(f"matmul peak: fp32 {self.peak['fp32']:.1f} GFLOP/s ({sides['fp32']}²), bf16 {self.peak['bf16']:.1f} "
              f"GFLOP/s ({sides['bf16']}²)", flush=True)  # fmt: skip
        print(faster_precision_line(self.peak, self.device, self.default), flush=True)

    def matmul_side(self, dtype: torch.dtype) -> int:
        """``--matmul-size``, or less where one product would take over a second: a CPU without native bf16 may
        run bf16 matmuls 100× slower than fp32 (AVX2 only), which would hold the benchmark for many minutes."""
        import torch

        n, small = self.args.matmul_size, 256
        a = torch.randn(small, small, device=self.device, dtype=dtype)
        seconds = min(time_once(lambda: a @ a, self.device) for _ in range(3)) * (n / small) ** 3
        while seconds > 1.0 and n > small:
            n, seconds = n // 2, seconds / 8
        return n

    def vision(self, port, model, size: int) -> None:
        import torch

        images = torch.randn(1, 3, size, size, device=self.device)
        fns = {}
        for precision in self.args.precisions:
            seg = self.segmentors(model, precision)["whole"]

            def port_fn(p=precision):
                with torch.no_grad(), autocast(p, self.device):
                    port_image_features(port, images)

            def ours(s=seg):
                with torch.no_grad():
                    s.forward_image(images)

            fns[f"port {precision}"], fns[f"groupseg {precision}"] = port_fn, ours
        if self.onnx:
            from groupseg.models.onnx_tower import OnnxImageTower

            tower = OnnxImageTower(self.onnx_path(model))
            fns["groupseg onnx fp32"] = lambda: tower(images)
        self.run("vision", dict(size=size, batch=1), fns)

    def zeroshot(self, port, model, size: int, part: str = "zeroshot", with_port: bool = True, batch: int = 1) -> None:
        import torch

        images = torch.randn(batch, 3, size, size, device=self.device)
        fns = {}
        if with_port:

            def port_fn():
                with torch.no_grad():
                    port_image_features(port, images)

            fns["port vision fp32"] = port_fn
        for precision in self.args.precisions:
            for mode, seg in self.segmentors(model, precision).items():
                fns[f"groupseg {mode} {precision}"] = predict_fn(seg, images)
        if self.onnx and part == "zeroshot":
            fns["groupseg whole onnx fp32"] = predict_fn(self.segmentors(model, "fp32", onnx=True)["whole"], images)
        if self.args.compile and part == "zeroshot":
            compiled = predict_fn(self.segmentors(model, self.default, compile=True)["whole"], images)
            for _ in range(2):  # compile this shape now, not inside a timed round
                compiled()
            fns[f"groupseg whole compiled {self.default}"] = compiled
        self.run(part, dict(size=size, batch=batch), fns, items=batch)

    def segmentors(self, model, precision: str, compile: bool = False, onnx: bool = False) -> dict[str, Any]:
        key = (precision, compile, onnx)
        if not hasattr(self, "_segmentors"):
            self._segmentors = {}
        if key not in self._segmentors:
            native = model.config.image_size
            modes = ("whole",) if compile or onnx else ("whole", "slide")
            path = self.onnx_path(model) if onnx else None
            self._segmentors[key] = {m: segmentor(model, precision, m, 2 * native, native, compile, path)
                                     for m in modes}  # fmt: skip
        return self._segmentors[key]

    def train(self, port, model) -> None:
        import torch
        import torch.nn.functional as F

        from groupseg.engine.optim import build_optimizer
        from groupseg.engine.trainer import train_step
        from groupseg.losses import GroupViTLoss

        args, device = self.args, self.device
        size, batch, context = model.config.image_size, args.batch, model.config.context_length
        images = torch.randn(batch, 3, size, size, device=device)
        captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(batch)]
        tokens = groupseg.tokenize(captions, context).to(device)  # [B, L]
        templates = ("a photo of a {}.", "a picture of the {}.", "an image of a {}.")  # K = 3 noun prompts
        prompts = groupseg.tokenize([t.format(c.split()[-1]) for c in captions for t in templates], context)
        with_prompts = torch.cat([tokens[:, None], prompts.view(batch, 3, context).to(device)], dim=1)  # [B, 1+3, L]
        port, model = copy.deepcopy(port).train(), copy.deepcopy(model).train()
        port_opt = torch.optim.AdamW(port.parameters(), lr=1e-5, weight_decay=0.05)
        opt = build_optimizer(model, lr=1e-5)
        fns = {}
        for precision in args.precisions:

            def port_step(p=precision):
                with autocast(p, device):
                    image = F.normalize(port.get_image_features(pixel_values=images).pooler_output, dim=-1)
                    text = F.normalize(port.get_text_features(input_ids=tokens).pooler_output, dim=-1)
                    logits = port.logit_scale.exp().clamp(max=100) * image @ text.T
                    labels = torch.arange(batch, device=device)
                    loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
                port_opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(port.parameters(), 5.0)
                port_opt.step()

            def step(p=precision, toks=tokens, weight=0.0):
                train_step(model, GroupViTLoss(weight), opt, dict(images=images, tokens=toks), device, p)

            fns[f"port {precision}"] = port_step
            fns[f"groupseg {precision}"] = step
            fns[f"groupseg +multi-label {precision}"] = lambda p=precision: step(p, with_prompts, 1.0)
        self.run("train", dict(size=size, batch=batch), fns, items=batch)

    def data(self, model) -> None:
        """Decode + augmentation throughput of the training loader, alone (no model), on generated JPEG shards."""
        from groupseg.data.pairs import build_pair_loader

        args = self.args
        size, batch = model.config.image_size, args.batch
        num_batches = 2 + max(1, args.repeats)
        with tempfile.TemporaryDirectory() as tmp:
            shards = write_jpeg_shards(Path(tmp), 2, batch * num_batches, side=max(2 * size, 64))
            fns = {}
            for workers in (0, 2):
                loader = build_pair_loader([str(s) for s in shards], batch, size, model.config.context_length, 0,
                                           "reference", 0, 0, 0, 1, workers)  # fmt: skip

                def consume(loader=loader):
                    for i, _ in enumerate(loader):
                        if i == 0:
                            start = time.perf_counter()  # skip worker start-up and the first batch
                    return (i * batch) / (time.perf_counter() - start)

                fns[workers] = consume
            for workers, fn in fns.items():
                rates = [fn() for _ in range(max(1, args.repeats // 2))]
                row = dict(part="data", size=size, batch=batch, impl=f"loader workers={workers}", items=batch,
                           items_per_s=statistics.median(rates), median_ms=1e3 * batch / statistics.median(rates),
                           min_ms=1e3 * batch / max(rates), max_ms=1e3 * batch / min(rates), iqr_pct=0.0,
                           times_ms=[1e3 * batch / r for r in rates])  # fmt: skip
                self.rows.append(row)
                print(format_rows([row]), flush=True)

    def accuracy(self, model) -> dict[str, Any]:
        """bf16 against fp32 on random images: image embeddings, soft assignments and zero-shot labels."""
        import torch

        size = 2 * model.config.image_size
        torch.manual_seed(1)
        images = torch.randn(4, 3, size, size, device=self.device)
        out = {}
        segs = {p: self.segmentors(model, p)["whole"] for p in ("fp32", "bf16")}
        with torch.no_grad():
            emb = {p: segs[p].forward_image(images) for p in segs}
            labels = {p: segs[p].encode_decode(images).argmax(1) for p in segs}
        out["image_embeds_max_abs_diff"] = (emb["fp32"].image_embeds - emb["bf16"].image_embeds).abs().max().item()
        out["group_embeds_max_abs_diff"] = (emb["fp32"].group_embeds - emb["bf16"].group_embeds).abs().max().item()
        out["assignment_argmax_agreement"] = [
            (a.soft.argmax(1) == b.soft.argmax(1)).float().mean().item()
            for a, b in zip(emb["fp32"].vision.assignments, emb["bf16"].vision.assignments)
        ]
        out["zeroshot_label_agreement"] = (labels["fp32"] == labels["bf16"]).float().mean().item()
        out["inputs"] = f"4 random images at {size}px, random weights (see README for the mIoU comparison)"
        print("bf16 vs fp32:", json.dumps({k: v for k, v in out.items() if k != "inputs"}), flush=True)
        return out

    def onnx_accuracy(self, model) -> dict[str, Any]:
        """The ONNX tower (ONNX Runtime) against eager fp32, at native and 2× native: embeddings, soft assignments
        and zero-shot labels (whole inference, 21 labels with a thresholded background) of 4 random images."""
        import torch

        eager, onnx = self.segmentors(model, "fp32")["whole"], self.segmentors(model, "fp32", onnx=True)["whole"]
        out: dict[str, Any] = {}
        for size in (model.config.image_size, 2 * model.config.image_size):
            images = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(size))
            with torch.no_grad():
                a, b = eager.forward_image(images), onnx.forward_image(images)
                labels = [seg.encode_decode(images).max(dim=1).indices for seg in (eager, onnx)]
            diffs = [(a.image_embeds - b.image_embeds).abs().max(), (a.group_embeds - b.group_embeds).abs().max(),
                     *((x.soft - y.soft).abs().max() for x, y in zip(a.vision.assignments, b.vision.assignments))]
            out[str(size)] = dict(max_abs_diff=max(d.item() for d in diffs),
                                  zeroshot_label_agreement=(labels[0] == labels[1]).float().mean().item())  # fmt: skip
        print("onnx vs eager fp32:", json.dumps(out), flush=True)
        return out

    def rss(self, model, size: int) -> None:
        """Peak resident memory (MB) of a fresh process that builds the model and runs one zero-shot inference (whole)
        of one ``size``² image: the default settings, and the ONNX tower. Also the process's RSS before inferring."""
        import torch

        kinds = {f"groupseg whole {self.default}": None}
        if self.onnx:
            kinds["groupseg whole onnx fp32"] = self.onnx_path(model)
        checkpoint = groupseg.save_checkpoint(model, self.workdir / "checkpoint")  # the child loads these weights
        for impl, onnx_path in kinds.items():
            code = RSS_CHILD.format(checkpoint=str(checkpoint), size=size, onnx=repr(onnx_path),
                                    precision=self.default if onnx_path is None else "fp32",
                                    threads=torch.get_num_threads())  # fmt: skip
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
            if done.returncode != 0:
                print(f"rss {impl}: the child process failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            before, peak = (float(v) for v in done.stdout.split())
            row = dict(part="rss", size=size, batch=1, impl=impl, items=1, rss_before_mb=before, peak_rss_mb=peak,
                       default=onnx_path is None)  # fmt: skip
            self.rows.append(row)
            print(f"rss {impl} at {size}: peak {peak:.0f} MB (model loaded: {before:.0f} MB)", flush=True)


# A fresh interpreter: the benchmark's model read from a checkpoint, one whole inference; prints the peak resident set
# after building the segmentor and after inferring, in MB: the kernel's VmHWM of this process (ru_maxrss would also
# count the parent's memory, which Linux carries into the child's maximum across fork + exec); ru_maxrss elsewhere.
RSS_CHILD = """
import resource, torch, groupseg
from groupseg.zeroshot import GroupViTSegmentor
def peak_mb():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
torch.set_num_threads({threads})
model = groupseg.load_model({checkpoint!r})
test_cfg = dict(mode="whole", precision="{precision}")
if {onnx} is not None:
    test_cfg.update(backend="onnx", onnx_path={onnx})
seg = GroupViTSegmentor(model=model, vocabulary=["background"] + ["class %d" % i for i in range(20)], test_cfg=test_cfg)
before = peak_mb()
with torch.no_grad():
    seg.encode_decode(torch.randn(1, 3, {size}, {size})).max(dim=1)
print(before, peak_mb())
"""


def write_jpeg_shards(root: Path, num_shards: int, per_shard: int, side: int) -> list[Path]:
    """img2dataset-style shards of smooth, photo-like JPEGs (random noise would decode unrealistically slowly)."""
    import io
    import tarfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for s in range(num_shards):
        path = root / f"{s:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(per_shard):
                low = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
                image = Image.fromarray(low).resize((side * 4 // 3, side), Image.BICUBIC)
                buf = io.BytesIO()
                image.save(buf, format="JPEG", quality=90)
                for ext, data in (("jpg", buf.getvalue()), ("txt", CAPTIONS[i % len(CAPTIONS)].encode())):
                    info = tarfile.TarInfo(f"{s:05d}{i:04d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        paths.append(path)
    return paths


# -- report -----------------------------------------------------------------------------------------------------------
COLUMNS = [("part", "{}"), ("size", "{}"), ("batch", "{}"), ("impl", "{}"), ("mark", "{}"), ("median_ms", "{:.1f}"),
           ("iqr_pct", "±{:.0f}%"), ("items_per_s", "{:.2f}"), ("vs_port", "{:.2f}×"), ("vs_port_fp32", "{:.2f}×"),
           ("gflop", "{:.1f}"), ("mfu_pct", "{:.0f}%"), ("peak_mem_mb", "{:.0f}")]  # fmt: skip


WIDTHS = (8, 4, 5, 30, 1, 9, 5, 8, 7, 7, 6, 4, 6)
HEADER = "  ".join(f"{name:>{w}}" for (name, _), w in zip([("part", 0), ("size", 0), ("batch", 0), ("impl", 0), ("", 0),
                   ("ms", 0), ("±IQR", 0), ("items/s", 0), ("×port", 0), ("×p.fp32", 0), ("GFLOP", 0), ("MFU", 0),
                   ("MB", 0)], WIDTHS))  # fmt: skip


def format_rows(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        row = {**row, "mark": "*" if row.get("default") else ""}  # * : the default settings
        cells = [fmt.format(row[key]) if row.get(key) is not None else "-" for key, fmt in COLUMNS]
        lines.append("  ".join(f"{c:>{w}}" for c, w in zip(cells, WIDTHS)))
    return "\n".join(lines)


def add_ratios(rows: list[dict]) -> dict[str, Any]:
    """Speed-ups over the port (same part, size, precision; and over the port in fp32), and the issue's targets."""
    def port_row(row, precision):
        same = [r for r in rows if (r["part"], r["size"], r["batch"]) == (row["part"], row["size"], row["batch"])]
        return next((r for r in same if r["impl"] in (f"port {precision}", f"port vision {precision}")), None)

    for row in rows:
        if row["impl"].startswith("groupseg"):
            precision = row["impl"].split(" ")[-1]
            for key, ref in (("vs_port", port_row(row, precision)), ("vs_port_fp32", port_row(row, "fp32"))):
                if ref is not None:
                    row[key] = ref["median_ms"] / row["median_ms"] * row["items"] / ref["items"]
    targets = {}
    train = [r for r in rows if r["part"] == "train" and r["impl"] in ("groupseg fp32", "groupseg bf16")]
    if train:
        best = max(train, key=lambda r: r["items_per_s"])
        targets["train_img_s_vs_port_fp32"] = dict(ratio=best.get("vs_port_fp32"), impl=best["impl"])
    for row in rows:
        if row["part"] == "zeroshot" and " whole " in row["impl"]:
            key = f"zeroshot_vs_port_vision_fp32@{row['size']}" + (f"x{row['batch']}" if row["batch"] > 1 else "")
            if row.get("vs_port_fp32") and row["vs_port_fp32"] > targets.get(key, {}).get("ratio", 0):
                targets[key] = dict(ratio=row["vs_port_fp32"], impl=row["impl"])
    for key, value in targets.items():
        goal = TARGETS[key.split("@")[0]]
        value.update(target=goal, met=bool(value["ratio"] and value["ratio"] >= goal))
    defaults = [r for r in rows if r.get("default") and r.get("vs_port_fp32")]
    if defaults:
        worst = min(defaults, key=lambda r: r["vs_port_fp32"])
        targets["default_never_slower_than_port_fp32"] = dict(
            ratio=worst["vs_port_fp32"], impl=f"{worst['part']} {worst['size']}x{worst['batch']} {worst['impl']}",
            target=1.0, met=worst["vs_port_fp32"] >= 1.0)  # fmt: skip
    return targets


def scaling_summary(rows: list[dict]) -> dict[str, Any]:
    """Per-image zero-shot time by size for each mode and precision, and how much it grows per doubling of side."""
    out: dict[str, Any] = {}
    for row in rows:
        if row["part"] == "scaling":
            out.setdefault(row["impl"], {})[row["size"]] = row["median_ms"]
    for impl, by_size in out.items():
        sizes = sorted(by_size)
        out[impl] = dict(ms=by_size, growth={f"{a}->{b}": by_size[b] / by_size[a] for a, b in zip(sizes, sizes[1:])})
    return out


def machine(device: torch.device) -> dict[str, Any]:
    import torch
    import transformers

    from groupseg.models.precision import native_bf16, resolve_precision

    info = dict(platform=platform.platform(), python=platform.python_version(), torch=torch.__version__,
                transformers=transformers.__version__, device=str(device), threads=torch.get_num_threads(),
                cpu_count=os.cpu_count(), cpu=cpu_name(), cpu_capability=torch.backends.cpu.get_cpu_capability(),
                native_bf16=native_bf16(device.type), default_precision=resolve_precision("auto", device),
                load_average_start=os.getloadavg())  # fmt: skip
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def faster_precision_line(peak: dict[str, float], device: torch.device, default: str) -> str:
    """Which precision the measured matmul peak favours here, and what precision 'auto' picks."""
    from groupseg.models.precision import native_bf16

    ratio = peak["bf16"] / peak["fp32"]
    faster = "bf16" if ratio > 1 else "fp32"
    native = "native bf16" if native_bf16(device.type) else "no native bf16"
    return (f"bf16 matmuls run {ratio:.2f}× fp32 here ({native}): {faster} is the faster precision on this "
            f"{'GPU' if device.type == 'cuda' else 'CPU'}; precision 'auto' (the default) runs {default}")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- main -------------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="groupvit-s", help="model preset (default: groupvit-s)")
    parser.add_argument("--tiny", action="store_true", help="the groupvit-tiny preset at its own sizes: a smoke test")
    parser.add_argument("--only", nargs="+", choices=PARTS, help=f"parts to run (default: all of {', '.join(PARTS)})")
    parser.add_argument("--sizes", nargs="+", type=int, help="vision / zero-shot sizes (default: 1× and 2× native)")
    parser.add_argument("--scaling-sizes", nargs="+", type=int, help="scaling sizes (default: 1×, 2×, 4× native)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=8, help="training batch (default: 8)")
    parser.add_argument("--infer-batch", type=int, default=8,
                        help="also time zero-shot at the native size with this many images per call (default: 8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per measurement (default: 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default: 1)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu, cuda, cuda:1 ...")
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd zero-shot segmentor")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime rows (exported image tower)")
    parser.add_argument("--matmul-size", type=int, help="square matmul side for the peak (default: 2048; tiny 256)")
    parser.add_argument("--out", default="work_dirs/benchmark/benchmark.json", help="JSON output path")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from groupseg.models import build_config

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compile:  # compile in-process: a pool of compile workers would linger and load the timed rounds
        from torch._inductor import config as inductor_config

        inductor_config.compile_threads = 1
    from groupseg.models.load import check_device

    auto = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = check_device(auto if args.device == "auto" else args.device)
    except ValueError as err:
        print(f"error: --device: {err}", file=sys.stderr)
        return 2
    preset = "groupvit-tiny" if args.tiny else args.preset
    native = build_config(preset).image_size
    args.sizes = args.sizes or [native, 2 * native]
    args.scaling_sizes = args.scaling_sizes or [native, 2 * native, 4 * native]
    args.matmul_size = args.matmul_size or (256 if args.tiny else 2048)
    parts = args.only or PARTS
    if args.repeats < 1 or args.warmup < 0 or args.batch < 1:
        print("benchmark: --repeats and --batch must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    try:  # now, not after minutes of measuring
        out = output_file(args.out, "--out")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    info = machine(device)
    print(f"groupseg benchmark: {preset} on {info.get('gpu', info['cpu'])} ({device}, {info['threads']} threads, "
          f"{info['cpu_capability']}, {'native bf16' if info['native_bf16'] else 'no native bf16'}: "
          f"precision 'auto' runs "
          f"{info['default_precision']}), torch {info['torch']}, transformers {info['transformers']}, "
          f"load {info['load_average_start']}", flush=True)  # fmt: skip
    workdir = tempfile.TemporaryDirectory()
    bench = Bench(args, device, Path(workdir.name))
    if bench.default not in args.precisions:  # the default settings always get their rows
        args.precisions = [bench.default, *args.precisions]
    bench.matmul_peak()  # always: MFU needs it
    port, model = build_pair(preset, device)
    result: dict[str, Any] = dict(machine=info, preset=preset, args={k: v for k, v in vars(args).items()},
                                  parity_max_abs_diff=parity(port, model, native, device))  # fmt: skip
    print(HEADER, flush=True)
    if "vision" in parts:
        for size in args.sizes:
            bench.vision(port, model, size)
    if "zeroshot" in parts:
        for size in args.sizes:
            bench.zeroshot(port, model, size)
        if args.infer_batch > 1:  # throughput with images batched, both implementations alike
            bench.zeroshot(port, model, native, batch=args.infer_batch)
    if "train" in parts:
        bench.train(port, model)
    if "scaling" in parts:
        for size in args.scaling_sizes:
            bench.zeroshot(port, model, size, part="scaling", with_port=False)
    if "data" in parts:
        bench.data(model)
    if "accuracy" in parts:
        result["bf16_accuracy"] = bench.accuracy(model)
        if bench.onnx:
            result["onnx_accuracy"] = bench.onnx_accuracy(model)
    if "rss" in parts and device.type == "cpu":  # a CPU process's resident memory; a GPU's is peak_mem_mb
        bench.rss(model, 2 * native)
    workdir.cleanup()
    result["targets"] = add_ratios(bench.rows)
    result["scaling"] = scaling_summary(bench.rows)
    result.update(matmul_peak_gflops=bench.peak, rows=bench.rows)
    info["load_average_end"] = os.getloadavg()

    print("\n" + HEADER + "\n" + format_rows([r for r in bench.rows if "median_ms" in r]))
    for impl, value in result["scaling"].items():
        print(f"scaling {impl}: " + ", ".join(f"{k} ×{v:.2f}" for k, v in value["growth"].items()))
    for row in bench.rows:
        if row.get("default") and row.get("vs_port_fp32"):
            print(f"default settings vs the port's fp32: {row['part']} {row['size']}x{row['batch']} {row['impl']}: "
                  f"{row['vs_port_fp32']:.2f}×")  # fmt: skip
    for key, value in result["targets"].items():
        ratio = f"{value['ratio']:.2f}×" if value.get("ratio") else "n/a"
        verdict = "met" if value["met"] else "NOT met"
        print(f"target {key}: {ratio} ({value['impl']}) vs ≥{value['target']}× — {verdict}")
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
