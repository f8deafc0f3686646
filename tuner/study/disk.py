"""Disk: drop the weights and checkpoints of trials the study no longer needs.

A full fine-tune writes a full model per trial (16 GB for an 8B model) plus checkpoints with
optimizer state. Kept: the best K COMPLETE trials (a multi-objective study: its Pareto front),
trials the user pinned (`tune pin`), and interrupted trials whose retry may still continue from
their checkpoint. Logs, metrics and configs always stay: only weight files and checkpoint folders go.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.study.front import ranked

if TYPE_CHECKING:
    from tuner.study.store import StudyStore

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def size_of(path: Path) -> int:
    total = 0
    for item in path.rglob("*"):
        try:
            if item.is_file() and not item.is_symlink():
                total += item.stat().st_size
        except OSError:
            continue
    return total


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def keepers(
    trials: list[Any], keep_best: int, directions: Sequence[str], pinned: set[int] | frozenset[int] = frozenset()
) -> set[int]:
    """Trials whose weights stay: the `keep_best` best (a multi-objective study: its whole Pareto
    front, when keep_best > 0), pinned ones, interrupted ones awaiting their retry, running ones."""
    best = ranked(trials, directions)
    kept = best if len(directions) > 1 else best[:keep_best]
    keep = {t.number for t in kept} if keep_best > 0 else set()
    keep |= set(pinned) | {t.number for t in trials if t.user_attrs.get("pinned")}
    finished = {"COMPLETE", "PRUNED", "FAIL"}
    retried = {int(t.user_attrs["retry_of"]) for t in trials if "retry_of" in t.user_attrs and t.state.name in finished}
    keep |= {
        t.number
        for t in trials  # an interrupted trial keeps its checkpoint until its retry has run
        if t.user_attrs.get("exit_class") == "interrupted" and t.number not in retried
    }
    keep |= {t.number for t in trials if t.state.name == "RUNNING"}
    return keep


def _weights(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.glob("checkpoint-*") if p.is_dir()]
    found += [p for p in output_dir.glob("global_step*") if p.is_dir()]
    found += [p for p in output_dir.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES]
    return found


def prune_weights(
    trials: list[Any],
    keep_best: int,
    directions: Sequence[str],
    weightless: set[int] | None = None,
    pinned: set[int] | frozenset[int] = frozenset(),
) -> dict[int, int]:
    """Delete weights of trials not kept; returns bytes freed per trial.

    `weightless`, when given, is the caller's memory of finished trials already left without weights
    (nothing writes into a finished trial's folder again): they are skipped, and the trials this pass
    leaves weightless are added, so a long study does not scan thousands of folders per trial."""
    keep = keepers(trials, keep_best, directions, pinned)
    freed: dict[int, int] = {}
    for t in trials:
        output = t.user_attrs.get("output_dir")
        if t.number in keep or not output or (weightless is not None and t.number in weightless):
            continue
        if weightless is not None and t.state.name in ("COMPLETE", "PRUNED", "FAIL"):
            weightless.add(t.number)
        for path in _weights(Path(output)):
            size = size_of(path) if path.is_dir() else path.stat().st_size
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            freed[t.number] = freed.get(t.number, 0) + size
    if freed:
        log.info("freed %s of weights from trials %s", human(sum(freed.values())), sorted(freed))
    return freed


def free_weights(store: StudyStore, keep_best: int, weightless: set[int]) -> None:
    """Prune the study's weights and keep the tally of freed bytes on the study (finished trials are
    immutable in Optuna, so it cannot live on them)."""
    trials = store.trials()
    freed = prune_weights(trials, keep_best, store.directions, weightless, store.pinned(trials))
    if freed:
        tally = {str(k): v for k, v in (store.attrs().get("weights_freed_bytes") or {}).items()}
        for number, size in freed.items():
            tally[str(number)] = tally.get(str(number), 0) + size
        store.set_attrs({"weights_freed_bytes": tally})
