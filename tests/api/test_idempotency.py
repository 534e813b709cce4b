"""Appends are idempotent by expected_version: a retry is answered from the record, a rival is refused."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.testclient import TestClient

from tests.counter import Stream, Till, card

PROBLEM = "application/problem+json"


def envelope(version: int, event: dict[str, Any]) -> dict[str, Any]:
    return {"expected_version": version, "operator_no": "01", "device_time": "2026-11-24T10:00:00+08:00",
            "event": event}


def post(till: Till, txn: Stream, body: dict[str, Any]) -> Any:
    return till.client.post(f"/v1/transactions/{txn.stream_id}/events", json=body, headers=till.headers)


def test_retrying_an_identical_append_returns_the_recorded_result_as_a_replay(till: Till) -> None:
    txn = till.begin()
    body = envelope(1, {"type": "AmountEntered", "amount_minor": 12_345, "currency": "CNY"})

    first = post(till, txn, body)
    retry = post(till, txn, body)

    assert first.status_code == 201, first.text
    assert retry.status_code == 200, retry.text
    assert first.json()["replayed"] is False and retry.json()["replayed"] is True
    for key in ("stream_id", "version", "type", "hash", "recorded_at"):
        assert retry.json()[key] == first.json()[key], key
    assert retry.json()["version"] == 2
    assert [e["type"] for e in till.history(txn)["events"]] == ["TransactionOpened", "AmountEntered"]


def test_a_retry_is_still_a_replay_after_the_stream_moved_on(till: Till) -> None:
    txn = till.begin()
    body = envelope(1, {"type": "AmountEntered", "amount_minor": 500, "currency": "CNY"})
    first = post(till, txn, body)
    txn.version = 2
    till.append(txn, {"type": "AmountConfirmed"})
    till.append(txn, card())

    late_retry = post(till, txn, body)

    assert late_retry.status_code == 200, late_retry.text
    assert (late_retry.json()["version"], late_retry.json()["hash"], late_retry.json()["replayed"]) == (
        2, first.json()["hash"], True)
    assert till.history(txn)["version"] == 4


def test_retrying_the_opening_of_a_transaction_replays_it_without_starting_it_twice(
        client: TestClient, till: Till) -> None:
    txn = Stream(str(uuid.uuid4()))
    body = envelope(0, {"type": "TransactionOpened", "kind": "sale", "payment_method": "card",
                        "till_session_id": till.session.stream_id, "batch_no": "000001", "trace_no": "000042"})

    first, retry = post(till, txn, body), post(till, txn, body)

    assert (first.status_code, retry.status_code) == (201, 200), retry.text
    assert retry.json()["hash"] == first.json()["hash"]
    terminal = client.get(f"/v1/terminals/{till.terminal_id}", headers=till.headers).json()
    assert terminal["transactions_in_batch"] == 1


def test_retrying_a_till_event_replays_it(client: TestClient, till: Till) -> None:
    body = {"expected_version": till.session.version, "operator_no": "01",
            "device_time": "2026-11-24T18:00:00+08:00", "event": {"type": "CashCounted", "counted_minor": 50_000}}
    path = f"/v1/till-sessions/{till.session.stream_id}/events"

    first = client.post(path, json=body, headers=till.headers)
    retry = client.post(path, json=body, headers=till.headers)

    assert (first.status_code, retry.status_code) == (201, 200), retry.text
    assert retry.json()["replayed"] is True and retry.json()["hash"] == first.json()["hash"]


def test_a_different_event_at_an_already_used_version_is_a_version_conflict(till: Till) -> None:
    txn = till.begin()
    assert post(till, txn, envelope(1, {"type": "AmountEntered", "amount_minor": 800, "currency": "CNY"})
                ).status_code == 201

    rival = post(till, txn, envelope(1, {"type": "AmountEntered", "amount_minor": 900, "currency": "CNY"}))

    assert rival.status_code == 409, rival.text
    assert rival.headers["content-type"].startswith(PROBLEM)
    problem = rival.json()
    assert (problem["code"], problem["status"], problem["current_version"]) == ("version_conflict", 409, 2)
    assert till.state(txn)["amount_minor"] == 800


def test_the_same_event_from_another_device_time_is_a_different_statement(till: Till) -> None:
    txn = till.begin()
    event = {"type": "AmountEntered", "amount_minor": 800, "currency": "CNY"}
    assert post(till, txn, envelope(1, event)).status_code == 201

    later = {**envelope(1, event), "device_time": "2026-11-24T10:05:00+08:00"}
    response = post(till, txn, later)

    assert response.status_code == 409, response.text
    assert response.json()["current_version"] == 2


def test_an_expected_version_ahead_of_the_stream_is_a_version_conflict(till: Till) -> None:
    txn = till.begin()

    ahead = post(till, txn, envelope(5, {"type": "AmountEntered", "amount_minor": 800, "currency": "CNY"}))

    assert ahead.status_code == 409, ahead.text
    assert ahead.headers["content-type"].startswith(PROBLEM)
    assert (ahead.json()["code"], ahead.json()["current_version"]) == ("version_conflict", 1)
    assert till.history(txn)["version"] == 1


def test_an_expected_version_ahead_of_a_stream_that_does_not_exist_is_a_version_conflict_at_zero(
        till: Till) -> None:
    txn = Stream(str(uuid.uuid4()))

    ahead = post(till, txn, envelope(3, {"type": "AmountEntered", "amount_minor": 800, "currency": "CNY"}))

    assert ahead.status_code == 409, ahead.text
    assert (ahead.json()["code"], ahead.json()["current_version"]) == ("version_conflict", 0)
