#!/usr/bin/env bash
# Runs every benchmark in sequence (they share the CPU: never run two at once) and keeps the logs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p bench/results
$PY bench/ray_anchor.py --trials 200 --concurrency 2 | tee bench/results/ray_anchor.log
$PY bench/search.py --trials 30 --seeds 3 | tee bench/results/search.log
$PY bench/search.py --trials 30 --seeds 3 --strategies random,tpe-s5+asha,gp+asha,gp-s5+asha \
    --out bench/results/search_gp_rungs.json | tee bench/results/search_gp_rungs.log
$PY bench/search_demo.py --trials 10 --seeds 8 | tee bench/results/search_demo.log
$PY bench/search_demo.py --trials 20 --seeds 4 --startup-trials 5 --out bench/results/search_demo_20.json \
    | tee bench/results/search_demo_20.log
$PY bench/landscape.py --grid learning_rate=1e-5,2e-5,5e-5,1e-4,2e-4,3e-4,5e-4,7e-4,1e-3 warmup_ratio=0.0,0.1,0.2 \
    --at 17,50 --out bench/results/demo_table.json | tee bench/results/demo_table.log
$PY bench/promotion_asha.py --seeds 50 --functions demo,demo-free-start --out bench/results/promotion_asha_demo.json \
    | tee bench/results/promotion_asha_demo.log
$PY bench/asha_default.py --seeds 20 --jobs 2 | tee bench/results/asha_default.log
$PY bench/asha_default.py --seeds 20 --functions mlp-digits,gbm-cancer,branin,hartmann3,demo --samplers default,gp,optuna-tpe,random --jobs 2 --out bench/results/asha_default_curves.json | tee bench/results/asha_default_curves.log
$PY bench/landscape.py --grid learning_rate=1e-5,2e-5,5e-5,1e-4,2e-4,3e-4,5e-4,7e-4,1e-3 warmup_ratio=0.0,0.1,0.2 \
    --every 10 --at 16,17,30,48,50,90 --out bench/results/demo_table_rungs.json | tee bench/results/demo_table_rungs.log
$PY bench/rung_warmup.py --seeds 60 --jobs 2 | tee bench/results/rung_warmup.log
$PY bench/overhead.py | tee bench/results/overhead.log
$PY bench/control_plane.py --scales 100,1000,5000 --backends sqlite,postgresql | tee bench/results/control_plane.log
