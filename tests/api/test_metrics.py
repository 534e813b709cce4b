"""``GET /metrics``: appends, group-commit batches, projection lag, acquirer exchanges, errors by code
and HTTP requests, read back from the exposition as Prometheus would; and several worker processes
summed in prometheus_client's multiprocess mode.

Counters belong to the process, not to one app, so each test compares a scrape after with one before.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.testclient import TestClient

from adapters.acquirer_client import Iso8583AcquirerHost
from adapters.acquirer_simulator import AcquirerSimulator, SimulatorThread
from adapters.group_commit import run_alone
from adapters.metrics import MULTIPROC_DIR_ENV
from adapters.settings import Settings
from api.app import create_app
from api.auth import new_token
from api.cli import _metrics_dir
from api.services import Services
from domain.acquirer import AcquirerNoReply, AcquirerUnavailable, SignOnRequest, TerminalRef
from domain.ledger import Ledger
from domain.stamp import Stamp
from tests.api.scraped import Scrape, scrape
from tests.conftest import SteppingClock, make_services
from tests.counter import Till
from tests.host_counter import HostTill, test_pan

ROOT = Path(__file__).resolve().parents[2]
EVENTS = "/v1/transactions/{transaction_id}/events"


def admin_token_for(services: Services) -> str:
    token = new_token()
    run_alone(services.ledger, Ledger.issue_token(Stamp(None, None, None, services.clock.now()), token, "admin",
                                                  None, "test admin"))
    return token


@pytest.fixture
def sqlite_client(tmp_path: Path, clock: SteppingClock) -> Iterator[TestClient]:
    """For what does not depend on the store: one SQLite service is enough."""
    services = make_services(Settings(data_dir=tmp_path / "ledger", embedded_projections=False), clock)
    try:
        with TestClient(create_app(services=services), raise_server_exceptions=False) as client:
            yield client
    finally:
        services.close()


# ---- the append path -------------------------------------------------------------------------------
def head(services: Services) -> int:
    return services.ledger.recorder.max_notification_id() or 0


def test_appends_raise_the_appended_events_counter_and_each_save_observes_its_batch_size(
        client: TestClient, till: Till, services: Services) -> None:
    before, first = scrape(client), head(services)
    till.cash_sale(1_000, 1_500)  # six appends

    after = scrape(client)

    stored = head(services) - first
    assert after.value("till_events_appended_total") - before.value("till_events_appended_total") == stored >= 6
    saves = after.value("till_group_commit_batch_size_count") - before.value("till_group_commit_batch_size_count")
    commands = after.value("till_group_commit_batch_size_sum") - before.value("till_group_commit_batch_size_sum")
    assert 1 <= saves <= 6 and commands == 6  # one after another: most likely six batches of one


def test_with_group_commit_off_every_append_is_a_save_of_its_own(tmp_path: Path, clock: SteppingClock) -> None:
    services = make_services(Settings(data_dir=tmp_path, embedded_projections=False, group_commit=False), clock)
    try:
        with TestClient(create_app(services=services), raise_server_exceptions=False) as client:
            till = Till(client, admin_token_for(services)).register().open()
            before, first = scrape(client), head(services)
            till.cash_sale(1_000, 1_000)  # five appends
            after, stored = scrape(client), head(services) - first
    finally:
        services.close()

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("till_events_appended_total") == stored
    assert delta("till_group_commit_batch_size_bucket", le="1.0") == delta("till_group_commit_batch_size_count") == 5


def test_projection_lag_is_what_the_view_has_not_applied_and_drops_to_zero_once_it_catches_up(
        client: TestClient, till: Till, services: Services) -> None:
    till.cash_sale(1_000, 1_000)
    last = head(services)

    behind = scrape(client)
    services.views().runner.catch_up()  # what `till project run` does
    caught_up = scrape(client)

    assert behind.value("till_event_store_head") == last
    assert behind.value("till_projection_lag_events", projection="ledger_view") == \
        last - behind.value("till_projection_position", projection="ledger_view") > 0
    assert caught_up.value("till_projection_lag_events", projection="ledger_view") == 0
    assert caught_up.value("till_projection_position", projection="ledger_view") == last
    assert caught_up.value("till_ready") == 1


# ---- errors and requests ---------------------------------------------------------------------------
def test_error_answers_are_counted_by_their_problem_code(client: TestClient, till: Till) -> None:
    txn = till.begin("sale", "cash")
    before = scrape(client)

    rival = till.post(f"/v1/transactions/{txn.stream_id}/events", 0, {"type": "AmountEntered", "amount_minor": 5,
                                                                      "currency": "CNY"})
    invalid = till.post(f"/v1/transactions/{txn.stream_id}/events", 1, {"type": "AmountEntered", "amount_minor": 1.5,
                                                                        "currency": "CNY"})
    after = scrape(client)

    assert (rival.status_code, invalid.status_code) == (409, 422), (rival.text, invalid.text)
    for response in (rival, invalid):
        code = response.json()["code"]
        assert after.value("till_errors_total", code=code) - before.value("till_errors_total", code=code) == 1


def test_http_requests_are_counted_by_route_template_and_status_never_by_raw_path(
        client: TestClient, till: Till) -> None:
    before = scrape(client)
    txn = till.begin("sale", "cash")  # a fresh id in the path
    client.get(f"/no/such/{txn.stream_id}")
    after = scrape(client)

    created = dict(method="POST", route=EVENTS, status="201")
    assert after.value("till_http_requests_total", **created) - before.value("till_http_requests_total", **created) == 1
    missing = dict(method="GET", route="<unmatched>", status="404")
    assert after.value("till_http_requests_total", **missing) - before.value("till_http_requests_total", **missing) == 1
    assert after.value("till_http_request_duration_seconds_count", method="POST", route=EVENTS) > 0
    assert not any(txn.stream_id in labels for _, label_set in after.samples for labels in dict(label_set).values())


# ---- the acquirer host -----------------------------------------------------------------------------
@pytest.fixture
def host_till(tmp_path: Path, clock: SteppingClock) -> Iterator[tuple[HostTill, AcquirerSimulator]]:
    """A till that authorizes through the acquirer host simulator over TCP (SQLite ledger)."""
    (tmp_path / "host-files").mkdir()
    simulator = AcquirerSimulator(tmp_path / "host-journal.sqlite", settlement_dir=tmp_path / "host-files")
    with SimulatorThread(simulator) as port:
        settings = Settings(data_dir=tmp_path / "ledger", acquirer_url=f"127.0.0.1:{port}", acquirer_timeout_s=2,
                            acquirer_connect_timeout_s=1, embedded_projections=True)
        services = make_services(settings, clock)
        try:
            with TestClient(create_app(services=services), raise_server_exceptions=False) as client:
                till = HostTill(client, admin_token_for(services)).register().open()
                till.sign_on()
                yield till, simulator
        finally:
            services.close()
    simulator.close()


def acquirer_delta(before: Scrape, after: Scrape, operation: str, outcome: str) -> float:
    name, labels = "till_acquirer_requests_total", dict(operation=operation, outcome=outcome)
    return after.value(name, **labels) - before.value(name, **labels)


def test_authorizations_through_the_acquirer_host_are_timed_and_counted_as_approved_or_declined(
        host_till: tuple[HostTill, AcquirerSimulator]) -> None:
    till, simulator = host_till
    simulator.set_rules([{"pan_suffix": test_pan(2)[-4:], "action": "decline", "response_code": "51"}])
    before = scrape(till.client)

    _, approved = till.sale_through_host(1_200, test_pan(1))
    _, declined = till.sale_through_host(3_400, test_pan(2))
    after = scrape(till.client)

    assert (approved["outcome"], declined["outcome"]) == ("authorized", "declined")
    assert acquirer_delta(before, after, "authorize", "approved") == 1
    assert acquirer_delta(before, after, "authorize", "declined") == 1
    timed = "till_acquirer_request_duration_seconds_count"
    assert after.value(timed, operation="authorize") - before.value(timed, operation="authorize") == 2
    assert after.value("till_acquirer_requests_total", operation="sign_on", outcome="approved") >= 1


def test_a_host_that_refuses_the_connection_is_unreachable_and_one_that_never_answers_is_a_timeout(
        sqlite_client: TestClient) -> None:
    sign_on = SignOnRequest(TerminalRef(merchant_no="898310048990001", terminal_no="30000001"), "000001", "01",
                            datetime.now(ZoneInfo("Asia/Shanghai")))
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    before = scrape(sqlite_client)

    with socket.create_server(("127.0.0.1", 0)) as silent:  # connects (the backlog), never replies
        with pytest.raises(AcquirerNoReply):
            asyncio.run(Iso8583AcquirerHost("127.0.0.1", silent.getsockname()[1], timeout_s=0.2).sign_on(sign_on))
    with pytest.raises(AcquirerUnavailable):
        asyncio.run(Iso8583AcquirerHost("127.0.0.1", closed_port, timeout_s=0.2).sign_on(sign_on))
    after = scrape(sqlite_client)

    assert acquirer_delta(before, after, "sign_on", "timeout") == 1
    assert acquirer_delta(before, after, "sign_on", "unreachable") == 1


# ---- several worker processes ----------------------------------------------------------------------
WORKER = f"""
import sys
from adapters.metrics import EVENTS_APPENDED, record_request
EVENTS_APPENDED.inc(int(sys.argv[1]))
record_request("POST", "{EVENTS}", 201, 0.01)
"""


def test_in_multiprocess_mode_metrics_serves_the_sum_of_every_worker_process(
        sqlite_client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {**os.environ, MULTIPROC_DIR_ENV: str(directory)}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(n)], cwd=ROOT, env=env) for n in (3, 4)]
    assert [worker.wait(timeout=30) for worker in workers] == [0, 0]

    monkeypatch.setenv(MULTIPROC_DIR_ENV, str(directory))  # as in every `till serve --workers N` worker
    summed = scrape(sqlite_client)

    assert summed.value("till_events_appended_total") == 7  # the two workers' files; this process keeps its own
    assert summed.value("till_http_requests_total", method="POST", route=EVENTS, status="201") == 2
    assert summed.has("till_projection_lag_events", projection="ledger_view")  # read by whoever answers the scrape


def test_till_serve_gives_several_workers_a_fresh_private_metrics_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MULTIPROC_DIR_ENV, "")  # remembered, so the test leaves the environment as it found it
    monkeypatch.delenv(MULTIPROC_DIR_ENV)

    assert _metrics_dir(1) is None and MULTIPROC_DIR_ENV not in os.environ
    path = _metrics_dir(2)
    assert path is not None
    try:
        assert os.environ[MULTIPROC_DIR_ENV] == path
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700 and os.listdir(path) == []
    finally:
        shutil.rmtree(path)
    monkeypatch.setenv(MULTIPROC_DIR_ENV, "/var/lib/till/metrics")  # the operator's own: left alone
    assert _metrics_dir(4) is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_till_serve_with_two_workers_logs_json_lines_and_serves_metrics_summed_over_both(tmp_path: Path) -> None:
    port, temp = free_port(), tmp_path / "tmp"
    temp.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TILL_", "PROMETHEUS_"))}
    env.update(TILL_DATA_DIR=str(tmp_path / "data"), TMPDIR=str(temp))
    log_file = tmp_path / "serve.log"
    with log_file.open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", "2"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            url = f"http://127.0.0.1:{port}"
            served = wait_until_up(url, server)
            for _ in range(6):  # new connections, which either worker may take
                with httpx.Client(base_url=url) as fresh:
                    assert fresh.get("/healthz").status_code == 200
            with httpx.Client(base_url=url) as fresh:
                refused = fresh.get("/v1/disputes/search?rrn=4111111111111111", headers={"X-Request-ID": "till-07.a_b"})
                metrics = fresh.get("/metrics").text
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=20)

    assert refused.status_code == 401 and refused.headers["X-Request-ID"] == "till-07.a_b"
    requests_counted = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                           if line.startswith("till_http_requests_total{"))
    assert requests_counted == served + 6 + 1
    assert list(temp.iterdir()) == []  # the private metrics directory is gone
    text = log_file.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    [access] = [line for line in lines if line["logger"] == "till.access" and line["request_id"] == "till-07.a_b"]
    assert (access["method"], access["path"], access["status"]) == ("GET", "/v1/disputes/search", 401)
    assert "4111111111111111" not in text


def wait_until_up(url: str, server: subprocess.Popen[bytes]) -> int:
    """Poll /healthz until it answers; how many polls were answered (they are counted too)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "till serve exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return 1
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("till serve did not answer within 30 s")

