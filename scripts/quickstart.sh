#!/usr/bin/env bash
# Quickstart command 1: set up .venv (once), then the quick profile of the whole pipeline
# (ser run --profile quick: one test fold, one model, 60 epochs; about 4 minutes on a
# 2-core CPU after the install), ending with a report, a bundle and a prediction.
# SER_SOURCE=PATH uses a local zip or folder of Actor_XX/ instead of the official
# download. Rerunning resumes where it stopped. The README's figures: scripts/reproduce.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
exec .venv/bin/ser run --profile quick "$@"
