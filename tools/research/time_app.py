"""Time the demo's label mode as the page runs it: first call (text embeddings + image), next calls (image only),
and drawing the answer. A random model of the given preset, so no weights are needed.

    OMP_NUM_THREADS=1 python tools/research/time_app.py [--preset groupvit-s] [--size 448] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

import numpy as np  # noqa: E402

import groupseg  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="groupvit-s", help="model size preset (default groupvit-s)")
    parser.add_argument("--size", type=int, default=448, help="square image side and short side (default 448)")
    parser.add_argument("--vocabulary", default="PASCAL VOC", help="a preset of the page (default 'PASCAL VOC')")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    from groupseg.app import Handlers, Settings
    from groupseg.app.presets import vocabulary_presets

    torch.manual_seed(0)
    handlers = Handlers(groupseg.GroupViT(groupseg.build_config(args.preset)).eval(), Settings(short_side=args.size))
    vocabulary = vocabulary_presets(osp.join(REPO, "configs"))[args.vocabulary].text
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    start = time.perf_counter()
    handlers.labels(image, vocabulary)
    print(f"first call (text embeddings + image): {time.perf_counter() - start:.2f} s")
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        answer = handlers.labels(image, vocabulary)
        times.append(time.perf_counter() - start)
    print(f"next calls (image only): median {np.median(times):.2f} s of {args.repeats}")
    start = time.perf_counter()
    answer.overlay(), answer.legend_html()
    print(f"overlay and legend: {time.perf_counter() - start:.3f} s")
    print(f"threads {torch.get_num_threads()}; {osp.basename(sys.executable)} on {_cpu()}")
    return 0


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
