"""Concurrent appends through a real HTTP server on PostgreSQL: one writer wins, retries replay,
and many terminals at once all succeed with verifiable chains."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from adapters.settings import Settings
from api.app import create_app
from api.services import Services
from tests.counter import Stream, Till

pytestmark = pytest.mark.postgres
T = TypeVar("T")
WRITERS = 16


@pytest.fixture
def settings(pg_settings: Settings) -> Settings:
    """PostgreSQL only: the store every shared fixture (services, admin_token) is built on here."""
    return pg_settings


@pytest.fixture
def base_url(services: Services) -> Iterator[str]:
    """The real app in a real uvicorn server on a free loopback port, for the length of one test."""
    config = uvicorn.Config(create_app(services=services), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="on", ws="none", http="h11", loop="asyncio", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start within 10 s"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "the server did not stop within 10 s"


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


@pytest.fixture
def counter(http: httpx.Client, admin_token: str) -> Till:
    return Till(http, admin_token).register().open()  # type: ignore[arg-type]


def all_at_once(n: int, task: Callable[[int], T]) -> list[T]:
    """Run ``task(i)`` for i in range(n) from n threads released together."""
    start = threading.Barrier(n, timeout=10)

    def released(i: int) -> T:
        start.wait()
        return task(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(released, range(n), timeout=30))


def append_body(version: int, event: dict[str, Any], device_time: str = "2026-11-24T10:00:00+08:00") -> dict[str, Any]:
    return {"expected_version": version, "operator_no": "01", "device_time": device_time, "event": event}


def test_of_many_different_appends_at_the_same_version_exactly_one_wins_and_the_rest_conflict(
        base_url: str, counter: Till) -> None:
    txn = counter.begin()
    path = f"/v1/transactions/{txn.stream_id}/events"

    def scan_one_item(i: int) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=10) as client:
            return client.post(path, headers=counter.headers, json=append_body(1, {
                "type": "ItemScanned", "barcode": f"ITEM-{i:04d}", "name": f"item {i}", "quantity": 1,
                "unit_price_minor": 100 + i}))

    responses = all_at_once(WRITERS, scan_one_item)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (WRITERS - 1), [r.text for r in responses if r.status_code not in (201, 409)]
    for response in responses:
        if response.status_code == 409:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert (response.json()["code"], response.json()["current_version"]) == ("version_conflict", 2)
    winner = next(r.json() for r in responses if r.status_code == 201)
    history = counter.history(txn)
    assert history["chain_valid"] is True
    assert [e["type"] for e in history["events"]] == ["TransactionOpened", "ItemScanned"]
    assert history["events"][1]["hash"] == winner["hash"]


def test_concurrent_identical_retries_record_the_event_once_and_replay_it_to_the_others(
        base_url: str, counter: Till) -> None:
    txn = counter.begin()
    path = f"/v1/transactions/{txn.stream_id}/events"
    body = append_body(1, {"type": "AmountEntered", "amount_minor": 8_888, "currency": "CNY"})

    def retry(i: int) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=10) as client:
            return client.post(path, headers=counter.headers, json=body)

    responses = all_at_once(WRITERS, retry)

    assert sorted(r.status_code for r in responses) == [200] * (WRITERS - 1) + [201], [r.text for r in responses]
    assert {(r.json()["version"], r.json()["hash"]) for r in responses} == {
        (2, next(r.json()["hash"] for r in responses if r.status_code == 201))}
    assert all(r.json()["replayed"] is (r.status_code == 200) for r in responses)
    history = counter.history(txn)
    assert [e["type"] for e in history["events"]] == ["TransactionOpened", "AmountEntered"]
    assert history["chain_valid"] is True


def test_many_terminals_selling_at_once_all_succeed_and_every_history_verifies(
        base_url: str, http: httpx.Client, admin_token: str) -> None:
    tills = [Till(http, admin_token).register().open() for _ in range(8)]  # type: ignore[arg-type]
    sales_each = 3

    def ring_up(i: int) -> list[Stream]:
        with httpx.Client(base_url=base_url, timeout=10) as client:
            till = tills[i]
            till.client = client  # type: ignore[assignment]
            sales = [till.card_sale(1_000 * (i + 1) + n, brand=("unionpay", "visa", "mastercard")[n % 3],
                                    last4=f"{i:02d}{n:02d}") for n in range(sales_each)]
            sales.append(till.cash_sale(500 + i, 1_000))
            return sales

    rung_up = all_at_once(len(tills), ring_up)

    for till, sales in zip(tills, rung_up):
        till.client = http  # type: ignore[assignment]
        for sale in sales:
            history = till.history(sale)
            assert history["chain_valid"] is True
            assert history["events"][-1]["type"] == "TransactionCompleted"
            assert {e["terminal_id"] for e in history["events"]} == {till.terminal_id}
        session = http.get(f"/v1/till-sessions/{till.session.stream_id}/events", headers=till.headers).json()
        assert session["chain_valid"] is True
        assert [e["type"] for e in session["events"]] == ["TillOpened", "OperatorSignedIn"]
        terminal = http.get(f"/v1/terminals/{till.terminal_id}", headers=till.headers).json()
        assert terminal["transactions_in_batch"] == len(sales)
    assert len({s.stream_id for sales in rung_up for s in sales}) == len(tills) * (sales_each + 1)
