#!/usr/bin/env bash
# bench/gpu_check.sh on a GPU machine without network, from the bundle of bench/device_bundle.sh
# (build/device/site.tar.xz, carried with the repository). Run from anywhere in the repository:
#
#   bash bench/gpu_check_device.sh     # venv in $GPU_CHECK_VENV (default /tmp/gpu-venv), then the check
#
# The venv sees this machine's python3 packages (CUDA torch, numpy, ...: its site-packages are added
# after the venv's own, also when python3 is itself a venv) and the bundle's pins, which shadow them.
# Results (summary.json, tune-start.log, the bare and one trial's train.log, the console) are copied
# into $OUT when it is set. GPU_CHECK_TIMEOUT_S (default 480) bounds the check itself.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
# No network there: the Hugging Face stack must not wait on the hub (model and data are local files),
# nor Ray on its usage report.
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
PY=${PYTHON:-python3}
VENV=${GPU_CHECK_VENV:-/tmp/gpu-venv}
BUNDLE=build/device/site.tar.xz
started=$(date +%s)
[[ -f "$BUNDLE" ]] || { echo "gpu_check_device.sh: no $BUNDLE (run bench/device_bundle.sh, carry build/device)" >&2; exit 1; }

if [[ ! -x "$VENV/bin/python" ]]; then
  # --without-pip: nothing is pip-installed, and a Debian/Ubuntu Python may lack ensurepip. Without
  # the venv module, the same layout by hand (pyvenv.cfg beside bin/ makes site-packages the venv's).
  if ! "$PY" -m venv --without-pip --system-site-packages "$VENV"; then
    base=$("$PY" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))') || exit 1
    ver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || exit 1
    mkdir -p "$VENV/bin" "$VENV/lib/python$ver/site-packages" && ln -sf "$base" "$VENV/bin/python" || exit 1
    printf 'home = %s\ninclude-system-site-packages = true\nversion = %s\n' "$(dirname "$base")" "$ver" > "$VENV/pyvenv.cfg"
  fi
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # The creating interpreter's site-packages, after the venv's own: a venv made from a venv would
  # otherwise see the base Python's packages only (no torch).
  "$PY" - "$site/_gpu_check_host_site.pth" <<'EOF' || exit 1
import site, sys
dirs = [d for d in dict.fromkeys(site.getsitepackages()) if d]
with open(sys.argv[1], "w") as f:
    f.write("import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs) + "\n")
EOF
  tar -C "$site" --no-overwrite-dir -xJf "$BUNDLE" || exit 1
  echo "$PWD" > "$site/_gpu_check_tuner_repo.pth"  # tuner from this checkout
  # llamafactory-cli runs `torchrun` from PATH: this venv's, not the host's (whose Python lacks the bundle).
  for script in "tune:tuner.cli" "llamafactory-cli:llamafactory.cli" "torchrun:torch.distributed.run"; do
    printf '#!%s\nimport sys\nfrom %s import main\nsys.exit(main())\n' "$VENV/bin/python" "${script#*:}" > "$VENV/bin/${script%%:*}"
    chmod +x "$VENV/bin/${script%%:*}"
  done
  echo "gpu_check_device.sh: $VENV ready in $(( $(date +%s) - started )) s"
fi
# Versions, and what gpu_check.sh's ready() imports: a failure shows here, not as a pip install without network.
"$VENV/bin/python" - <<'EOF' || { echo "gpu_check_device.sh: $VENV cannot run the check" >&2; exit 1; }
import importlib, importlib.metadata as md
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available(),
      "devices", torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
for name in ("transformers", "tokenizers", "huggingface_hub", "accelerate", "peft", "datasets", "trl",
             "deepspeed", "ray", "optuna", "sqlalchemy", "pydantic", "llamafactory", "numpy", "pandas", "pyarrow"):
    module = importlib.import_module(name)
    print(f"{name} {md.version(name)} {module.__file__}")
import llamafactory.train.tuner, ray.tune, tuner.cli  # gpu_check.sh's ready()
assert torch.cuda.is_available(), "torch sees no CUDA device"
EOF

OUT_DIR=${OUT:-}
log=${OUT_DIR:-build/gpu-check}/console.log
mkdir -p "$(dirname "$log")"
# Output to a file, not a pipe: Ray's daemons inherit it and must not hold this command open.
PIP_NO_INDEX=1 GPU_CHECK_VENV="$VENV" timeout --kill-after=20 "${GPU_CHECK_TIMEOUT_S:-480}" bash bench/gpu_check.sh > "$log" 2>&1
rc=$?
tail -c 9000 "$log"
echo "gpu_check_device.sh: gpu_check.sh exited $rc after $(( $(date +%s) - started )) s in all"

if [[ -n "$OUT_DIR" ]]; then
  run=${GPU_CHECK_WORK:-build/gpu-check}/run
  cp "$run/summary.json" "$run/tune-start.log" "$run/block.yaml" "$OUT_DIR/" 2>/dev/null
  cp "$run/bare/bare/0000/train.log" "$OUT_DIR/bare-train.log" 2>/dev/null
  cp "$run/trials/gpu-check/0000/train.log" "$OUT_DIR/trial0-train.log" 2>/dev/null
  # A trial's Ray-side failure lands in its result.json (reason, log tail).
  cp "$run/trials/gpu-check/0000/result.json" "$OUT_DIR/trial0-result.json" 2>/dev/null
  ls -la "$OUT_DIR"
fi
exit "$rc"
