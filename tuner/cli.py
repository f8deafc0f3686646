"""`tune`: the command line. Thin commands, one core call each.

The only place that catches `TunerError` and chooses the exit code: 0 ok, 1 runtime failure,
2 user error. Imports of torch, Ray and LLaMA-Factory happen inside commands, so `tune --help`
stays fast.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tuner.errors import TunerError

if TYPE_CHECKING:
    from tuner.start import StartOptions

app = typer.Typer(
    name="tune",
    help="Hyperparameter tuning of LLaMA-Factory SFT runs. Without --config, commands use the "
    "embedded demo (a tiny Qwen3 trained on the CPU).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Block config (config.yaml). Default: the embedded demo."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a parameter: key=value (repeatable), e.g. learning_rate=1.0e-4."),
]
SpaceOpt = Annotated[
    Path | None, typer.Option("--space", help="Search space file. Default: search_spaces/sft_full.yaml.")
]
TrialsDirOpt = Annotated[
    Path, typer.Option("--trials-dir", envvar="TUNER_TRIALS_DIR", help="Root of the trial workspaces.")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log what tuner does.")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Optuna announces every study and trial at INFO; the live view already shows them.
    logging.getLogger("optuna").setLevel(logging.INFO if verbose else logging.WARNING)


def _load(config: Path | None):
    from tuner.block import load_block

    if config is not None:
        return load_block(config)
    from tuner.demo import build_demo

    with err.status("Building the embedded demo (first use only)..."):
        demo = build_demo()
    err.print(f"[dim]Using the embedded demo block: {demo.block}[/dim]")
    return load_block(demo.block)


@app.command()
def check(config: ConfigOpt = None, space: SpaceOpt = None, verbose: VerboseOpt = False) -> None:
    """Preflight a block: print every problem at once; exit 2 if any is an error."""
    _setup_logging(verbose)
    from tuner import _console
    from tuner.preflight import run_preflight

    block = _load(config)
    findings = run_preflight(block, space_path=space)
    _console.print_findings(out, block.file, findings)
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(2)


@app.command()
def render(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
    ds_config: Annotated[bool, typer.Option("--ds-config", help="Also print the DeepSpeed JSON.")] = False,
) -> None:
    """Print the LLaMA-Factory YAML that a trial with these parameters would run."""
    import json

    from tuner.overrides import parse_sets
    from tuner.trial import preview

    block = _load(config)
    rendered = preview(block, parse_sets(set_ or []), trials_dir)
    out.print(rendered.yaml_text, end="", markup=False, highlight=False)
    if ds_config and rendered.ds_config is not None:
        out.print("# ds_config.json\n" + json.dumps(rendered.ds_config, indent=2), markup=False)


@app.command()
def trial(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
    study: Annotated[str, typer.Option("--study", help="Folder under --trials-dir for this trial.")] = "adhoc",
    nproc: Annotated[int, typer.Option("--nproc", min=1, help="Processes (GPUs) for the trial.")] = 1,
    verbose: VerboseOpt = False,
) -> None:
    """Run one trial outside any study, with live progress: debug a block before a study."""
    _setup_logging(verbose)
    from tuner import _console
    from tuner.overrides import apply_params, parse_sets, targets_for
    from tuner.preflight import run_preflight
    from tuner.trial import TrialRequest, run_trial
    from tuner.workspace import next_free

    block = _load(config)
    params = parse_sets(set_ or [])
    apply_params(block, params, targets_for(params), origin="--set")  # bad values fail before any work
    findings = run_preflight(block)
    _console.print_findings(err, block.file, findings, quiet=True)
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(2)
    paths = next_free(trials_dir, study)
    request = TrialRequest(block, params, paths, nproc=nproc, run_name=f"{study}-{paths.root.name}")
    err.print(f"Trial workspace: {paths.root}")
    with _console.TrialProgress(err) as progress:
        result = run_trial(request, on_record=progress.update)
    _console.print_result(out, result, paths)
    if not result.ok:
        raise typer.Exit(1)


StudyOpt = Annotated[str | None, typer.Option("--study", help="Study name. Default: <data_name>-<date-time>.")]
StorageOpt = Annotated[
    str | None,
    typer.Option("--storage", envvar="TUNER_STORAGE",
                 help="SQLAlchemy URL of the studies. Default: sqlite:///<trials-dir>/tuner.db."),
]
SamplerOpt = Annotated[str, typer.Option("--sampler", help="tpe (seeded), gp, random, grid or cmaes.")]
SchedulerOpt = Annotated[str, typer.Option("--scheduler", help="asha (stop bad trials early) or none.")]
GpusOpt = Annotated[int, typer.Option("--gpus-per-trial", help="GPUs per trial; 0 on CPU (1 process).")]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--max-concurrent", help="Trials at once. Default: GPUs / GPUs per trial (1 on CPU).")
]
AddressOpt = Annotated[
    str | None,
    typer.Option("--address", envvar="TUNER_RAY_ADDRESS", help="Ray cluster (HOST:PORT or auto); default: local."),
]


TimeoutOpt = Annotated[
    float | None,
    typer.Option("--trial-timeout", help="Stop a trial that prints nothing and logs no step for this many seconds."),
]
RetriesOpt = Annotated[
    int, typer.Option("--retries", help="Re-run a crashed or hung trial up to N times (never an OOM).")
]
KeepBestOpt = Annotated[
    int, typer.Option("--keep-best", help="Keep the weights of the best K trials (and pinned ones); delete the rest.")
]
AllowChangesOpt = Annotated[
    bool, typer.Option("--allow-changes", help="Resume even though the block or search space changed.")
]


def _run(block_config: Path | None, options: StartOptions, *, must_exist: bool = False) -> None:
    from tuner import _console
    from tuner.errors import PreflightError
    from tuner.live import LiveView
    from tuner.start import prepare_study, run_study

    block = _load(block_config) if block_config is not None or not must_exist else None
    try:
        prepared = prepare_study(block, options, must_exist=must_exist)
    except PreflightError as e:
        _console.print_findings(err, block.file if block else "block", e.findings)
        raise
    session = prepared.session
    _console.print_findings(err, session.block.file, prepared.findings, quiet=True)
    _console.print_study_start(err, prepared)

    def on_signal(count: int) -> None:
        if count == 1:
            err.print("\n[yellow]Stopping:[/yellow] no new trials; running ones are stopped and recorded "
                      "FAIL interrupted (resume runs them again). Ctrl-C again to kill at once.")
        else:
            err.print("\n[red]Killing the running trials now.[/red]")

    with LiveView(err, session, prepared.budget.describe()) as view:
        run_study(prepared, view.refresh, on_signal)
    _console.print_study_end(out, session)


JoinOpt = Annotated[
    bool, typer.Option("--join", help="Run next to the study's live drivers (PostgreSQL) and share its budget.")
]


@app.command()
def start(
    budget: Annotated[
        str | None, typer.Option("--budget", "-b", help="Trials (20), wall time (90m, 8h) or GPU-hours (16gpu-h).")
    ] = None,
    config: ConfigOpt = None,
    study: StudyOpt = None,
    storage: StorageOpt = None,
    space: SpaceOpt = None,
    sampler: SamplerOpt = "tpe",
    scheduler: SchedulerOpt = "asha",
    gpus_per_trial: GpusOpt = 0,
    max_concurrent: ConcurrencyOpt = None,
    address: AddressOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampler.")] = 0,
    trial_timeout: TimeoutOpt = None,
    retries: RetriesOpt = 0,
    keep_best: KeepBestOpt = 1,
    allow_changes: AllowChangesOpt = False,
    join: JoinOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run a study: sample parameters, run real trials on Ray, record everything in the Optuna study.

    A new study needs --budget. An existing study name resumes it; --budget then adds to its budget.

    With --join (PostgreSQL), a second driver runs next to the study's live drivers, sharing its budget."""
    _setup_logging(verbose)
    from tuner.start import StartOptions

    _run(config, StartOptions(
        budget=budget, study=study, storage=storage, space=space, sampler=sampler, scheduler=scheduler,
        gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, address=address, trials_dir=trials_dir,
        seed=seed, verbose=verbose, trial_timeout_s=trial_timeout, retries=retries, allow_changes=allow_changes,
        keep_best=keep_best, join=join,
    ))  # fmt: skip


