"""`tune`, the command line: the Typer app, its commands, terminal output and the live view.

Owns: argument parsing, what the user sees, exit codes. The only place that catches `TunerError`:
0 ok, 1 runtime failure, 2 user error (no traceback for either).
May import: every other layer (orchestrate, outputs, study, trial, config, demo, the bottom).
Commands register on `tuner.cli.app.app`, which imports none of them, so there is no import cycle.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from tuner.cli import run_commands, study_commands  # noqa: F401 - importing them registers the commands
from tuner.cli.app import app
from tuner.cli.options import err
from tuner.errors import TunerError

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except TunerError as e:
        err.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted: every trial process was stopped")
        sys.exit(130)
