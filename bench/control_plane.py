"""Control-plane cost: tuner's per-trial bookkeeping with a trivial trainable (no training, no Ray).

For each backend (SQLite, the local PostgreSQL) and each scale, runs N trials through the real
StudySession/StudyStore code: ask (budget check under the study lock, trial folder, attrs), 4
intermediate reports, and the completion (attrs, tell, spent budget, disk pass). Prints p50/p99
per trial and per report for the first and the last 10% of trials (how cost grows with N).

    .venv/bin/python bench/control_plane.py [--scales 100,1000,5000] [--backends sqlite,postgresql]

Last line: the ratio p50(last 10%) / p50(first 10%) at the largest scale on SQLite.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

from harness import ROOT, dummy_block

from tuner.config.space import build_space
from tuner.study.budget import Budget, Ledger
from tuner.study.samplers import make_sampler
from tuner.study.session import StudySession
from tuner.study.store import StudyStore

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run(url: str, n: int, tmp: Path, sampler: str = "random") -> dict:
    """`sampler`: random isolates tuner's bookkeeping; tpe adds the sampler's own cost."""
    block = dummy_block(tmp)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    space = build_space(block)
    store = StudyStore.open(url, name, sampler=make_sampler(sampler, 0, space))
    session = StudySession(store, block, space, Ledger(Budget("trials", n)), tmp / "trials")
    per_trial, per_report = [], []
    started = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        ticket = session.next_trial()
        for step in range(1, 5):
            r0 = time.perf_counter()
            session.on_eval(ticket.number, 3.0 - step * 0.1, step * 100)
            per_report.append(time.perf_counter() - r0)
        session.on_complete(ticket.number, {"final": True, "exit_class": "ok", "value": 2.5, "wall_s": 1.0})
        per_trial.append(time.perf_counter() - t0)
    total = time.perf_counter() - started
    tenth = max(1, n // 10)
    return {
        "n": n,
        "sampler": sampler,
        "total_s": round(total, 2),
        "trial_p50_ms_first": round(pct(per_trial[:tenth], 0.5), 2),
        "trial_p50_ms_last": round(pct(per_trial[-tenth:], 0.5), 2),
        "trial_p99_ms_last": round(pct(per_trial[-tenth:], 0.99), 2),
        "report_p50_ms": round(pct(per_report, 0.5), 2),
        "report_p99_ms": round(pct(per_report, 0.99), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="100,1000,5000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sampler", default="random", help="random: bookkeeping only; tpe: plus TPE's cost")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "control_plane.json"))
    args = parser.parse_args()
    rows = []
    for backend in args.backends.split(","):
        for n in [int(s) for s in args.scales.split(",")]:
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{tmp}/bench.db" if backend == "sqlite" else POSTGRES
                row = {"backend": backend, **run(url, n, Path(tmp), args.sampler)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    largest = max((r for r in rows if r["backend"] == rows[0]["backend"]), key=lambda r: r["n"])
    growth = largest["trial_p50_ms_last"] / largest["trial_p50_ms_first"]
    print(f"ratio per-trial p50 last/first 10% at n={largest['n']} ({largest['backend']}): {growth:.2f}")


if __name__ == "__main__":
    main()
