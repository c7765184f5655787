#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install groupseg into it.
# Idempotent: a second run only checks that requirements.txt did not change since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${GROUPSEG_VENV:-.venv}
stamp="$VENV/.requirements.sha256"
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[setup] creating $VENV and installing requirements (2–6 minutes on a fresh 2-core machine, once)" >&2
python3 -m venv "$VENV"
quiet() { "$@" 2>&1 | { grep -v "^WARNING: Location" || true; } >&2; }  # the local mirror's noise
quiet "$VENV/bin/pip" install -q -r requirements.txt
quiet "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import groupseg" 
echo "$want" > "$stamp"
