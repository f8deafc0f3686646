"""Terminal output of the CLI (rich): findings, live trial progress, a trial's result."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuner.config.findings import Finding
from tuner.trial.progress import LogRecord
from tuner.trial.runner import TrialResult
from tuner.trial.workspace import TrialPaths

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

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.__exit__(kind, exc, tb)

    def update(self, record: LogRecord) -> None:
        if record.loss is not None:
            self._loss = record.loss
        if record.eval_metrics:
            self._eval = "  ".join(f"{k} {v:.4f}" for k, v in record.eval_metrics.items())
        loss = f"loss {self._loss:.4f}  " if self._loss is not None else ""
        self._progress.update(
            self._task,
            description="training",
            completed=record.step,
            total=record.total_steps or None,
            metrics=loss + self._eval,
        )


def print_result(console: Console, result: TrialResult, paths: TrialPaths) -> None:
    table = Table(show_header=False, box=None)
    style = "green" if result.ok else "bold red"
    table.add_row("exit", f"[{style}]{result.exit_class}[/]" + (f": {escape(result.reason)}" if result.reason else ""))
    for name, value in (result.values or ({result.metric: result.value} if result.value is not None else {})).items():
        table.add_row(name, f"{value:.6f}")  # every objective of the block
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


def print_memory(console: Console, block: Any, space_path: Any, gpu_memory: str | None) -> None:
    """The peak-memory estimate per GPU for the block's own values and the space's worst corner,
    against the GPU memory given (--gpu-memory) or found (nvidia-smi); on the CPU, no limit."""
    from tuner.config.machine import gpu_memory_bytes
    from tuner.config.memory import gib
    from tuner.config.memory_check import MemoryCheck, parse_memory, run_for, worst_corner
    from tuner.config.space import build_space
    from tuner.errors import TunerError

    limit = parse_memory(gpu_memory) if gpu_memory else gpu_memory_bytes()
    where = "--gpu-memory" if gpu_memory else "nvidia-smi"
    gpus = block.n_gpus_per_node
    check = MemoryCheck(block, limit or 0, gpus)
    if check.shape is None:
        console.print(f"[dim]Memory: {escape(check.unavailable or '')}[/dim]")
        return
    rows: list[tuple[str, dict[str, Any]]] = [("block's values", {})]
    try:
        corner = worst_corner(build_space(block, space_path), block)
    except TunerError:  # preflight has reported the space's problem
        corner = {}
    if corner:
        rows.append(("space's worst corner", corner))
    title = f"Peak memory per GPU (estimate, {gpus} GPU(s) per trial), " + (
        f"against {gib(limit)} GiB per GPU ({where})" if limit else "no GPU found: no limit (pass --gpu-memory)"
    )
    table = Table(title=title, title_justify="left")
    for column in ("configuration", "batch x cutoff_len", "estimate", "verdict"):
        table.add_column(column, overflow="fold")
    for label, params in rows:
        verdict = check.verdict(params)
        assert verdict is not None  # a shape was read
        e = verdict.estimate
        run = run_for(block, params, gpus)
        size = f"{run.micro_batch} x {run.seq_len}"
        if run.eval_micro_batch != run.micro_batch:  # the evaluation's batch can set the peak
            size += f" (eval {run.eval_micro_batch})"
        if not limit:
            fits = "-"
        elif verdict.fits:
            fits = f"[green]fits[/green] (usable {gib(verdict.usable)} GiB)"
        else:
            fits = f"[yellow]does not fit[/yellow] (usable {gib(verdict.usable)} GiB): a study records it infeasible"
        table.add_row(label, size, escape(e.describe()), fits)
    console.print(table)
