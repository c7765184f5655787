#!/usr/bin/env bash
# Headless Chromium and its WebDriver from Debian's packages, for the browser test of the demo app (tests/test_app.py).
# Idempotent: does nothing when both are installed. Needs root (CI and the developers' machines run as root).
# Browser downloads (Playwright's, Selenium Manager's) cannot reach their hosts here; Debian's packages can.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "[install_browser] installing chromium and chromium-driver from Debian (about a minute)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
chromium --version >&2
