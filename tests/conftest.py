"""Shared fixtures: the same tests run on SQLite and on a real PostgreSQL, selected by parameter.

PostgreSQL is this machine's server (127.0.0.1:5432, user postgres, database test) unless
TILL_TEST_DATABASE_URL says otherwise. Each test gets its own schema, dropped afterwards. When the
server does not answer, PostgreSQL tests are skipped locally but FAIL in CI (CI=true): a green CI
run always means the PostgreSQL tests ran.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from adapters.passwords import Argon2PasswordHasher
from adapters.settings import Settings
from adapters.store import libpq_conninfo
from api.app import build_services
from api.services import Services

TEST_DATABASE_URL = os.environ.get("TILL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class SteppingClock:
    """A fake clock (the one true edge we replace): each reading is one millisecond later."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 24, 2, 0, tzinfo=UTC)

    def now(self) -> datetime:
        self.current += timedelta(milliseconds=1)
        return self.current


def fast_hasher() -> Argon2PasswordHasher:
    # Real argon2id, with a small cost so the suite stays quick.
    return Argon2PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def _postgres_or_fail() -> None:
    try:
        with psycopg.connect(libpq_conninfo(Settings(database_url=TEST_DATABASE_URL)), connect_timeout=3):
            return
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not answering at {TEST_DATABASE_URL}: {exc}"
        if IN_CI:
            pytest.fail(message + " — CI requires it (start it with .ci/run)", pytrace=False)
        pytest.skip(message)


def postgres_settings(tmp_path: Path, **overrides: object) -> Iterator[Settings]:
    _postgres_or_fail()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    settings = Settings(data_dir=tmp_path, database_url=TEST_DATABASE_URL, database_schema=schema, **overrides)
    try:
        yield settings
    finally:
        with psycopg.connect(libpq_conninfo(settings), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def point_env_at(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """TILL_* variables naming the store of ``settings``, for a command line run in this process."""
    monkeypatch.setenv("TILL_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("TILL_DATABASE_URL", settings.database_url)
        monkeypatch.setenv("TILL_DATABASE_SCHEMA", settings.database_schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a fresh, empty store of each kind."""
    if request.param == "sqlite":
        yield Settings(data_dir=tmp_path, embedded_projections=False)
    else:
        yield from postgres_settings(tmp_path, embedded_projections=False)


@pytest.fixture
def pg_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings for a fresh PostgreSQL schema only (concurrency and throughput behaviour)."""
    yield from postgres_settings(tmp_path, embedded_projections=False)


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


def make_services(settings: Settings, clock: SteppingClock) -> Services:
    return build_services(settings, clock=clock, hasher=fast_hasher(), create_tables=True)


@pytest.fixture
def services(settings: Settings, clock: SteppingClock) -> Iterator[Services]:
    built = make_services(settings, clock)
    try:
        yield built
    finally:
        built.close()
