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
from tuner.redact import redact_url
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


def _spent_text(attrs: dict[str, Any]) -> str:
    """What the study has spent in every unit, against its budget (in the budget's own unit)."""
    from tuner.study.budget import Budget

    spent, budget = attrs.get("spent") or {}, attrs.get("budget")
    if not budget:
        return "-"
    # Full-trial equivalents: a trial stopped early counts the fraction of its training it ran.
    trials = float(spent.get("trials_used", spent.get("finished_trials", 0)))
    wall_h, gpu_h = float(spent.get("wall_s", 0)) / 3600, float(spent.get("gpu_s", 0)) / 3600
    return (
        f"{round(trials, 2):g} trials, {wall_h:.2f} h, {gpu_h:.2f} GPU-h spent of {Budget.from_dict(budget).describe()}"
    )


def print_studies(console: Console, url: str) -> None:
    from tuner.outputs.summary import state_counts
    from tuner.study.storage import study_names
    from tuner.study.store import StudyStore

    names = study_names(url)
    if not names:
        console.print(f"No studies in {escape(redact_url(url))}. Start one with `tune start --budget 4`.")
        return
    table = Table(title=f"Studies in {redact_url(url)}", title_justify="left")
    for column in ("study", "complete", "running", "pruned", "failed", "best", "budget spent", "disk"):
        table.add_column(column)
    for name in names:
        store = StudyStore.open(url, name, create=False)
        trials = store.trials()
        counts = state_counts(trials)
        best = store.best()
        front = store.pareto_front() if store.multi_objective else []
        table.add_row(
            escape(name),
            *(str(counts[k]) for k in ("complete", "running", "pruned", "failed")),
            f"{best.value:.4f} (#{best.number})" if best else f"Pareto front of {len(front)}" if front else "-",
            _spent_text(store.attrs()),
            _disk_text(trials),
        )
    console.print(table)


def _disk_text(trials: list[Any]) -> str:
    from pathlib import Path

    from tuner.study.disk import human, size_of

    dirs = {Path(t.user_attrs["trial_dir"]) for t in trials if t.user_attrs.get("trial_dir")}
    return human(sum(size_of(d) for d in dirs if d.exists()))


def print_study(console: Console, url: str, name: str) -> None:
    from tuner.cli.live import summary_table
    from tuner.outputs.summary import format_params, memory_lines
    from tuner.study.store import StudyStore

    store = StudyStore.open(url, name, create=False)
    attrs = store.attrs()
    metric = attrs.get("metric", "value")
    names = store.metric_names()
    trials = store.trials()
    console.print(summary_table(trials, names))
    reasons = [
        (t.number, t.user_attrs["reason"]) for t in trials if t.user_attrs.get("reason") and t.state.name != "COMPLETE"
    ]
    for number, reason in reasons:
        console.print(f"  #{number}: {escape(str(reason))}", highlight=False)
    memory = memory_lines(trials)
    if memory:
        console.print("GPU memory per GPU, estimate vs measured:")
        for line in memory:
            console.print(f"  {escape(line)}", highlight=False)
    best = store.best()
    pinned = sorted(store.pinned(trials))
    console.print(
        f"budget: {_spent_text(attrs)}; disk: {_disk_text(trials)}"
        + (f" (pinned: {pinned})" if pinned else "")
        + f"; sampler {attrs.get('sampler', '-')}, scheduler {attrs.get('scheduler', '-')}; "
        f"storage {escape(redact_url(url))}"
    )
    if attrs.get("warm_start"):
        from tuner.study.warm import describe

        console.print(escape(describe(attrs["warm_start"])), highlight=False)
    for p in attrs.get("promotions", []):
        console.print(f"promoted: trial #{p['trial']} -> {escape(p['path'])} by {escape(p['by'])} at {p['at']}")
    if best is not None:
        console.print(
            f"[bold]best[/bold]: trial #{best.number} {metric}={best.value:.6f}  "
            f"{escape(format_params(best.params))}  ({escape(str(best.user_attrs.get('trial_dir', '')))})"
        )
    elif store.multi_objective:
        print_front(console, store.pareto_front(), names, store.directions, name)


