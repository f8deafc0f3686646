#!/usr/bin/env bash
# Install tuner and everything it runs into ./.venv (or $TUNER_VENV), reproducibly, on a CPU machine.
#
# Why it is not a plain `pip install -e .` (details in ../shared/notes/install.md and README.md):
# - torch: the CPU build 2.13.0 (a local wheel here; set PIP_EXTRA_INDEX_URL to
#   https://download.pytorch.org/whl/cpu elsewhere). An unpinned resolve drags in a multi-GB CUDA torch.
# - requirements/cpu.lock pins every package (a `pip freeze` of a working install), installed with
#   --no-deps so nothing re-resolves. llamafactory 0.9.5 declares torchvision and torchaudio:
#   * torchvision is left out: PyPI's build needs libtorch_cuda.so, and once installed it breaks every
#     `import transformers`. Text SFT never uses it.
#   * torchaudio is installed (llamafactory's mm_plugin imports it at top level), minus its compiled
#     libraries, which need CUDA torch; without them `import torchaudio` works (audio is never used).
# - DeepSpeed compiles a C++ op on first use (~50 s); we trigger that here, not in the first trial.
# Re-running is cheap: a stamp of the inputs' hash skips work already done.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${TUNER_VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_VERSION=2.13.0
DEEPSPEED_OP=deepspeed.ops.op_builder.cpu.comm:ShareMemCommBuilder

stamp_of_inputs() { cat install.sh requirements/cpu.lock pyproject.toml | sha256sum | cut -c1-16; }
STAMP="$VENV/.tuner-installed-$(stamp_of_inputs)"
smoke() {
  "$VENV/bin/python" - <<'EOF'
import importlib
for name in ("llamafactory.data.mm_plugin", "llamafactory.train.tuner", "deepspeed", "ray.tune",
             "optuna", "optuna_dashboard", "sqlalchemy", "psycopg", "tuner.cli"):
    importlib.import_module(name)
import torch
assert torch.__version__.startswith("2.13.0"), torch.__version__
print("install OK: torch", torch.__version__)
EOF
}

if [[ -f "$STAMP" ]] && smoke >/dev/null 2>&1; then
  echo "install.sh: $VENV is up to date"
  exit 0
fi

start=$(date +%s)
echo "install.sh: creating $VENV with $PYTHON"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --quiet)
echo "install.sh: torch $TORCH_VERSION (CPU build)"
"${PIP[@]}" install "torch==$TORCH_VERSION"
if ! "$VENV/bin/python" -c 'import torch, sys; sys.exit(0 if "+cpu" in torch.__version__ or not torch.version.cuda else 1)'; then
  echo "install.sh: warning: the torch found is a CUDA build; on a GPU machine use the image in docker/" >&2
fi
echo "install.sh: pinned dependencies (requirements/cpu.lock, no re-resolve)"
"${PIP[@]}" install --no-deps -r requirements/cpu.lock
"${PIP[@]}" uninstall -y torchvision 2>/dev/null || true
rm -f "$VENV"/lib/python3*/site-packages/torchaudio/lib/*.so
echo "install.sh: tuner (editable)"
"${PIP[@]}" install --no-deps -e .
echo "install.sh: compiling DeepSpeed's CPU communication op once (about a minute)"
# Built into the venv's own folder (trials look there too, launch.child_env): two environments that
# share ~/.cache/torch_extensions rebuild the op in turn, and a trial stopped mid-build leaves a lock
# on which every later trial waits for ever.
DS_ACCELERATOR=cpu TORCH_EXTENSIONS_DIR="$VENV/torch_extensions" "$VENV/bin/python" -c "
import importlib
module, cls = '$DEEPSPEED_OP'.split(':')
getattr(importlib.import_module(module), cls)().load(verbose=False)
" >/dev/null 2>&1 || echo "install.sh: note: DeepSpeed op not precompiled; the first trial compiles it" >&2
smoke
rm -f "$VENV"/.tuner-installed-*
touch "$STAMP"
echo "install.sh: done in $(( $(date +%s) - start )) s"
