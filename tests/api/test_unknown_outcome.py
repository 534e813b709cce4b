"""A transaction whose outcome is unknown (host timeout) blocks the till until it is resolved."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.settlement import resync_session
from tests.counter import Stream, Till, card


def in_doubt(till: Till, amount_minor: int = 6_600) -> Stream:
    """A card sale whose authorization request timed out: OutcomeUnknown."""
    txn = till.begin()
    till.append(txn, {"type": "AmountEntered", "amount_minor": amount_minor, "currency": "CNY"})
    till.append(txn, {"type": "AmountConfirmed"})
    till.append(txn, card())
    till.append(txn, {"type": "PinVerified", "method": "online"})
    till.append(txn, {"type": "AuthorizationRequested", "stan": "000321"})
    till.append(txn, {"type": "OutcomeUnknown", "reason": "host did not answer within 60 s"})
    return txn


def terminal(client: TestClient, till: Till) -> dict[str, Any]:
    response = client.get(f"/v1/terminals/{till.terminal_id}", headers=till.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def try_to_open(till: Till, method: str) -> Any:
    attempt = Stream(str(uuid.uuid4()))
    return till.post(f"/v1/transactions/{attempt.stream_id}/events", 0, {
        "type": "TransactionOpened", "kind": "sale", "payment_method": method,
        "till_session_id": till.session.stream_id, "batch_no": till.batch_no, "trace_no": "000500"})


def test_an_unknown_outcome_blocks_new_card_sales_on_the_till(client: TestClient, till: Till) -> None:
    txn = in_doubt(till)

    response = try_to_open(till, "card")

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "till_blocked"
    assert response.json()["transaction_id"] == txn.stream_id
    assert terminal(client, till)["blocked_by"] == [txn.stream_id]
    assert till.state(txn)["outcome"] == "unknown"


def test_a_cash_sale_still_works_while_the_till_is_blocked(till: Till) -> None:
    in_doubt(till)

    cash = till.cash_sale(1_250, 2_000)

    state = till.state(cash)
    assert (state["status"], state["cash_tendered_minor"], state["change_given_minor"]) == ("completed", 2_000, 750)


def test_the_batch_cannot_be_settled_while_a_transaction_is_in_doubt(till: Till) -> None:
    in_doubt(till)
    resync_session(till)

    problem = till.till_event({"type": "BatchSettled", "batch_no": till.batch_no}, expect=422)

    assert problem["code"] == "till_blocked"


@pytest.mark.parametrize("event", [
    {"type": "TransactionCompleted"},
    {"type": "ReceiptPrinted", "copy": "merchant", "printer": "escpos-test", "reprint_no": 0,
     "receipt_sha256": "ab" * 32},
    {"type": "PrintFailed", "copy": "customer", "printer": "escpos-test", "reprint_no": 0, "reason": "paper out"},
    {"type": "TransactionCancelled", "reason": "customer left"},
], ids=lambda e: e["type"])
def test_a_transaction_in_doubt_cannot_be_completed_printed_or_cancelled(till: Till, event: dict[str, Any]) -> None:
    txn = in_doubt(till)

    problem = till.append(txn, event, expect=422)

    assert problem["code"] == "out_of_sequence"
    assert till.state(txn)["status"] == "open"
    assert till.history(txn)["events"][-1]["type"] == "OutcomeUnknown"


def test_recording_the_reversal_unblocks_the_till(client: TestClient, till: Till) -> None:
    txn = in_doubt(till)

    till.append(txn, {"type": "Reversed", "reason_code": "4021", "response_code": "00"})

    assert terminal(client, till)["blocked_by"] == []
    assert till.state(txn)["outcome"] == "reversed"
    till.finish(txn)
    assert till.state(txn)["status"] == "completed"
    sale = till.card_sale(2_000)
    assert till.state(sale)["status"] == "completed"
    assert till.history(txn)["chain_valid"] is True
    assert [e["data"].get("reason_code") for e in till.history(txn)["events"] if e["type"] == "Reversed"] == ["4021"]


def test_a_late_approval_found_by_status_inquiry_also_unblocks_the_till(client: TestClient, till: Till) -> None:
    txn = in_doubt(till)

    till.append(txn, {"type": "Authorized", "auth_code": "C3D4E5", "rrn": "000000000321", "response_code": "00"})

    assert terminal(client, till)["blocked_by"] == []
    till.finish(txn)
    assert (till.state(txn)["status"], till.state(txn)["outcome"]) == ("completed", "authorized")