def print_front(console: Console, front: list[Any], names: list[str], directions: list[str], study: str) -> None:
    """A multi-objective study's Pareto front: no single best, every trade-off no trial beats."""
    from tuner.outputs.summary import format_params

    goals = ", ".join(f"{d} {n}" for n, d in zip(names, directions, strict=True))
    if not front:
        console.print(f"[bold]Pareto front[/bold] ({escape(goals)}): no COMPLETE trial yet")
        return
    console.print(f"[bold]Pareto front[/bold] ({escape(goals)}): {len(front)} trial(s)", highlight=False)
    table = Table()
    for column in ("#", *names, "params"):
        table.add_column(column, overflow="fold")
    for t in front:
        table.add_row(str(t.number), *(f"{v:.6g}" for v in t.values), escape(format_params(t.params)))
    console.print(table)
    console.print(
        f'promote one: tune promote {escape(study)} --trial N, or --best {names[0]} --where "{names[-1]}<=X"',
        highlight=False,
    )


def print_study_end(console: Console, session: Any) -> None:
    url, name = session.store.url, session.store.name
    print_study(console, url, name)
    from tuner.orchestrate.run import storage_flags

    flags = " ".join(storage_flags(url, session.trials_dir))
    if session.space_exhausted:
        console.print("Every point of the grid has run: the study is complete (no point runs twice).")
    console.print("\nNext:")
    console.print(f"  tune status {name} {escape(flags)}    # this table again", highlight=False)
    console.print(f"  tune dashboard {escape(flags)}    # plots in the browser", highlight=False)


def print_study_start(console: Console, prepared: Any) -> None:
    s = prepared.session
    where = escape(redact_url(s.store.url))
    if prepared.took_over:
        console.print(
            f"[yellow]Took over[/yellow] from a driver that stopped sending heartbeats "
            f"({escape(str(prepared.took_over.get('host')))} pid {prepared.took_over.get('pid')})."
        )
    recovered = prepared.recovered
    if recovered and (recovered.interrupted or recovered.requeued):
        if recovered.interrupted:
            console.print(f"Trials left running by a dead driver, now FAIL interrupted: {recovered.interrupted}")
        for number, checkpoint in recovered.requeued.items():
            how = f"continuing from {escape(checkpoint)}" if checkpoint else "from the start"
            console.print(f"  trial #{number} will run again, {how}")
    verb = "Resuming" if prepared.resumed else "Starting"
    console.print(
        f"{verb} study [bold]{escape(s.store.name)}[/bold] in {where}; budget {prepared.budget.describe()}"
        f"; trials in {s.trials_dir / s.store.name}"
    )
    plan = prepared.plan
    at_once = "as many as the cluster's GPUs allow" if plan.follow_cluster else f"up to {plan.max_concurrent} at once"
    console.print(f"Each trial: {s.shape.describe()}; {at_once}")


def print_memory(console: Console, block: Any, space_path: Any, gpu_memory: str | None) -> None:
    """The peak-memory estimate per GPU for the block's own values and the space's worst corner,
    against the GPU memory given (--gpu-memory) or found (nvidia-smi); on the CPU, no limit."""
    from tuner.config.machine import gpu_memory_bytes
    from tuner.config.memory import gib
    from tuner.config.memory_check import MemoryCheck, parse_memory, worst_corner
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
    t = block.training
    for label, params in rows:
        verdict = check.verdict(params)
        assert verdict is not None  # a shape was read
        e = verdict.estimate
        size = f"{params.get('per_device_train_batch_size', t.per_device_train_batch_size)} x "
        size += str(params.get("cutoff_len", t.cutoff_len))
        if not limit:
            fits = "-"
        elif verdict.fits:
            fits = f"[green]fits[/green] (usable {gib(verdict.usable)} GiB)"
        else:
            fits = f"[yellow]does not fit[/yellow] (usable {gib(verdict.usable)} GiB): a study records it infeasible"
        table.add_row(label, size, escape(e.describe()), fits)
    console.print(table)
