#!/usr/bin/env bash
# GPU check, one command: on one CUDA GPU, a ~0.5B random-init Qwen3 tuned by a 4-trial DeepSpeed ZeRO-3
# study (`tune start`, bf16, flash_attn fa2 when flash-attn imports) next to the same YAML under bare
# `llamafactory-cli train`; prints the trials' start-up share, tokens/s per GPU and tuner's overhead.
# Sized for 8 minutes on an H200 including the install (bench/gpu_check.py says where the time goes).
#
#   bash bench/gpu_check.sh            # a CUDA machine (PyPI reachable, or GPU_CHECK_VENV already complete)
#   bash bench/gpu_check.sh --dry-run  # any machine, e.g. CI: render + preflight of the GPU block, no training
#
# GPU_CHECK_VENV: an environment to use (default build/gpu-check/venv); created and filled with the GPU
# route of README.md (`pip install -c requirements/gpu.lock -e ".[gpu]"`) only if it cannot already train.
# Results stay under build/gpu-check/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${GPU_CHECK_WORK:-build/gpu-check}

if [[ "${1:-}" == "--dry-run" ]]; then
  # Nothing is trained, so the CPU environment of install.sh is enough; a scratch folder keeps the
  # repository clean and lets several dry runs (parallel tests) never share files.
  PY=${GPU_CHECK_PYTHON:-.venv/bin/python}
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  # TUNER_CACHE_DIR: the converted data and LLaMA-Factory facts land in the scratch folder too.
  TUNER_CACHE_DIR="$scratch/cache" "$PY" bench/gpu_check.py --dry-run --work "$scratch/run"
  exit 0
fi

VENV=${GPU_CHECK_VENV:-$WORK/venv}
# What a trial needs on a GPU; anything missing means (re)installing the GPU route.
ready() {
  [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c '
import torch, deepspeed, llamafactory.train.tuner, ray.tune, optuna, tuner.cli
assert torch.cuda.is_available(), "torch sees no CUDA device"' 2>/dev/null
}
if ! ready; then
  start=$(date +%s)
  PYTHON=${PYTHON:-$(command -v python3.12 || command -v python3.11 || command -v python3)}
  echo "gpu_check.sh: installing the GPU route into $VENV with $PYTHON (a few minutes: ~4 GB of CUDA wheels)"
  "$PYTHON" -m venv "$VENV"
  # The README's command. torch 2.8.0 comes from PyPI, whose Linux wheels are CUDA 12.8 builds.
  # flash-attn is left out: without GitHub its sdist compiles for an hour; fa2 is used only if present.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c requirements/gpu.lock -e ".[gpu]" || {
    echo "gpu_check.sh: pip could not install the GPU route: is PyPI reachable from here? Otherwise point" \
         "GPU_CHECK_VENV at an environment with CUDA torch, LLaMA-Factory, DeepSpeed and tuner" >&2
    exit 1
  }
  echo "gpu_check.sh: installed in $(( $(date +%s) - start )) s"
  if ! ready; then
    echo "gpu_check.sh: $VENV cannot train on a GPU (no CUDA device, or an import failed):" >&2
    "$VENV/bin/python" -c 'import torch, deepspeed, llamafactory.train.tuner, ray.tune, optuna, tuner.cli
print("torch", torch.__version__, "CUDA", torch.version.cuda, "devices", torch.cuda.device_count())' >&2 || true
    exit 1
  fi
fi
# A fresh run folder: the study, trial folders and model of an earlier run would be refused or reused.
rm -rf "$WORK/run"
# Trials run `tune` and `llamafactory-cli` from the same environment as this Python.
# GPU_CHECK_PY: another check of the same environment and folder (bench/gpu_memory_check.py).
exec "$VENV/bin/python" "${GPU_CHECK_PY:-bench/gpu_check.py}" --work "$WORK/run" "$@"
