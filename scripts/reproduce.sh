#!/usr/bin/env bash
# The full reproduction of the README's figures (ser run --profile full): 5-fold
# cross-validation with 2-member ensembles, the leaky random split as a contrast, the
# final model on every actor, its bundle and a prediction. About 1 h 45 min on a 2-core
# CPU (it says so before it starts); not yet timed on a GPU. Rerunning resumes.
# SER_SOURCE=PATH uses a local zip or folder of Actor_XX/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
exec .venv/bin/ser run --profile full "$@"
