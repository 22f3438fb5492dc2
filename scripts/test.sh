#!/usr/bin/env bash
# Quickstart command 2: set up if needed, then run the whole test suite.
# Extra arguments go to pytest (e.g. -m "not realdata", -k extract).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests (exit 5); the suite must run tests" >&2
  exit 1
fi
exit "$status"
