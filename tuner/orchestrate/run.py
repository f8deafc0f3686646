"""Running a prepared study to its end under Ray, with Ctrl-C/SIGTERM handled gracefully.

Order matters: everything that can be wrong with the input is checked before (prepare.py); here
the driver runs, and the first signal stops it gracefully while a second kills at once.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from tuner.errors import TunerError
from tuner.orchestrate.prepare import Prepared
from tuner.redact import redact_url
from tuner.trial.launch import stop_recorded
from tuner.trial.workspace import trial_paths

log = logging.getLogger(__name__)


class Interrupted(TunerError):
    """The driver was stopped by Ctrl-C or SIGTERM; the study can be resumed."""

    exit_code = 130


def resume_command(prepared: Prepared) -> str:
    s = prepared.session
    return f"tune resume {s.store.name} --storage '{redact_url(s.store.url)}' --trials-dir {s.trials_dir}"


def run_study(prepared: Prepared, on_step: Callable[[], None], on_signal: Callable[[int], None]) -> None:
    """Run until the budget is spent. The first Ctrl-C/SIGTERM stops gracefully (running trials are
    stopped and recorded FAIL interrupted, so a resume runs them again); a second kills at once."""
    from tuner.orchestrate import driver

    session = prepared.session
    signals = 0

    def handle(signum: int, frame: Any) -> None:
        nonlocal signals
        signals += 1
        session.interrupted = True
        on_signal(signals)
        if signals > 1:
            for number in list(session.running):
                stop_recorded(trial_paths(session.trials_dir, session.store.name, number).pid, grace_s=2)
            prepared.lease.release()
            os._exit(130)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours above: Ray's would end the run its own way
    try:
        driver.run(session, session.block, prepared.targets, prepared.plan, on_step)
    except Exception:
        if not session.interrupted:
            raise
        log.info("Ray stopped with an error after the interrupt", exc_info=True)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        try:
            session.finish_running(interrupted=session.interrupted)
            session.save_spent()
        finally:
            prepared.lease.release()
    if session.interrupted:
        raise Interrupted(
            f"study {session.store.name!r} was interrupted; its running trials are recorded FAIL interrupted "
            f"and run again on resume. Resume with: {resume_command(prepared)}"
        )
