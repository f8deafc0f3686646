"""Opening the study storage (SQLite or PostgreSQL through SQLAlchemy), and turning its failures
into `StorageError`.

Every read and write goes through `writing`, which turns SQLAlchemy/Optuna storage failures into a
`StorageError` naming the URL (password hidden): a study that cannot record an outcome stops
instead of silently losing it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import StorageError
from tuner.redact import redact_url

if TYPE_CHECKING:
    import optuna


def default_storage(trials_dir: Path) -> str:
    return f"sqlite:///{trials_dir.expanduser().resolve() / 'tuner.db'}"


@contextlib.contextmanager
def writing(url: str, what: str) -> Iterator[None]:
    import sqlite3

    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError, OSError, sqlite3.Error) as e:
        reason = str(getattr(e, "orig", None) or e).splitlines()[0]
        raise StorageError(
            f"study storage {redact_url(url)}: cannot {what}: {reason}. Fix: check that the database is reachable "
            "and writable (for several drivers use PostgreSQL: --storage postgresql+psycopg://...)"
        ) from e


def _use_wal(path: Path) -> None:
    """WAL journal: readers (the dashboard, `tune status`) never block the driver's writes."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(path, timeout=60)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def open_storage(url: str, *, read_only: bool = False) -> optuna.storages.BaseStorage:
    import optuna

    if not logging.getLogger("tuner").isEnabledFor(logging.INFO):
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" chatter

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        engine_kwargs["connect_args"] = {"timeout": 60}
        if not read_only:
            path = Path(url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            with writing(url, "open the storage"):
                _use_wal(path)
    else:
        engine_kwargs["pool_pre_ping"] = True
    with writing(url, "open the storage"):
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, skip_compatibility_check=read_only, skip_table_creation=read_only
        )
    if url.startswith("sqlite:///") and not read_only:
        _relax_sync(storage)
    return storage


def _relax_sync(storage: optuna.storages.RDBStorage) -> None:
    """In WAL mode, synchronous=NORMAL still survives a crashed process (a power cut may lose the
    last commits; every trial also keeps its result.json). It makes each commit ~10x cheaper, and a
    trial's bookkeeping is dozens of commits (Optuna writes one attribute per transaction)."""
    from sqlalchemy import event

    def on_connect(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # connections opened before the listener get replaced


def study_names(url: str) -> list[str]:
    import optuna

    storage = open_storage(url)
    with writing(url, "list studies"):
        return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def study_lock(url: str, name: str) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A study-wide lock across drivers: PostgreSQL's advisory lock on the study's name, re-entrant
    within a thread (a second connection would wait on the first). SQLite allows a single driver,
    so there is nothing to lock."""
    if url.startswith("sqlite"):
        return contextlib.nullcontext
    held = threading.local()
    engine: list[Any] = []  # created on first use
    key = int(hashlib.sha1(f"tuner:{name}".encode()).hexdigest()[:15], 16)  # noqa: S324 - a lock id

    @contextlib.contextmanager
    def lock() -> Iterator[None]:
        if getattr(held, "depth", 0):
            held.depth += 1
            try:
                yield
            finally:
                held.depth -= 1
            return
        import sqlalchemy

        if not engine:
            engine.append(sqlalchemy.create_engine(url, pool_pre_ping=True))
        with writing(url, "lock the study"), engine[0].connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            held.depth = 1
            try:
                yield
            finally:
                held.depth = 0
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()

    return lock
