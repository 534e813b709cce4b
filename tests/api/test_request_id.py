"""Every answer carries a request id; every request leaves one JSON access line with that id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from adapters.json_logging import ACCESS_LOGGER, CardDataFilter, JsonFormatter
from api.app import create_app
from api.services import Services
from tests.counter import Till

VISA = "4761739001010010"  # Luhn-valid


class LogLines:
    """JSON lines from the access log and the API's loggers, as ``till serve`` writes them."""

    NAMES = (ACCESS_LOGGER, "api")

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        self.handler.addFilter(CardDataFilter())
        self.saved: list[tuple[logging.Logger, int, bool]] = []
        for name in self.NAMES:
            logger = logging.getLogger(name)
            self.saved.append((logger, logger.level, logger.propagate))
            logger.addHandler(self.handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False

    def close(self) -> None:
        for logger, level, propagate in self.saved:
            logger.removeHandler(self.handler)
            logger.setLevel(level)
            logger.propagate = propagate

    def entries(self, logger: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.stream.getvalue().splitlines()]
        return [line for line in lines if logger is None or line["logger"] == logger]


@pytest.fixture
def logs() -> Iterator[LogLines]:
    lines = LogLines()
    yield lines
    lines.close()


def test_every_answer_carries_a_new_request_id_or_the_callers_when_it_is_a_sane_token(client: TestClient) -> None:
    first, second = client.get("/healthz"), client.get("/healthz")
    echoed = client.get("/healthz", headers={"X-Request-ID": "agent-0007.retry_2"})

    assert len(first.headers["X-Request-ID"]) == 32 and first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    assert echoed.headers["X-Request-ID"] == "agent-0007.retry_2"


@pytest.mark.parametrize("offered", ["a" * 65, "two words", "id;rm -rf", "ünïcode", ""])
def test_a_request_id_that_is_not_a_sane_token_is_replaced(client: TestClient, offered: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": offered.encode()})

    assert response.headers["X-Request-ID"] != offered
    assert len(response.headers["X-Request-ID"]) == 32


def test_each_request_leaves_one_json_access_line_with_its_id_and_no_query_string(
        client: TestClient, till: Till, logs: LogLines) -> None:
    response = client.get(f"/v1/disputes/search?rrn={VISA}", headers={**till.headers, "X-Request-ID": "search-1"})

    [line] = logs.entries(ACCESS_LOGGER)
    assert line["request_id"] == response.headers["X-Request-ID"] == "search-1"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/v1/disputes/search", response.status_code)
    assert line["duration_ms"] >= 0 and line["client"] == "testclient"
    assert line["message"] == f"GET /v1/disputes/search {response.status_code}"
    assert VISA not in logs.stream.getvalue()


def test_successful_probes_and_scrapes_are_counted_but_not_logged(client: TestClient, logs: LogLines) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200

    assert logs.entries(ACCESS_LOGGER) == []


def test_an_unexpected_error_answers_500_with_the_request_id_that_its_log_lines_carry(
        services: Services, logs: LogLines) -> None:
    app = create_app(services=services)

    async def broken() -> None:
        raise RuntimeError("a defect")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken", headers={"X-Request-ID": "oops-1"})

    assert response.status_code == 500 and response.json()["code"] == "internal_error"
    assert response.headers["X-Request-ID"] == "oops-1"
    [error] = logs.entries("api.errors")
    [access] = logs.entries(ACCESS_LOGGER)
    assert error["request_id"] == access["request_id"] == "oops-1"
    assert "RuntimeError: a defect" in error["exception"] and access["status"] == 500
