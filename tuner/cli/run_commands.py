"""`tune` commands that check a block and run trials and studies: check, render, trial, start, resume.

Imports of torch, Ray and LLaMA-Factory happen inside the commands, so `tune --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tuner.cli.app import app
from tuner.cli.logs import setup_logging
from tuner.cli.options import (
    AddressOpt,
    AllowChangesOpt,
    ConcurrencyOpt,
    ConfigOpt,
    GpuMemoryOpt,
    GpusOpt,
    JoinOpt,
    KeepBestOpt,
    NodesOpt,
    RetriesOpt,
    SamplerOpt,
    SchedulerOpt,
    SetOpt,
    SpaceOpt,
    StorageOpt,
    StudyOpt,
    TimeoutOpt,
    TrialsDirOpt,
    VerboseOpt,
    WarmRerunOpt,
    WarmStartOpt,
    WarmStorageOpt,
    err,
    load_block_or_demo,
    out,
)

if TYPE_CHECKING:
    from tuner.orchestrate.options import StartOptions


@app.command()
def check(
    config: ConfigOpt = None,
    space: SpaceOpt = None,
    gpu_memory: GpuMemoryOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Preflight a block: print every problem at once, and the peak GPU memory per configuration; exit 2 on errors."""
    setup_logging(verbose)
    from tuner.cli import printing
    from tuner.config.memory_check import parse_memory
    from tuner.config.preflight import run_preflight

    if gpu_memory is not None:
        parse_memory(gpu_memory)  # a bad flag fails before any work
    block = load_block_or_demo(config)
    findings = run_preflight(block, space_path=space)
    printing.print_findings(out, block.file, findings)
    printing.print_memory(out, block, space, gpu_memory)
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

    from tuner.config.overrides import parse_sets
    from tuner.trial.prepare import preview

    block = load_block_or_demo(config)
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
    setup_logging(verbose)
    from tuner.cli import printing
    from tuner.config.overrides import apply_params, parse_sets, targets_for
    from tuner.config.preflight import run_preflight
    from tuner.trial.prepare import TrialRequest
    from tuner.trial.runner import run_trial
    from tuner.trial.workspace import next_free

    block = load_block_or_demo(config)
    params = parse_sets(set_ or [])
    apply_params(block, params, targets_for(params), origin="--set")  # bad values fail before any work
    findings = run_preflight(block)
    printing.print_findings(err, block.file, findings, quiet=True)
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(2)
    paths = next_free(trials_dir, study)
    request = TrialRequest(block, params, paths, nproc=nproc, run_name=f"{study}-{paths.root.name}")
    err.print(f"Trial workspace: {paths.root}")
    with printing.TrialProgress(err) as progress:
        result = run_trial(request, on_record=progress.update)
    printing.print_result(out, result, paths)
    if not result.ok:
        raise typer.Exit(1)


def _run(block_config: Path | None, options: StartOptions, *, must_exist: bool = False) -> None:
    from rich.markup import escape

    from tuner.cli import printing, study_printing
    from tuner.cli.live import LiveView
    from tuner.cli.logs import study_log
    from tuner.errors import PreflightError
    from tuner.orchestrate.prepare import prepare_study
    from tuner.orchestrate.run import run_study
    from tuner.study.warm import describe as describe_warm_start

    block = load_block_or_demo(block_config) if block_config is not None or not must_exist else None
    try:
        prepared = prepare_study(block, options, must_exist=must_exist)
    except PreflightError as e:
        printing.print_findings(err, block.file if block else "block", e.findings)
        raise
    session = prepared.session

    def on_signal(count: int) -> None:
        if count == 1:
            err.print(
                "\n[yellow]Stopping:[/yellow] no new trials; running ones are stopped and recorded "
                "FAIL interrupted (resume runs them again). Ctrl-C again to kill at once."
            )
        else:
            err.print("\n[red]Killing the running trials now.[/red]")

    # Library warnings (Optuna, Ray, transformers) and tuner's INFO go to the study's driver.log,
    # not the screen; the ones raised while the study was prepared are written there first.
    with study_log(session.trials_dir / session.store.name / "driver.log") as log_file:
        printing.print_findings(err, session.block.file, prepared.findings, quiet=True)
        study_printing.print_study_start(err, prepared)
        if options.warm_start and "warm_start" in (attrs := session.store.attrs()):
            err.print(escape(describe_warm_start(attrs["warm_start"])), highlight=False)
        err.print(f"[dim]Driver log: {escape(str(log_file))}[/dim]")
        with LiveView(err, session, prepared.budget.describe()) as view:
            run_study(prepared, view.refresh, on_signal)
        study_printing.print_study_end(out, session)


