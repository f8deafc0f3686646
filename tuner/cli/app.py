"""The Typer application object that every `tune` command registers on (imports no command)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tune",
    help="Hyperparameter tuning of LLaMA-Factory SFT runs. Without --config, commands use the "
    "embedded demo (a tiny Qwen3 trained on the CPU).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
