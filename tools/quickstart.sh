#!/usr/bin/env bash
# groupseg's main job on a fresh machine: set up .venv (once), then generate the synthetic world, train on its
# image-caption pairs, segment its held-out set zero-shot and print the mIoU next to the baselines.
# Extra arguments go to tools/quickstart.py (e.g. --minutes 5 --seed 1 --work-dir work_dirs/run2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
exec .venv/bin/python tools/quickstart.py "$@"