@app.command()
def start(
    budget: Annotated[
        str | None, typer.Option("--budget", "-b", help="Trials (20), wall time (90m, 8h) or GPU-hours (16gpu-h).")
    ] = None,
    config: ConfigOpt = None,
    study: StudyOpt = None,
    storage: StorageOpt = None,
    space: SpaceOpt = None,
    sampler: SamplerOpt = "auto",
    scheduler: SchedulerOpt = None,
    gpus_per_trial: GpusOpt = None,
    nodes_per_trial: NodesOpt = None,
    max_concurrent: ConcurrencyOpt = None,
    address: AddressOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampler.")] = 0,
    startup_trials: Annotated[
        int | None,
        typer.Option(
            "--startup-trials",
            help="Random trials before TPE/GP model the space "
            "(default: a quarter of a trial budget, 3 to 10; 10 for time and GPU-hour budgets).",
        ),
    ] = None,
    trial_timeout: TimeoutOpt = None,
    retries: RetriesOpt = None,
    keep_best: KeepBestOpt = None,
    allow_changes: AllowChangesOpt = False,
    join: JoinOpt = False,
    warm_start: WarmStartOpt = None,
    warm_start_storage: WarmStorageOpt = None,
    warm_start_rerun: WarmRerunOpt = None,
    gpu_memory: GpuMemoryOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Run a study: sample parameters, run real trials on Ray, record everything in the Optuna study.

    A new study needs --budget. An existing study name resumes it; --budget then adds to its budget.

    With --join (PostgreSQL), a second driver runs next to the study's live drivers, sharing its budget.

    With --warm-start OLD, a new study learns from OLD's COMPLETE trials that fit its space."""
    setup_logging(verbose)
    from tuner.orchestrate.options import StartOptions, warm_source

    _run(
        config,
        StartOptions(
            budget=budget,
            study=study,
            storage=storage,
            space=space,
            sampler=sampler,
            scheduler=scheduler,
            gpus_per_trial=gpus_per_trial,
            nodes_per_trial=nodes_per_trial,
            max_concurrent=max_concurrent,
            address=address,
            trials_dir=trials_dir,
            seed=seed,
            startup_trials=startup_trials,
            verbose=verbose,
            trial_timeout_s=trial_timeout,
            retries=retries,
            allow_changes=allow_changes,
            keep_best=keep_best,
            join=join,
            warm_start=warm_source(warm_start, warm_start_storage, warm_start_rerun),
            gpu_memory=gpu_memory,
        ),
    )


@app.command()
def resume(
    study: Annotated[str, typer.Argument(help="The study to continue.")],
    budget: Annotated[str | None, typer.Option("--budget", "-b", help="Add this much budget (same kind).")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Block file, if it moved.")] = None,
    storage: StorageOpt = None,
    trials_dir: TrialsDirOpt = Path("trials"),
    gpus_per_trial: GpusOpt = None,
    nodes_per_trial: NodesOpt = None,
    max_concurrent: ConcurrencyOpt = None,
    address: AddressOpt = None,
    trial_timeout: TimeoutOpt = None,
    retries: RetriesOpt = None,
    keep_best: KeepBestOpt = None,
    allow_changes: AllowChangesOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Continue an interrupted study: interrupted trials run again, finished ones never.

    A retry continues from its checkpoint when the block keeps optimizer state (save_only_model: false).

    The budget carries on from what was spent; --budget adds to it. The study's run shape (GPUs and
    nodes per trial, concurrency, timeout, retries, keep-best) carries on too; flags change it, and a
    change of GPUs or nodes per trial (the global batch size) needs --allow-changes."""
    setup_logging(verbose)
    from tuner.orchestrate.options import StartOptions

    _run(
        config,
        StartOptions(
            budget=budget,
            study=study,
            storage=storage,
            gpus_per_trial=gpus_per_trial,
            nodes_per_trial=nodes_per_trial,
            max_concurrent=max_concurrent,
            address=address,
            trials_dir=trials_dir,
            verbose=verbose,
            trial_timeout_s=trial_timeout,
            retries=retries,
            allow_changes=allow_changes,
            keep_best=keep_best,
        ),
        must_exist=True,
    )
