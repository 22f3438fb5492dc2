#!/usr/bin/env bash
# What a user gets from 'pip install': a plain (not editable) install of this checkout,
# no extras, into a fresh venv: no torch there (checked). The installed 'ser' and
# 'python -m pipeline' run from another directory, scoring a sentence synthesised by
# espeak-ng with the shipped model (its ONNX form): a file, a folder and standard input;
# a stage that needs the [train] extra says so. Called by .ci/run after the tests.
# About half a minute with pip's cache.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${PYTHON:-python3}" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet -c constraints.txt "$repo" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
cd "$work"  # no checkout, no data/ or artifacts/ here
if "$work/venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "check_install: the plain install should not install torch" >&2; exit 1
fi
espeak-ng -w hello.wav "I cannot believe you did that again."
mkdir folder && espeak-ng -w folder/one.wav "Where were you last night?" \
  && espeak-ng -w folder/two.wav "That is the best news I have heard all year."
"$work/venv/bin/ser" --version | grep -q "shipped model ravdess-cnn@"
"$work/venv/bin/ser" predict hello.wav --windows -j 1
"$work/venv/bin/ser" predict folder -j 2 -o folder.jsonl
[ "$(grep -c '"emotion"' folder.jsonl)" = 2 ]
"$work/venv/bin/python" -m pipeline predict - -j 1 < hello.wav | grep -q "Predicted emotion"
if "$work/venv/bin/ser" train 2>err.txt; then
  echo "check_install: train should need the [train] extra" >&2; exit 1
fi
grep -q "pip install 'ser-pipeline\[train\]'" err.txt
if "$work/venv/bin/ser" predict --bundle latest hello.wav 2>err.txt; then
  echo "check_install: --bundle latest should fail without an export" >&2; exit 1
fi
grep -q "no exported bundle in $work/artifacts/bundles" err.txt
# [serve] adds the service, still without torch
"$work/venv/bin/python" -m pip install --quiet -c "$repo/constraints.txt" "$repo[serve]" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
if "$work/venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "check_install: [serve] should not install torch" >&2; exit 1
fi
"$work/venv/bin/ser" serve --port 8719 2>serve.log &
server=$!
"$work/venv/bin/python" - <<'PY' || { kill $server; cat serve.log >&2; exit 1; }
import json, time, urllib.request
for _ in range(60):
    try:
        health = json.load(urllib.request.urlopen("http://127.0.0.1:8719/health", timeout=2))
        break
    except OSError:
        time.sleep(0.5)
else:
    raise SystemExit("check_install: ser serve did not answer /health within 30 s")
assert health["model_loaded"], health
PY
kill $server
echo "check_install: the plain install (no torch) scores from another directory; [serve] serves"
