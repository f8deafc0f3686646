"""Terminal output of the CLI (rich): findings, live trial progress, a trial's result."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuner.preflight import Finding
from tuner.progress import LogRecord
from tuner.trial import TrialResult
from tuner.workspace import TrialPaths

_STYLE = {"error": "bold red", "warning": "yellow", "note": "dim"}


def print_findings(console: Console, file: str, findings: list[Finding], *, quiet: bool = False) -> None:
    """All findings as a table; with quiet, notes are left out and nothing prints when clean."""
    shown = [f for f in findings if not (quiet and f.severity == "note")]
    if not shown:
        if not quiet:
            console.print(f"[green]OK[/green] {escape(file)}: no problems found")
        return
    table = Table(title=f"Preflight of {file}", title_justify="left", show_lines=True)
    for column in ("severity", "key", "problem", "fix"):
        table.add_column(column, overflow="fold")
    for f in shown:
        table.add_row(f"[{_STYLE[f.severity]}]{f.severity}[/]", escape(f.key), escape(f.message), escape(f.fix))
    console.print(table)
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    console.print(f"{errors} error(s), {warnings} warning(s)")


class TrialProgress:
    """Live bar for one trial: steps, latest loss and eval metric; start-up shown as a spinner."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("{task.fields[metrics]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("starting (imports, tokenization)", total=None, metrics="")
        self._loss: float | None = None
        self._eval: str = ""
        self._started = time.monotonic()

    def __enter__(self) -> TrialProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.__exit__(kind, exc, tb)

    def update(self, record: LogRecord) -> None:
        if record.loss is not None:
            self._loss = record.loss
        if record.eval_metrics:
            self._eval = "  ".join(f"{k} {v:.4f}" for k, v in record.eval_metrics.items())
        loss = f"loss {self._loss:.4f}  " if self._loss is not None else ""
        self._progress.update(
            self._task, description="training", completed=record.step,
            total=record.total_steps or None, metrics=loss + self._eval,
        )  # fmt: skip


def print_result(console: Console, result: TrialResult, paths: TrialPaths) -> None:
    table = Table(show_header=False, box=None)
    style = "green" if result.ok else "bold red"
    table.add_row("exit", f"[{style}]{result.exit_class}[/]" + (f": {escape(result.reason)}" if result.reason else ""))
    if result.value is not None:
        table.add_row(result.metric, f"{result.value:.6f}")
    table.add_row("steps", f"{result.steps}/{result.total_steps}")
    table.add_row("train samples", str(result.n_train))
    table.add_row("global batch", str(result.global_batch_size))
    startup = f" (start-up {result.startup_s:.1f} s)" if result.startup_s is not None else ""
    table.add_row("wall time", f"{result.wall_s:.1f} s{startup}")
    table.add_row("workspace", str(paths.root))
    table.add_row("log", str(paths.train_log))
    console.print(table)
    if result.log_tail:
        console.print("[dim]last lines of train.log:[/dim]")
        console.print(escape("\n".join(result.log_tail[-15:])), highlight=False)
