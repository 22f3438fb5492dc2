#!/usr/bin/env bash
# What a user gets from 'pip install': a plain (not editable) install of this checkout
# into a fresh venv, then the installed 'ser' and 'python -m pipeline' run from another
# directory, scoring a sentence synthesised by espeak-ng with the shipped model.
# Called by .ci/run after the tests. About 1-2 minutes (pip's cache holds torch).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${PYTHON:-python3}" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet -c constraints.txt "$repo" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
cd "$work"  # no checkout, no data/ or artifacts/ here
espeak-ng -w hello.wav "I cannot believe you did that again."
"$work/venv/bin/ser" --version
"$work/venv/bin/ser" predict hello.wav --windows -j 1
"$work/venv/bin/python" -m pipeline predict - -j 1 < hello.wav | grep -q "Predicted emotion"
if "$work/venv/bin/ser" predict --bundle latest hello.wav 2>err.txt; then
  echo "check_install: --bundle latest should fail without an export" >&2; exit 1
fi
grep -q "no exported bundle in $work/artifacts/bundles" err.txt
echo "check_install: the installed console script works from another directory"
