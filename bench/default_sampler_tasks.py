"""The tasks of bench/default_sampler.py: tabular HPO of scikit-learn models, and synthetic functions.

No public HPO benchmark with its data installs from the package registry (yahpo-gym, syne-tune's
blackbox repository, mf-prior-bench, carps, nas-bench-201, nasbench301: code or configs only, the
tables and surrogates download from elsewhere). So, as bayesmark does, real HPO of scikit-learn
models on the datasets scikit-learn ships, made *tabular* as HPOBench and NAS-Bench do: every point
of a grid is trained once (epochs and boosting rounds are free: one training records each), the
table is cached in bench/results/default_sampler.tables.json, and a sampler's proposal is snapped
to the nearest grid point (log-nearest on log axes). Plus Branin and Hartmann-6 (the BO literature's
standard test functions, evaluated exactly).

Each task: Optuna distributions by name (what tuner's search space turns into), an objective to
minimise, the optimum, and a reference value (the median over the space: random-config quality).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuner.config.space import Param

TABLES = Path(__file__).resolve().parent / "results" / "default_sampler.tables.json"


@dataclass(frozen=True)
class Task:
    name: str
    distributions: dict[str, Any]  # optuna BaseDistribution by name
    objective: Callable[[dict[str, Any]], float]
    optimum: float
    reference: float  # the median over the space

    def regret(self, best: float) -> float:
        """Normalized regret: 0 at the optimum, 1 at the space's median configuration."""
        return max(0.0, (best - self.optimum) / (self.reference - self.optimum))


# ---------- tabular tasks: axes, the training that fills a table, the lookup ----------

# axis: (kind, grid); kind "log" | "lin" | "cat" | "int" (every integer of the grid's range is stored)
MLP_AXES: dict[str, tuple[str, list[Any]]] = {
    "learning_rate": ("log", [float(v) for v in np.geomspace(1e-4, 1e-1, 8)]),
    "alpha": ("log", [1e-6, 3e-4, 1e-1]),
    "batch_size": ("cat", [16, 32, 64, 128]),
    "hidden": ("log", [16, 64, 256]),
    "epochs": ("int", list(range(1, 41))),
}
GBM_AXES: dict[str, tuple[str, list[Any]]] = {
    "learning_rate": ("log", [float(v) for v in np.geomspace(0.005, 1.0, 7)]),
    "max_depth": ("int", [1, 2, 3, 4, 5, 6]),
    "subsample": ("lin", [0.5, 0.75, 1.0]),
    "n_estimators": ("int", list(range(1, 151))),
}
SVM_AXES: dict[str, tuple[str, list[Any]]] = {
    "C": ("log", [float(v) for v in np.geomspace(1e-3, 1e3, 25)]),
    "gamma": ("log", [float(v) for v in np.geomspace(1e-5, 1e1, 25)]),
}


def _split(loader: Callable[..., Any], scale: bool) -> tuple[Any, ...]:
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = loader(return_X_y=True)
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    if scale:
        scaler = StandardScaler().fit(xtr)
        xtr, xva = scaler.transform(xtr), scaler.transform(xva)
    return xtr, xva, ytr, yva


def _fill_mlp() -> list[float]:
    """MLP on digits: validation log-loss after each epoch (an SFT run's eval_loss in miniature:
    too high a learning rate diverges, too many epochs over-fits)."""
    from sklearn.datasets import load_digits
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier

    xtr, xva, ytr, yva = _split(load_digits, scale=True)
    out: list[float] = []
    ax = MLP_AXES
    for lr in ax["learning_rate"][1]:
        for alpha in ax["alpha"][1]:
            for bs in ax["batch_size"][1]:
                for hidden in ax["hidden"][1]:
                    m = MLPClassifier((hidden,), learning_rate_init=lr, alpha=alpha, batch_size=bs, random_state=0)
                    for _ in ax["epochs"][1]:
                        m.partial_fit(xtr, ytr, classes=np.arange(10))
                        loss = log_loss(yva, np.clip(m.predict_proba(xva), 1e-15, 1), labels=np.arange(10))
                        out.append(float(min(loss, 10.0)) if math.isfinite(loss) else 10.0)
    return out


