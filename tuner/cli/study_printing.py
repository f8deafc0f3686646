"""Terminal output of the study commands (rich): the studies, one study (its trials, best trial or
Pareto front, budget), and what `tune start` prints before and after the study."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tuner.redact import redact_url


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
    from tuner.outputs.summary import format_params, memory_lines, modelled_text
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
        + f"; sampler {attrs.get('sampler', '-')}, scheduler {attrs.get('scheduler', '-')}"
        + (f" (first rung at {attrs['grace_period']} samples)" if attrs.get("grace_period") else "")
        + f"; storage {escape(redact_url(url))}"
    )
    modelled = modelled_text(trials)
    if modelled:
        console.print(f"gp proposed from: {escape(modelled)}", highlight=False)
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
    experiment = s.block.experiment
    if experiment.multi_objective:
        stopping = f"early stopping on {experiment.early_stopping_metric}" if s.rungs else "no early stopping"
        console.print(f"Objectives: {escape(experiment.describe())} (a Pareto front; {stopping})")
    if s.shape.gpus_per_trial and s.memory.unavailable:  # a GPU study whose memory is not checked: say why
        console.print(f"[yellow]Memory check off: {escape(s.memory.unavailable)}[/yellow]")
