"""Running a prepared study to its end under Ray, with Ctrl-C/SIGTERM handled gracefully.

Order matters: everything that can be wrong with the input is checked before (prepare.py); here
the driver runs, and the first signal stops it gracefully while a second kills at once.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner.errors import TunerError
from tuner.orchestrate.prepare import Prepared
from tuner.redact import redact_url
from tuner.study.storage import default_storage
from tuner.trial.launch import stop_recorded
from tuner.trial.workspace import trial_paths

log = logging.getLogger(__name__)


class Interrupted(TunerError):
    """The driver was stopped by Ctrl-C or SIGTERM; the study can be resumed."""

    exit_code = 130


def storage_flags(url: str, trials_dir: Path) -> list[str]:
    """`--storage URL --trials-dir DIR` as a command must repeat them to reach the same study. A URL
    with a password is never printed: `"$TUNER_STORAGE"` stands in for it (the variable --storage
    reads by default), so the command works as printed wherever that variable holds the URL."""
    flags = ["--trials-dir", shlex.quote(str(trials_dir))]
    if url == default_storage(trials_dir):
        return flags
    shown = redact_url(url)
    return ["--storage", '"$TUNER_STORAGE"' if shown != url else shlex.quote(url), *flags]


def resume_command(prepared: Prepared) -> str:
    """The command that continues this study; the study remembers its shape, so no flag repeats it."""
    s, plan = prepared.session, prepared.plan
    address = ["--address", shlex.quote(plan.address)] if plan.address else []
    return " ".join(["tune", "resume", shlex.quote(s.store.name), *storage_flags(s.store.url, s.trials_dir), *address])


def run_study(prepared: Prepared, on_step: Callable[[], None], on_signal: Callable[[int], None]) -> None:
    """Run until the budget is spent. The first Ctrl-C/SIGTERM stops gracefully (running trials are
    stopped and recorded FAIL interrupted, so a resume runs them again); a second kills at once."""
    from tuner.orchestrate import driver
    from tuner.orchestrate.cluster import init_ray

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

    # Ray first: ray.init installs its own SIGTERM handler in the driver, which must not replace ours
    # (a SIGTERM would then stop the trials without marking them interrupted).
    init_ray(prepared.plan)
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
