"""The live view of a running study (rich), and the summary printed at its end.

Reads only the study (counts, best trial) and the running trials' `trainer_log.jsonl` files, so
it shows the same truth `tune status` shows. Refreshed from Ray's loop at most twice a second.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tuner.outputs.summary import format_params, state_counts
from tuner.study.session import StudySession
from tuner.trial.progress import LogRecord, TrialFollower
from tuner.trial.workspace import trial_paths

REFRESH_S = 0.5


class _Running:
    def __init__(self, follower: TrialFollower) -> None:
        self.follower = follower
        self.last: LogRecord | None = None
        self.loss: float | None = None
        self.eval: float | None = None


class LiveView:
    def __init__(self, console: Console, session: StudySession, budget_text: str) -> None:
        self.console, self.session, self.budget_text = console, session, budget_text
        self._live = Live(console=console, refresh_per_second=4, transient=False)
        self._running: dict[int, _Running] = {}
        self._last = 0.0
        self._started = time.monotonic()

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh(force=True)
        self._live.__exit__(*exc)  # type: ignore[arg-type]
        if not self.console.is_terminal:  # rich ends the live region with a newline on terminals only
            self.console.line()

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < REFRESH_S:
            return
        self._last = now
        self._live.update(self.render())

    def _progress(self, number: int) -> _Running:
        entry = self._running.get(number)
        if entry is None:
            paths = trial_paths(self.session.trials_dir, self.session.store.name, number)
            entry = self._running[number] = _Running(TrialFollower(paths.output_dir))
        for record in entry.follower.poll():
            entry.last = record
            entry.loss = record.loss if record.loss is not None else entry.loss
            if record.eval_metrics:
                entry.eval = record.eval_metrics.get(self.session.block.experiment.progress_metric or "", entry.eval)
        return entry

    def render(self) -> Group:
        s = self.session
        trials = s.store.trials()
        counts = state_counts(trials)
        spent = s.gate.spent()
        kind = s.ledger.budget.kind
        spent_text = (
            f"{round(spent, 2):g} trials"
            if kind == "trials"
            else f"{spent / 3600:.2f} GPU-h"
            if kind == "gpu"
            else f"{spent:.0f} s"
        )
        header = Text.from_markup(
            f"[bold]study[/bold] {escape(s.store.name)}   [bold]budget[/bold] {spent_text} of {self.budget_text}"
            f"   [bold]elapsed[/bold] {time.monotonic() - self._started:.0f} s\n"
            f"[green]done {counts['complete']}[/green]  running {counts['running']}  "
            f"[yellow]pruned {counts['pruned']}[/yellow]  [red]failed {counts['failed']}[/red]"
            + (f"  infeasible {counts['infeasible']}" if counts["infeasible"] else "")
        )
        parts: list[Any] = [header]
        best = s.store.best()
        if best is not None:
            parts.append(
                Text.from_markup(
                    f"[bold]best[/bold] #{best.number} {s.block.experiment.metric}={best.value:.4f}  "
                    f"{escape(format_params(best.params))}"
                )
            )
        elif s.store.multi_objective and (front := s.store.pareto_front()):
            parts.append(Text.from_markup(f"[bold]Pareto front[/bold] {', '.join(f'#{t.number}' for t in front)}"))
        running = [t for t in trials if t.state.name == "RUNNING" and t.number in s.running]
        if running:
            table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
            for column in ("trial", "params", "progress", "loss", s.block.experiment.progress_metric or "eval"):
                table.add_column(column)
            for t in running:
                p = self._progress(t.number)
                bar = _bar(p.last.step, p.last.total_steps) if p.last else "starting..."
                table.add_row(
                    f"#{t.number}",
                    escape(format_params(t.params)),
                    bar,
                    f"{p.loss:.4f}" if p.loss is not None else "-",
                    f"{p.eval:.4f}" if p.eval is not None else "-",
                )
            parts.append(table)
        return Group(*parts)


def _bar(step: int, total: int, width: int = 20) -> str:
    if not total:
        return f"step {step}"
    filled = int(width * min(1.0, step / total))
    return f"{'█' * filled}{'░' * (width - filled)} {step}/{total}"


def summary_table(trials: list[Any], metrics: list[str]) -> Table:
    """Every trial with its value (one column per objective of a multi-objective study)."""
    table = Table(title="Trials", title_justify="left")
    for column in ("#", "state", "exit", *metrics, "params", "wall s"):
        table.add_column(column, overflow="fold")
    for t in sorted(trials, key=lambda t: t.number):
        values = [f"{v:.4f}" for v in t.values] if t.values is not None else ["-"] * len(metrics)
        wall = t.user_attrs.get("wall_s")
        table.add_row(
            str(t.number),
            t.state.name,
            str(t.user_attrs.get("exit_class", "-")),
            *values,
            escape(format_params(t.params)),
            f"{wall:.0f}" if wall is not None else "-",
        )
    return table
