"""Liveness and readiness, on SQLite and PostgreSQL, and while PostgreSQL is unreachable.

The outage is real: the service talks to PostgreSQL through a TCP relay that the test cuts (its
port closes and every open connection is reset), as a stopped server or a broken network would.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from adapters.settings import Settings
from api.app import create_app
from api.services import Services
from tests.api.scraped import scrape
from tests.conftest import SteppingClock, make_services
from tests.counter import Till


class TcpRelay:
    """Forwards connections on a local port to ``target`` until ``cut()``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                inbound, _ = self.listener.accept()
            except OSError:  # cut
                return
            outbound = socket.create_connection(self.target)
            self.sockets += [inbound, outbound]
            for source, sink in ((inbound, outbound), (outbound, inbound)):
                threading.Thread(target=self._pump, args=(source, sink), name="relay-pump", daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        if self.listener.fileno() == -1:  # already cut
            return
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept; the port refuses from now on
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


@pytest.fixture
def outage(pg_settings: Settings, clock: SteppingClock) -> Iterator[tuple[TcpRelay, TestClient]]:
    """A client of the service on PostgreSQL through a relay the test can cut."""
    url = urlsplit(pg_settings.database_url)
    relay = TcpRelay((url.hostname or "127.0.0.1", url.port or 5432))
    user = url.netloc.rpartition("@")[0]
    relayed = url._replace(netloc=f"{user}@127.0.0.1:{relay.port}" if user else f"127.0.0.1:{relay.port}").geturl()
    services: Services = make_services(pg_settings.model_copy(update={"database_url": relayed,
                                                                      "readiness_timeout_s": 0.3}), clock)
    try:
        with TestClient(create_app(services=services), raise_server_exceptions=False) as client:
            yield relay, client
    finally:
        relay.cut()
        services.close()


def probe_threads() -> set[threading.Thread]:
    """The readiness reads in flight (an earlier test's may still wait on its dead server)."""
    return {thread for thread in threading.enumerate() if thread.name == "position-probe" and thread.is_alive()}


def test_healthz_answers_ok_without_a_token(client: TestClient) -> None:
    response = client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_answers_200_with_the_store_head_and_each_projections_position_and_lag(
        client: TestClient, till: Till, services: Services) -> None:
    till.cash_sale(1_000, 1_000)

    response = client.get("/readyz")  # no token

    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    head = services.ledger.recorder.max_notification_id()
    assert body["status"] == "ready"
    assert body["checks"]["event_store"] == {"status": "ok", "head": head}
    [view] = body["checks"]["projections"]["items"]
    # Nothing runs the projection in these tests: it trails the store, and that alone is not "unready".
    assert view["name"] == "ledger_view" and view["head"] == head
    assert view["lag"] == head - view["position"] > 0


@pytest.mark.postgres
def test_readyz_answers_503_with_code_not_ready_when_the_database_is_down(
        outage: tuple[TcpRelay, TestClient]) -> None:
    relay, client = outage
    assert client.get("/readyz").status_code == 200

    earlier = probe_threads()
    relay.cut()
    started = time.monotonic()
    answers = [client.get("/readyz") for _ in range(3)]
    elapsed = time.monotonic() - started

    for response in answers:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "not_ready"
        assert "the event store" in problem["detail"]
        assert problem["checks"]["event_store"]["status"] == "failed"
        assert problem["checks"]["projections"]["status"] == "not checked"
    # Each answer comes at the 0.3 s deadline, not after the driver's timeouts and retries (tens of
    # seconds); and the read still waiting on the dead server is shared, not started again per probe.
    assert elapsed < 3
    assert len(probe_threads() - earlier) == 1
    assert client.get("/healthz").status_code == 200  # alive: restarting it would not bring the database back


@pytest.mark.postgres
def test_metrics_still_answer_while_the_database_is_down_with_till_ready_at_0(
        outage: tuple[TcpRelay, TestClient]) -> None:
    relay, client = outage
    before = scrape(client)
    assert before.value("till_ready") == 1 and before.has("till_projection_lag_events", projection="ledger_view")

    relay.cut()
    during = scrape(client)

    assert during.value("till_ready") == 0
    assert not during.has("till_projection_lag_events", projection="ledger_view")
    assert during.has("till_events_appended_total")  # the process's own counters are still served
