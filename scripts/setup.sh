#!/usr/bin/env bash
# Create .venv and install the project with its test extras (CPU torch pinned by
# constraints.txt). Quick when nothing changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# espeak-ng synthesises the real speech the test suite runs the speech detector on
if ! command -v espeak-ng >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing espeak-ng (Debian package) for the tests" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng; } \
      >/dev/null 2>&1 || echo "warning: could not install espeak-ng; tests that need speech will skip (fail under CI=true)" >&2
  else
    echo "note: espeak-ng is missing; tests that need speech skip. Install it: sudo apt-get install espeak-ng" >&2
  fi
fi
stamp=.venv/.installed
want=$(cat setup.cfg pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up .venv (first time: about a minute)" >&2
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]' 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import torch, librosa, h5py, soundfile, joblib, click, silero_vad, pyloudnorm" \
  || { echo "install failed: see the pip output above" >&2; exit 1; }
echo "$want" > "$stamp"
