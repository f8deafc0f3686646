"""Storage URLs for the suites that run against every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("TUNER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_available() -> bool:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            return True
    except Exception:
        return False


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def require_postgres() -> None:
    """Skip without a PostgreSQL server on a developer's machine; fail under CI (`CI` set), where
    one always runs on 127.0.0.1:5432: a silent skip there would hide every multi-driver test."""
    if postgres_available():
        return
    message = f"no PostgreSQL answers at {POSTGRES_URL} (set TUNER_TEST_POSTGRES to another server)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must run these tests")
    pytest.skip(message)


def storage_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'tuner.db'}"
    require_postgres()
    return POSTGRES_URL


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