def _fill_gbm() -> list[float]:
    """Gradient boosting on breast_cancer: validation log-loss after each boosting round."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import log_loss

    xtr, xva, ytr, yva = _split(load_breast_cancer, scale=False)
    out: list[float] = []
    ax = GBM_AXES
    rounds = len(ax["n_estimators"][1])
    for lr in ax["learning_rate"][1]:
        for depth in ax["max_depth"][1]:
            for sub in ax["subsample"][1]:
                g = GradientBoostingClassifier(
                    learning_rate=lr, n_estimators=rounds, max_depth=depth, subsample=sub, random_state=0
                ).fit(xtr, ytr)
                out.extend(float(log_loss(yva, np.clip(p, 1e-15, 1))) for p in g.staged_predict_proba(xva))
    return out


def _fill_svm() -> list[float]:
    """RBF SVM on breast_cancer: 1 - balanced accuracy, 5-fold cross-validation."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, y = load_breast_cancer(return_X_y=True)
    out: list[float] = []
    for c in SVM_AXES["C"][1]:
        for gamma in SVM_AXES["gamma"][1]:
            model = make_pipeline(StandardScaler(), SVC(C=c, gamma=gamma))
            out.append(float(1 - cross_val_score(model, x, y, cv=5, scoring="balanced_accuracy").mean()))
    return out


TABULAR = {
    "mlp-digits": (MLP_AXES, _fill_mlp),
    "gbm-cancer": (GBM_AXES, _fill_gbm),
    "svm-cancer": (SVM_AXES, _fill_svm),
}


def load_tables(log: Callable[[str], None] = print, names: tuple[str, ...] = tuple(TABULAR)) -> dict[str, list[float]]:
    """The cached tables `names`; a missing one is computed once (single-threaded, minutes) and saved."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tables: dict[str, list[float]] = json.loads(TABLES.read_text()) if TABLES.exists() else {}
    for name, (axes, fill) in TABULAR.items():
        if name in names and name not in tables:
            started = time.monotonic()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tables[name] = [round(v, 6) for v in fill()]
            assert len(tables[name]) == math.prod(len(g) for _, g in axes.values())
            log(f"table {name}: {len(tables[name])} points in {time.monotonic() - started:.0f} s")
            TABLES.parent.mkdir(parents=True, exist_ok=True)
            TABLES.write_text(json.dumps(tables, separators=(",", ":")))
    return tables


def param(key: str, kind: str, grid: list[Any]) -> Param:
    """An axis as tuner's search space would hold it (`.distribution()` is what a sampler is asked with)."""
    if kind == "cat":
        return Param(key, "categorical", "training", choices=tuple(grid))
    integer = all(isinstance(v, int) for v in grid)
    return Param(key, "int" if integer else "float", "training", grid[0], grid[-1], log=kind == "log")


def _index(kind: str, grid: list[Any], value: Any) -> int:
    if kind == "cat":
        return grid.index(value)
    if kind == "log":
        return int(np.argmin([abs(math.log(value) - math.log(g)) for g in grid]))
    return int(np.argmin([abs(value - g) for g in grid]))


def tabular_task(name: str, table: list[float]) -> Task:
    axes = TABULAR[name][0]
    sizes = [len(g) for _, g in axes.values()]
    values = np.asarray(table, dtype=float)

    def objective(params: dict[str, Any]) -> float:
        idx = [_index(kind, grid, params[key]) for key, (kind, grid) in axes.items()]
        return float(values[np.ravel_multi_index(idx, sizes)])

    dists = {key: param(key, kind, grid).distribution() for key, (kind, grid) in axes.items()}
    return Task(name, dists, objective, float(values.min()), float(np.median(values)))


# ---------- synthetic functions ----------

H6_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
H6_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]
H6_ALPHA = [1.0, 1.2, 3.0, 3.2]


def branin(p: dict[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(p: dict[str, Any]) -> float:
    x = [p[f"x{j}"] for j in range(1, 7)]
    return -sum(H6_ALPHA[i] * math.exp(-sum(H6_A[i][j] * (x[j] - H6_P[i][j]) ** 2 for j in range(6))) for i in range(4))


def synthetic_task(name: str) -> Task:
    from optuna.distributions import FloatDistribution

    if name == "branin":
        dists = {"x1": FloatDistribution(-5.0, 10.0), "x2": FloatDistribution(0.0, 15.0)}
        fn, optimum = branin, 0.397887
    else:
        dists = {f"x{j}": FloatDistribution(0.0, 1.0) for j in range(1, 7)}
        fn, optimum = hartmann6, -3.32237
    rng = np.random.default_rng(0)
    sample = [fn({k: rng.uniform(d.low, d.high) for k, d in dists.items()}) for _ in range(10_000)]
    return Task(name, dists, fn, optimum, float(np.median(sample)))


TASKS = (*TABULAR, "branin", "hartmann6")


def all_tasks(log: Callable[[str], None] = print, names: tuple[str, ...] = TASKS) -> list[Task]:
    """The tasks `names`, in TASKS order (tables computed first if missing)."""
    tables = load_tables(log, tuple(n for n in names if n in TABULAR))
    return [tabular_task(n, tables[n]) if n in TABULAR else synthetic_task(n) for n in TASKS if n in names]
