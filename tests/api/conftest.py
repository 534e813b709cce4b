"""API fixtures: the real app over a real store, a first admin token, and a counter script."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from adapters.group_commit import run_alone
from api.app import create_app
from api.auth import new_token
from api.services import Services
from domain.ledger import Ledger
from domain.stamp import Stamp
from tests.counter import Till


@pytest.fixture
def admin_token(services: Services) -> str:
    token = new_token()
    run_alone(services.ledger, Ledger.issue_token(Stamp(None, None, None, services.clock.now()), token, "admin",
                                                  None, "test admin"))
    return token


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services=services), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def till(client: TestClient, admin_token: str) -> Till:
    """A registered terminal with its till open and operator 01 signed in."""
    return Till(client, admin_token).register().open()
