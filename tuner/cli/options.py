"""Shared pieces of the `tune` commands: consoles, option types, logging, loading a block."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from tuner.config.block import Block

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


StudyOpt = Annotated[str | None, typer.Option("--study", help="Study name. Default: <data_name>-<date-time>.")]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="TUNER_STORAGE",
        help="SQLAlchemy URL of the studies. Default: sqlite:///<trials-dir>/tuner.db.",
    ),
]
SamplerOpt = Annotated[
    str,
    typer.Option(
        "--sampler",
        help="auto (default: GP for short studies of numeric parameters, TPE for a space with a category; "
        "under ASHA, TPE until 3 trials finished, then GP as gp; docs/benchmarks.md 2c), tpe, gp (under "
        "ASHA it learns from every trial, a stopped one's final value predicted from its rung), random, "
        "grid, cmaes or nsga2 (all but cmaes handle several objectives). All seeded by --seed.",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="asha (stop bad trials early) or none. Default: asha; none for a study of several objectives "
        "unless experiment.early_stopping_metric names the metric to compare trials on.",
    ),
]
GpusOpt = Annotated[
    int | None,
    typer.Option(
        "--gpus-per-trial",
        help="GPUs per trial (over all its nodes). Default: the block's n_gpus_per_node where GPUs exist, "
        "else 0 (CPU, 1 process). A resumed study keeps its own.",
    ),
]
NodesOpt = Annotated[
    int | None,
    typer.Option(
        "--nodes-per-trial",
        help="Nodes one trial spans (a Ray cluster; one torchrun per node). Default: 1, or more when "
        "--gpus-per-trial exceeds a node's GPUs.",
    ),
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--max-concurrent",
        help="Trials at once. Default: GPUs / GPUs per trial, re-read as cluster nodes come and go (1 on CPU).",
    ),
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
    int | None,
    typer.Option("--retries", help="Re-run a crashed or hung trial up to N times (never an OOM). Default: 0."),
]
KeepBestOpt = Annotated[
    int | None,
    typer.Option(
        "--keep-best", help="Keep the weights of the best K trials (and pinned ones); delete the rest. Default: 1."
    ),
]
AllowChangesOpt = Annotated[
    bool, typer.Option("--allow-changes", help="Resume even though the block or search space changed.")
]


JoinOpt = Annotated[
    bool, typer.Option("--join", help="Run next to the study's live drivers (PostgreSQL) and share its budget.")
]
WarmStartOpt = Annotated[
    str | None,
    typer.Option(
        "--warm-start",
        help="New study only: learn from this finished study's COMPLETE trials that fit the space "
        "(history for TPE/GP, not counted as this study's trials).",
    ),
]
WarmStorageOpt = Annotated[
    str | None,
    typer.Option("--warm-start-storage", help="Storage URL of the --warm-start study. Default: --storage."),
]
WarmRerunOpt = Annotated[
    int | None,
    typer.Option("--warm-start-rerun", help="Run the --warm-start study's K best configurations first. Default: 1."),
]


GpuMemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--gpu-memory",
        help="Memory of one GPU (80GiB, 141GB) for the per-GPU memory estimate, where nvidia-smi cannot "
        "see the GPUs (a cluster's). Default: what nvidia-smi reports; no GPU: no limit. A sampled "
        "configuration predicted not to fit is recorded PRUNED infeasible without running.",
    ),
]


def load_block_or_demo(config: Path | None) -> Block:
    from tuner.config.block import load_block

    if config is not None:
        return load_block(config)
    from tuner.demo import build_demo

    with err.status("Building the embedded demo (first use only)..."):
        demo = build_demo()
    err.print(f"[dim]Using the embedded demo block: {demo.block}[/dim]")
    return load_block(demo.block)
