#!/usr/bin/env bash
# Runs every benchmark in sequence (they share the CPU: never run two at once) and keeps the logs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p bench/results
$PY bench/ray_anchor.py --trials 200 --concurrency 2 | tee bench/results/ray_anchor.log
$PY bench/search.py --trials 30 --seeds 3 | tee bench/results/search.log
$PY bench/search_demo.py --trials 10 --seeds 3 | tee bench/results/search_demo.log
$PY bench/overhead.py | tee bench/results/overhead.log
$PY bench/control_plane.py --scales 100,1000,5000 --backends sqlite,postgresql | tee bench/results/control_plane.log
