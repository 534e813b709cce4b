"""The fault suite's own PostgreSQL cluster, made once for the module and deleted after it.

Like the rest of the suite's PostgreSQL tests, these are skipped locally when PostgreSQL 15 cannot
be run here, and fail in CI (CI=true) instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import IN_CI
from tests.faults.private_postgres import PostgresUnavailable, PrivatePostgres


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        try:
            pg.create()
        except (PostgresUnavailable, OSError) as exc:
            message = f"cannot run a private PostgreSQL 15 cluster for the fault suite: {exc}"
            if IN_CI:
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        yield pg
    finally:
        pg.destroy()
