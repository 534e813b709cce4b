"""Tokens that expire: ``POST /v1/tokens`` with ``expires_in_s`` and ``till token create --expires-in``;
the service refuses an expired token (401, "token expired") by its own clock, even a cached one; and
tokens stored before expiry existed (version 1 events) keep working. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from starlette.testclient import TestClient

from adapters.settings import Settings
from api.cli import main
from api.services import Services
from tests.conftest import SteppingClock, point_env_at
from tests.v1_token_events import KEPT_TOKEN, REVOKED_TOKEN, V1_EVENTS

PROBLEM = "application/problem+json"
DAYS_400 = 400 * 24 * 3600


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def issue(client: TestClient, admin_token: str, **body: Any) -> Any:
    return client.post("/v1/tokens", json={"role": "accountant", **body}, headers=bearer(admin_token))


def test_a_token_works_until_it_expires_and_is_refused_from_then_on_even_from_the_cache(
        client: TestClient, admin_token: str, clock: SteppingClock, services: Services) -> None:
    before = clock.current
    response = issue(client, admin_token, expires_in_s=3600, label="auditor, one hour")
    assert response.status_code == 201, response.text
    issued = response.json()
    expires_at = datetime.fromisoformat(issued["expires_at"])
    assert timedelta(seconds=3600) < expires_at - before <= timedelta(seconds=3600, milliseconds=50)
    assert client.get("/v1/projections", headers=bearer(issued["token"])).status_code == 200  # now cached

    clock.current = expires_at - timedelta(milliseconds=10)
    assert client.get("/v1/projections", headers=bearer(issued["token"])).status_code == 200
    clock.current = expires_at

    cached = client.get("/v1/projections", headers=bearer(issued["token"]))
    services.tokens.forget(UUID(issued["token_id"]))
    looked_up = client.get("/v1/projections", headers=bearer(issued["token"]))

    for answer in (cached, looked_up):
        assert answer.status_code == 401 and answer.headers["content-type"].startswith(PROBLEM)
        assert (answer.json()["code"], answer.json()["detail"]) == ("not_authenticated", "token expired")
        assert answer.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/projections", headers=bearer(admin_token)).status_code == 200  # no expiry: still good


def test_a_token_issued_without_expires_in_s_never_expires(client: TestClient, admin_token: str,
                                                           clock: SteppingClock) -> None:
    issued = issue(client, admin_token).json()
    assert issued["expires_at"] is None

    clock.current += timedelta(days=3650)

    assert client.get("/v1/projections", headers=bearer(issued["token"])).status_code == 200


@pytest.mark.parametrize("expires_in_s", [59, DAYS_400 + 1, 0, -60, 3600.5, "3600", True])
def test_expires_in_s_is_whole_seconds_from_a_minute_to_400_days(client: TestClient, admin_token: str,
                                                                 expires_in_s: Any) -> None:
    response = issue(client, admin_token, expires_in_s=expires_in_s)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "token" not in response.json()


@pytest.mark.parametrize("expires_in_s", [60, DAYS_400])
def test_the_bounds_of_expires_in_s_are_accepted(client: TestClient, admin_token: str, expires_in_s: int) -> None:
    assert issue(client, admin_token, expires_in_s=expires_in_s).status_code == 201


def test_tokens_stored_before_expiry_existed_still_authenticate_and_a_revoked_one_still_does_not(
        client: TestClient, services: Services) -> None:
    services.ledger.recorder.insert_events(V1_EVENTS)

    kept = client.get("/v1/projections", headers=bearer(KEPT_TOKEN))
    revoked = client.get("/v1/projections", headers=bearer(REVOKED_TOKEN))

    assert kept.status_code == 200, kept.text
    assert revoked.status_code == 401 and revoked.json()["detail"] == "unknown or revoked token"


# ---- till token create --expires-in ---------------------------------------------------------------
@pytest.fixture
def till_env(settings: Settings, services: Services, monkeypatch: pytest.MonkeyPatch) -> Services:
    point_env_at(settings, monkeypatch)
    return services


def test_till_token_create_with_expires_in_90d_issues_a_token_that_expires_90_days_after_its_issue(
        till_env: Services, client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "--role", "dispute", "--label", "contractor", "--expires-in", "90d"]) == 0

    out = capsys.readouterr().out
    token = re.search(r"^token:\s+(\S+)$", out, re.M).group(1)  # type: ignore[union-attr]
    token_id = UUID(re.search(r"^token_id:\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    found = till_env.ledger.find_token(token)
    [issued] = till_env.ledger.events.get(token_id)
    assert found is not None and found.role == "dispute" and found.expires_at is not None
    assert found.expires_at - issued.timestamp == timedelta(days=90)
    assert f"expires:  {found.expires_at.isoformat()}" in out


@pytest.mark.parametrize("given", ["59s", "401d", "90x", "d", "-5m", "1.5h"])
def test_till_token_create_refuses_a_lifetime_it_cannot_read_or_out_of_bounds(
        given: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token", "create", "--role", "admin", "--expires-in", given])

    assert exited.value.code == 2
    assert "--expires-in" in capsys.readouterr().err
