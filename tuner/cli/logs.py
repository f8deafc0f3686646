"""Where log records and library warnings go: tuner's on the screen, everything in the study's driver.log."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The driver log also names the process: with --join several drivers append to one file.
_FILE_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


class _Console(logging.StreamHandler):  # type: ignore[type-arg]
    """Log records on whatever `sys.stderr` is at the time (test runners swap it per command)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _Pending(logging.Handler):
    """Library warnings raised before the study's log file exists, replayed into it once it does.

    Buffering in memory (rather than dropping them or writing a temporary file) keeps the warnings
    Optuna raises while the study is prepared; bounded, so a warning storm cannot exhaust memory.
    """

    def __init__(self, capacity: int = 500) -> None:
        super().__init__()
        self.records: deque[logging.LogRecord] = deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_console = _Console()
_pending = _Pending()


def setup_logging(verbose: bool) -> None:
    """Tuner's log records on stderr (INFO with --verbose); library warnings kept off the screen.

    Python warnings (Optuna's ExperimentalWarning, Ray's, transformers') are routed to the
    `py.warnings` logger; without --verbose it does not reach stderr and is held for the study's
    driver.log (`study_log`).
    """
    _console.setFormatter(logging.Formatter(_FORMAT))
    # The console shows WARNING and up unless --verbose, even once `study_log` lets INFO through.
    _console.setLevel(logging.INFO if verbose else logging.WARNING)
    root = logging.getLogger()
    if _console not in root.handlers:
        root.addHandler(_console)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # Optuna announces every study and trial at INFO; the live view already shows them.
    logging.getLogger("optuna").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.captureWarnings(True)
    warnings_log = logging.getLogger("py.warnings")
    warnings_log.propagate = verbose
    if _pending not in warnings_log.handlers:
        warnings_log.addHandler(_pending)


@contextlib.contextmanager
def study_log(path: Path) -> Iterator[Path]:
    """Write tuner's INFO records, every WARNING and the library warnings to `path` while inside.

    Warnings held since `setup_logging` are written first, so the file starts with what happened
    while the study was prepared.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FILE_FORMAT))
    handler.setLevel(logging.INFO)
    root, tuner_log = logging.getLogger(), logging.getLogger("tuner")
    warnings_log = logging.getLogger("py.warnings")
    for record in list(_pending.records):
        handler.handle(record)
    _pending.records.clear()
    previous_level = tuner_log.level
    # Set only now: tuner/study/storage.py quiets Optuna's own console chatter when tuner's INFO is
    # off, which it checks while the study is prepared, before this runs.
    tuner_log.setLevel(min(logging.INFO, tuner_log.getEffectiveLevel()))
    root.addHandler(handler)
    warnings_log.removeHandler(_pending)
    if not warnings_log.propagate:  # with --verbose they propagate, and the root's handler gets them
        warnings_log.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        warnings_log.removeHandler(handler)
        warnings_log.addHandler(_pending)
        tuner_log.setLevel(previous_level)
        handler.close()
