"""Scale-out, for real: three `till serve` processes and one `till project run ledger_view` worker on
one PostgreSQL schema, driven over HTTP from threads (docs/scaling.md).

Every append of a till goes to the next process in turn, so consecutive events of one stream are
written by different processes (each with its own group committer and aggregate cache). Then two
processes race for the same next version of a stream; every acknowledged event must be in the
store exactly once, and the day report, read from each process with ``wait_for_position``, must
match what was sold.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from psycopg import sql

from adapters.group_commit import run_alone
from adapters.settings import Settings
from adapters.store import libpq_conninfo
from api.app import build_services
from api.auth import new_token
from api.database_setup import init_database
from domain.ledger import Ledger
from domain.stamp import Stamp
from tests.counter import Stream, Till
from tests.e2e.live_service import free_port

pytestmark = pytest.mark.postgres
API_PROCESSES = 3
TERMINALS = 6
START_TIMEOUT_S = 20
STOP_TIMEOUT_S = 10
REPO = Path(__file__).parents[2]


def till_command() -> list[str]:
    """The installed console script next to this interpreter (what an operator runs)."""
    script = Path(sys.executable).with_name("till")
    return [str(script)] if script.exists() else [sys.executable, "-m", "api.cli"]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} (exit {self.popen.poll()}) ---\n" + "\n".join(text.splitlines()[-25:])


@dataclass
class Deployment:
    settings: Settings
    apis: list[Process]
    worker: Process
    admin_token: str

    def logs(self) -> str:
        return "\n".join(p.tail() for p in [*self.apis, self.worker])


def _environment(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILL_")}
    env.update({"TILL_DATA_DIR": str(settings.data_dir), "TILL_DATABASE_URL": str(settings.database_url),
                "TILL_DATABASE_SCHEMA": settings.database_schema, "TILL_EMBEDDED_PROJECTIONS": "false",
                "TILL_CREATE_TABLES": "false", "PYTHONUNBUFFERED": "1"})
    return env


def _start(name: str, args: list[str], env: dict[str, str], logs: Path) -> Process:
    log = logs / f"{name}.log"
    with open(log, "wb") as out:  # the child keeps its own descriptor
        popen = subprocess.Popen([*till_command(), *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
    return Process(name, popen, log)


def _stop(processes: list[Process]) -> None:
    for process in processes:
        if process.popen.poll() is None:
            process.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        try:
            process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait(timeout=5)


def _wait_until_serving(apis: list[Process], everything: list[Process]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    waiting = list(apis)
    with httpx.Client(timeout=1) as http:
        while waiting:
            for process in everything:
                assert process.popen.poll() is None, "a process died while starting:\n" + process.tail()
            for process in list(waiting):
                try:
                    if http.get(f"{process.url}/healthz").status_code == 200:
                        waiting.remove(process)
                except httpx.TransportError:
                    pass
            assert time.monotonic() < deadline, "not serving within 20 s:\n" + "\n".join(p.tail() for p in waiting)
            time.sleep(0.1)


@pytest.fixture
def deployment(pg_settings: Settings, tmp_path: Path) -> Iterator[Deployment]:
    """The tables made once (`till db init`), a first admin token, then 3 API processes and 1 worker."""
    settings = pg_settings.model_copy(update={"data_dir": tmp_path / "shared-data"})
    init_database(settings)  # so that no process races to create tables (they run with CREATE_TABLES off)
    admin_token = new_token()
    services = build_services(settings.model_copy(update={"create_tables": False}), read_models=False)
    try:  # before any server starts: none of them then writes a first admin token of its own
        run_alone(services.ledger, Ledger.issue_token(Stamp(None, None, None, services.clock.now()), admin_token,
                                                      "admin", None, "scale-out test"))
    finally:
        services.close()
    env = _environment(settings)
    apis: list[Process] = []
    started: list[Process] = []
    try:
        for i in range(API_PROCESSES):
            port = free_port()
            process = _start(f"api-{i}", ["serve", "--host", "127.0.0.1", "--port", str(port),
                                          "--log-level", "warning"], env, tmp_path)
            process.url = f"http://127.0.0.1:{port}"
            apis.append(process)
            started.append(process)
        worker = _start("project-ledger_view", ["project", "run", "ledger_view"], env, tmp_path)
        started.append(worker)
        _wait_until_serving(apis, started)
        yield Deployment(settings, apis, worker, admin_token)
    finally:
        _stop(started)


@dataclass
class Ack:
    stream_id: str
    version: int
    position: int
    served_by: str


@dataclass
class RoundRobin:
    """An HTTP client that sends each request to the next API process in turn (a load balancer with
    no affinity), and notes every append a process acknowledged."""

    urls: list[str]
    acks: list[Ack]
    lock: threading.Lock
    clients: list[httpx.Client] = field(default_factory=list)
    turn: itertools.count = field(default_factory=itertools.count)  # type: ignore[type-arg]

    def __post_init__(self) -> None:
        self.clients = [httpx.Client(base_url=url, timeout=15) for url in self.urls]

    def _next(self) -> httpx.Client:
        return self.clients[next(self.turn) % len(self.clients)]

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        client = self._next()
        response = client.post(path, **kwargs)
        if response.status_code == 201 and path.endswith("/events"):
            body = response.json()
            with self.lock:
                self.acks.append(Ack(body["stream_id"], body["version"], body["position"], str(client.base_url)))
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._next().get(path, **kwargs)

    def close(self) -> None:
        for client in self.clients:
            client.close()


def shanghai_day() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


def test_three_api_processes_and_one_projection_worker_on_one_database_record_each_sale_once_and_agree_on_the_report(
        deployment: Deployment) -> None:
    urls = [str(p.url) for p in deployment.apis]
    acks: list[Ack] = []
    lock = threading.Lock()
    sold: Counter[tuple[str, str]] = Counter()  # (terminal_no, brand) -> minor units
    days = {shanghai_day()}

    def counter_day(i: int) -> None:
        client = RoundRobin(urls[i % API_PROCESSES:] + urls[:i % API_PROCESSES], acks, lock)
        try:
            till = Till(client, deployment.admin_token).register().open()  # type: ignore[arg-type]
            brand = ("unionpay", "visa", "mastercard")[i % 3]
            amounts = [(brand, 1_000 * (i + 1) + 1), (brand, 1_000 * (i + 1) + 2)]
            for card_brand, amount in amounts:
                till.card_sale(amount, brand=card_brand, last4=f"{i:02d}{amount % 100:02d}")
            till.cash_sale(500 + i, 1_000)
            with lock:
                for card_brand, amount in amounts:
                    sold[(till.terminal_no, card_brand)] += amount
                sold[(till.terminal_no, "cash")] += 500 + i
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=TERMINALS) as pool:
        for done in [pool.submit(counter_day, i) for i in range(TERMINALS)]:
            done.result(timeout=60)
    served = Counter(ack.served_by for ack in acks)
    assert len(served) == API_PROCESSES and min(served.values()) > len(acks) // (API_PROCESSES + 1), served

    # Two processes race for the same next version of one stream: one wins, the other is told the version.
    racer = RoundRobin(urls, acks, lock)
    try:
        till = Till(racer, deployment.admin_token).register().open()  # type: ignore[arg-type]
        races = [(a, (a + 1) % API_PROCESSES) for a in range(API_PROCESSES)]
        outcomes = []
        for first, second in races:
            txn: Stream = till.begin()
            start = threading.Barrier(2, timeout=10)

            def scan(process: int, txn: Stream = txn, start: threading.Barrier = start) -> httpx.Response:
                body = {"expected_version": txn.version, "operator_no": "01",
                        "device_time": datetime.now(ZoneInfo("Asia/Shanghai")).isoformat(),
                        "event": {"type": "ItemScanned", "barcode": f"RACE-{process}", "name": f"from api-{process}",
                                  "quantity": 1, "unit_price_minor": 100 + process}}
                start.wait()
                response = racer.clients[process].post(f"/v1/transactions/{txn.stream_id}/events", json=body,
                                                       headers=till.headers)
                if response.status_code == 201:
                    with lock:
                        acks.append(Ack(txn.stream_id, response.json()["version"], response.json()["position"],
                                        urls[process]))
                return response

            with ThreadPoolExecutor(max_workers=2) as pool:
                answers = list(pool.map(scan, (first, second), timeout=30))
            outcomes.append(sorted((r.status_code, r.json().get("current_version")) for r in answers))
        accountant = racer.post("/v1/tokens", headers={"Authorization": f"Bearer {deployment.admin_token}"},
                                json={"role": "accountant"})
        assert accountant.status_code == 201, accountant.text
    finally:
        racer.close()
    assert outcomes == [[(201, None), (409, 2)]] * len(races), outcomes

    # Every acknowledged event is in the store, once, at the position its process answered.
    with psycopg.connect(libpq_conninfo(deployment.settings)) as conn:
        stored = {row[0]: (str(row[1]), row[2]) for row in conn.execute(sql.SQL(
            "SELECT notification_id, originator_id, originator_version FROM {}.ledger_events").format(
                sql.Identifier(deployment.settings.database_schema)))}
    assert len({ack.position for ack in acks}) == len(acks)
    assert all(stored.get(ack.position) == (ack.stream_id, ack.version) for ack in acks), \
        [ack for ack in acks if stored.get(ack.position) != (ack.stream_id, ack.version)][:5]
    acked_streams = {ack.stream_id for ack in acks}
    assert sorted((s, v) for s, v in stored.values() if s in acked_streams) == sorted(
        (ack.stream_id, ack.version) for ack in acks), "an event nobody acknowledged, or one missing"

    # The day report from each process, once the worker's view has the last acknowledged position.
    days.add(shanghai_day())  # a run across local midnight reports over both days
    last = max(ack.position for ack in acks)
    headers = {"Authorization": f"Bearer {accountant.json()['token']}"}
    reported = []
    for url in urls:
        totals: Counter[tuple[str, str]] = Counter()
        with httpx.Client(base_url=url, timeout=15) as http:
            for day in sorted(days):
                response = http.get("/v1/reports/day", params={"date": day, "wait_for_position": last},
                                    headers=headers)
                assert response.status_code == 200, response.text + "\n" + deployment.logs()
                for line in response.json()["lines"]:
                    if line["kind"] == "sale":
                        totals[(line["terminal_no"], line["brand"])] += line["gross_minor"]
            status = http.get("/v1/projections", headers=headers).json()["projections"][0]
        assert status["running_here"] is False  # the API processes only read; the worker projects
        reported.append(+totals)
    assert reported == [+sold] * API_PROCESSES
    assert deployment.worker.popen.poll() is None, deployment.worker.tail()
