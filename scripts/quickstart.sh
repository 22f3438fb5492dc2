#!/usr/bin/env bash
# Quickstart command 1: set up .venv, then run the whole pipeline end to end.
# SER_SOURCE=PATH uses a local zip or folder of Actor_XX/ instead of the official download.
# Every stage is cached: rerunning this script redoes only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
py() {  # run one stage and print its wall time
  local started=$SECONDS
  .venv/bin/python cli.py "$@"
  echo "[quickstart] cli.py $* took $((SECONDS - started)) s" >&2
}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

py download
py index
py extract
py train --fold all
py evaluate --fold all
py train --fold random       # the leaky clip-level split, only as a contrast
py evaluate --fold random
py train --final
py export
root=$(.venv/bin/python -c "from pipeline.download import corpus_root; print(corpus_root('${SER_DATA_DIR:-data}'))")
example=$(find "$root" -name '03-01-*' \( -name '*.wav' -o -name '*.flac' \) | sort | sed -n 1p)
echo "prediction for $example with the model just exported:"
py predict --bundle latest "$example"
