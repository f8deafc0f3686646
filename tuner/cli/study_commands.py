"""`tune` commands that look after finished or running studies: status, pin, promote, dashboard, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tuner.cli.app import app
from tuner.cli.options import StorageOpt, TrialsDirOpt, err, out


@app.command()
def status(
    study: Annotated[str | None, typer.Argument(help="A study name; without it, every study in the storage.")] = None,
    storage: StorageOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
) -> None:
    """Show the studies in a storage, or one study's trials, as tables."""
    from tuner.cli import study_printing
    from tuner.study.storage import default_storage

    url = storage or default_storage(trials_dir)
    if study is None:
        study_printing.print_studies(out, url)
    else:
        study_printing.print_study(out, url, study)


@app.command()
def pin(
    study: Annotated[str, typer.Argument(help="The study.")],
    trial: Annotated[int, typer.Argument(help="Trial number whose weights must never be deleted.")],
    storage: StorageOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
    unpin: Annotated[bool, typer.Option("--unpin", help="Remove the pin instead.")] = False,
) -> None:
    """Keep a trial's weights and checkpoints, whatever --keep-best says."""
    from tuner.study.storage import default_storage
    from tuner.study.store import StudyStore

    store = StudyStore.open(storage or default_storage(trials_dir), study, create=False)
    if trial not in {t.number for t in store.trials()}:
        from tuner.errors import ConfigError

        raise ConfigError(
            f"study {study!r} has no trial {trial}",
            key="TRIAL",
            value=trial,
            fix=f"run `tune status {study}` to see its trials",
        )
    store.set_pinned(trial, not unpin)
    out.print(f"trial #{trial} of {study} {'unpinned' if unpin else 'pinned'}")
    freed = (store.attrs().get("weights_freed_bytes") or {}).get(str(trial))
    if freed and not unpin:
        err.print(f"[yellow]Its weights were already deleted ({freed} bytes); the pin keeps what is left.[/yellow]")


@app.command()
def promote(
    study: Annotated[str, typer.Argument(help="The study whose trial becomes the production config.")],
    trial: Annotated[int | None, typer.Option("--trial", help="Trial number. Default: the best COMPLETE one.")] = None,
    best: Annotated[
        str | None,
        typer.Option("--best", help="Several objectives: promote the trial best on this metric (with --where)."),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help='Several objectives: a condition the pick must meet, e.g. "gpu_hours<=0.5".'),
    ] = None,
    to: Annotated[Path | None, typer.Option("--to", help="Where to write. Default: beside the block.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing target.")] = False,
    storage: StorageOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
) -> None:
    """Write the best trial as a production block config (plus the exact LLaMA-Factory YAML it ran)."""
    from tuner.outputs.promote import promote as run_promote
    from tuner.study.storage import default_storage
    from tuner.study.store import StudyStore

    store = StudyStore.open(storage or default_storage(trials_dir), study, create=False)
    done = run_promote(store, trial=trial, best=best, where=where or (), to=to, force=force)
    out.print(escape(done.diff), highlight=False, end="")
    for note in done.batch_notes:
        out.print(f"[yellow]{escape(note)}[/yellow]", highlight=False)
    values = ", ".join(f"{k}={v:.6g}" for k, v in done.values.items())
    out.print(f"Promoted trial #{done.trial} ({escape(values)}) to [bold]{escape(str(done.target))}[/bold]")
    out.print(f"The exact LLaMA-Factory YAML it ran: {escape(str(done.llamafactory_yaml))}")
    out.print(f"Next: tune check --config {escape(str(done.target))}")


@app.command()
def dashboard(
    storage: StorageOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
    host: Annotated[str, typer.Option("--host", help="Interface to bind. Anything but localhost is exposed.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8080,
) -> None:
    """Serve optuna-dashboard on the study storage (read-only) until Ctrl-C or SIGTERM."""
    from tuner.outputs.dashboard import describe, make_dashboard, serve_until_stopped
    from tuner.study.storage import default_storage

    url = storage or default_storage(trials_dir)
    server = make_dashboard(url, host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            f"[yellow]Listening on {escape(host)}: anyone who can reach this machine can read the studies.[/yellow]"
        )
    out.print(f"Dashboard: {escape(describe(url, host, port))}  (Ctrl-C to stop)")
    serve_until_stopped(server)
    out.print("Dashboard stopped.")


@app.command()
def report(
    study: Annotated[str, typer.Argument(help="The study to report on.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder. Default: <trials-dir>/<study>/report.")] = None,
    storage: StorageOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
) -> None:
    """Write an offline HTML page (plots + trials table) and PNGs of the main plots."""
    from tuner.outputs.report import write_report
    from tuner.study.storage import default_storage
    from tuner.study.store import StudyStore

    store = StudyStore.open(storage or default_storage(trials_dir), study, create=False)
    with err.status("Drawing plots..."):
        done = write_report(store, out_dir or trials_dir / study / "report")
    out.print(f"Report: {escape(str(done.html))}")
    for png in done.pngs:
        out.print(f"  image: {escape(str(png))}")
    for plot, why in done.skipped.items():
        out.print(f"  not drawn: {plot}: {escape(why)}")
