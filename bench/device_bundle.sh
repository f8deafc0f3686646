#!/usr/bin/env bash
# Offline bundle for bench/gpu_check.sh on a GPU machine without network (the project's lent H200:
# Python 3.12, CUDA torch 2.11 + transformers/numpy/pandas/pyarrow... preinstalled, no PyPI).
#
#   bash bench/device_bundle.sh          # here, with PyPI: writes build/device/ (git-ignored), prints its size
#   bash bench/gpu_check_device.sh       # there, from the repo root, with build/device carried along
#
# build/device/site.tar.xz holds cp312 manylinux x86_64 installs of this project's pins (requirements/
# cpu.lock) of what `tune check/render/start` and `llamafactory-cli train` import, minus what the device
# already has as binaries (torch, torchvision, torchaudio, triton, nvidia-*, numpy, pandas, pyarrow, scipy,
# ...): bench/gpu_check_device.sh unpacks it into a --system-site-packages venv, so these pins shadow the
# system's. Left out: what the GPU check never imports (gradio/fastapi/uvicorn: LLaMA-Factory's web UI and
# API; av: multimodal only; modelscope, hf_transfer, wandb, psycopg, optuna-dashboard, plotly, fire, tyro,
# torchdata) and Ray's Java jars, RLlib, Serve, LLM, the dashboard's web client. build/device/MANIFEST.txt
# lists what is in it. Wheels are cached in build/device-wheels/ (not carried). Needs pip, a python3.12
# (PYENV_VERSION=3.12.1 python3.12 here) and .venv (its torch builds DeepSpeed's sdist into a wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=build/device
WHEELS=${DEVICE_WHEELS:-build/device-wheels}
PY312=${PY312:-$(PYENV_VERSION=3.12.1 command -v python3.12 || true)}
[[ -n "$PY312" ]] || { echo "device_bundle.sh: no python3.12 (set PY312)" >&2; exit 1; }
export PYENV_VERSION=3.12.1

# Binary (cp312 manylinux) and pure-Python wheels, all at this project's pins.
PINS=(
  llamafactory==0.9.5 transformers==5.6.0 tokenizers==0.22.2 huggingface_hub==1.33.0
  accelerate==1.11.0 peft==0.18.1 datasets==4.0.0 trl==0.24.0
  omegaconf==2.4.0 dill==0.3.8 multiprocess==0.70.16 fsspec==2025.3.0 hjson==3.1.0
  ray==2.60.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
  tensorboardX==2.6.5
  optuna==5.0.0 alembic==1.20.1 Mako==1.4.3 SQLAlchemy==2.1.9 colorlog==6.12.0 cmaes==0.13.1
  pydantic==2.12.3 pydantic_core==2.41.4 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0
  typer==0.29.2 rich==15.0.0 click==8.5.1 ruamel.yaml==0.19.1
)
mkdir -p "$WHEELS"
for pin in "${PINS[@]}"; do
  name=${pin%%==*} version=${pin#*==}
  pattern=$(echo "$name" | tr '[:upper:]-.' '[:lower:]__')
  if ls "$WHEELS" | tr '[:upper:]' '[:lower:]' | grep -q "^${pattern}-${version}-"; then continue; fi
  "$PY312" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$WHEELS" "$pin"
done
# DeepSpeed is an sdist: a pure-Python wheel, ops left to JIT (DS_BUILD_OPS=0); its setup.py imports torch.
if ! ls "$WHEELS"/deepspeed-0.19.8-*.whl >/dev/null 2>&1; then
  DS_BUILD_OPS=0 .venv/bin/python -m pip wheel --quiet --disable-pip-version-check --no-deps \
    --no-build-isolation -w "$WHEELS" deepspeed==0.19.8
fi

site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
"$PY312" -m pip install --quiet --disable-pip-version-check --no-deps --no-index --no-compile \
  --target "$site" "$WHEELS"/*.whl
# Nothing of Ray's that a local ray.init() + Ray Tune uses: Java, RLlib, Serve, LLM, the dashboard's web UI.
rm -rf "$site"/ray/jars "$site"/ray/rllib "$site"/ray/serve "$site"/ray/llm "$site"/ray/dashboard/client
# Console scripts point at this machine's interpreter: gpu_check_device.sh writes its own.
rm -rf "$site"/bin
find "$site" -name __pycache__ -type d -prune -exec rm -rf {} +

rm -rf "$DEST"
mkdir -p "$DEST"
(cd "$site" && ls -d ./*.dist-info | sed 's|^\./||; s|\.dist-info$||' | sort) > "$DEST/MANIFEST.txt"
chmod 755 "$site"  # the archive's ./ entry (mktemp's 0700 would otherwise reach site-packages)
XZ_OPT=${XZ_OPT:--9e} tar -C "$site" --sort=name --owner=0 --group=0 --numeric-owner -cJf "$DEST/site.tar.xz" .
echo "device_bundle.sh: $(du -sh "$site" | cut -f1) unpacked -> $(du -h "$DEST/site.tar.xz" | cut -f1) in $DEST/site.tar.xz" \
  "($(wc -l < "$DEST/MANIFEST.txt") distributions, $DEST/MANIFEST.txt); carried in all: $(du -sh "$DEST" | cut -f1)"