@app.command()
def resume(
    study: Annotated[str, typer.Argument(help="The study to continue.")],
    budget: Annotated[str | None, typer.Option("--budget", "-b", help="Add this much budget (same kind).")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Block file, if it moved.")] = None,
    storage: StorageOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
    gpus_per_trial: GpusOpt = 0,
    max_concurrent: ConcurrencyOpt = None,
    address: AddressOpt = None,
    trial_timeout: TimeoutOpt = None,
    retries: RetriesOpt = 0,
    keep_best: KeepBestOpt = 1,
    allow_changes: AllowChangesOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Continue an interrupted study: interrupted trials run again, finished ones never.

    A retry continues from its checkpoint when the block keeps optimizer state (save_only_model: false).

    The budget carries on from what was spent; --budget adds to it."""
    _setup_logging(verbose)
    from tuner.start import StartOptions

    _run(config, StartOptions(
        budget=budget, study=study, storage=storage, gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent,
        address=address, trials_dir=trials_dir, verbose=verbose, trial_timeout_s=trial_timeout, retries=retries,
        allow_changes=allow_changes, keep_best=keep_best,
    ), must_exist=True)  # fmt: skip


@app.command()
def pin(
    study: Annotated[str, typer.Argument(help="The study.")],
    trial: Annotated[int, typer.Argument(help="Trial number whose weights must never be deleted.")],
    storage: StorageOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
    unpin: Annotated[bool, typer.Option("--unpin", help="Remove the pin instead.")] = False,
) -> None:
    """Keep a trial's weights and checkpoints, whatever --keep-best says."""
    from tuner.study import StudyStore, default_storage

    store = StudyStore.open(storage or default_storage(trials_dir), study, create=False)
    if trial not in {t.number for t in store.trials()}:
        from tuner.errors import ConfigError

        raise ConfigError(f"study {study!r} has no trial {trial}", key="TRIAL", value=trial,
                          fix=f"run `tune status {study}` to see its trials")  # fmt: skip
    store.set_trial_attrs(trial, {"pinned": not unpin})
    out.print(f"trial #{trial} of {study} {'unpinned' if unpin else 'pinned'}")


@app.command()
def status(
    study: Annotated[str | None, typer.Argument(help="A study name; without it, every study in the storage.")] = None,
    storage: StorageOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
) -> None:
    """Show the studies in a storage, or one study's trials, as tables."""
    from tuner import _console
    from tuner.study import default_storage

    url = storage or default_storage(trials_dir)
    if study is None:
        _console.print_studies(out, url)
    else:
        _console.print_study(out, url, study)


@app.command()
def promote(
    study: Annotated[str, typer.Argument(help="The study whose trial becomes the production config.")],
    trial: Annotated[int | None, typer.Option("--trial", help="Trial number. Default: the best COMPLETE one.")] = None,
    to: Annotated[Path | None, typer.Option("--to", help="Where to write. Default: beside the block.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing target.")] = False,
    storage: StorageOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
) -> None:
    """Write the best trial as a production block config (plus the exact LLaMA-Factory YAML it ran)."""
    from tuner.promote import promote as run_promote
    from tuner.study import StudyStore, default_storage

    store = StudyStore.open(storage or default_storage(trials_dir), study, create=False)
    done = run_promote(store, trial=trial, to=to, force=force)
    out.print(escape(done.diff), highlight=False, end="")
    out.print(f"Promoted trial #{done.trial} ({done.value:.6f}) to [bold]{escape(str(done.target))}[/bold]")
    out.print(f"The exact LLaMA-Factory YAML it ran: {escape(str(done.llamafactory_yaml))}")
    out.print(f"Next: tune check --config {escape(str(done.target))}")


@app.command()
def dashboard(
    storage: StorageOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
    host: Annotated[str, typer.Option("--host", help="Interface to bind. Anything but localhost is exposed.")] = (
        "127.0.0.1"),
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8080,
) -> None:
    """Serve optuna-dashboard on the study storage (read-only) until Ctrl-C."""
    from tuner.dashboard import describe, make_dashboard
    from tuner.study import default_storage

    url = storage or default_storage(trials_dir)
    server = make_dashboard(url, host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]Listening on {escape(host)}: anyone who can reach this machine can read "
                  "the studies.[/yellow]")
    out.print(f"Dashboard: {escape(describe(url, host, port))}  (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.print("Dashboard stopped.")
    finally:
        server.server_close()


@app.command()
def report(
    study: Annotated[str, typer.Argument(help="The study to report on.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder. Default: <trials-dir>/<study>/report.")] = None,
    storage: StorageOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
) -> None:
    """Write an offline HTML page (plots + trials table) and PNGs of the main plots."""
    from tuner.report import write_report
    from tuner.study import StudyStore, default_storage

    store = StudyStore.open(storage or default_storage(trials_dir), study, create=False)
    with err.status("Drawing plots..."):
        done = write_report(store, out_dir or trials_dir / study / "report")
    out.print(f"Report: {escape(str(done.html))}")
    for png in done.pngs:
        out.print(f"  image: {escape(str(png))}")
    for plot, why in done.skipped.items():
        out.print(f"  not drawn: {plot}: {escape(why)}")


def main() -> None:
    try:
        app()
    except TunerError as e:
        err.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted: every trial process was stopped")
        sys.exit(130)
