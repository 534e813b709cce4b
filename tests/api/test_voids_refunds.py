"""Voids (撤销) within the open batch, refunds (退货) after settlement, never more than what is left."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.settlement import settle
from tests.counter import Stream, Till, card

PROBLEM = "application/problem+json"


def refused_opening(till: Till, kind: str, original: Stream) -> Any:
    """Try to open a void or refund of ``original``; returns the problem the API answered with."""
    attempt = Stream(str(uuid.uuid4()))
    problem = till.append(attempt, {"type": "TransactionOpened", "kind": kind, "payment_method": "card",
                                    "till_session_id": till.session.stream_id, "batch_no": till.batch_no,
                                    "trace_no": "000999", "original_transaction_id": original.stream_id},
                          expect=422)
    assert till.history(original)["chain_valid"] is True
    return problem


def begin_credit(till: Till, kind: str, original: Stream, amount_minor: int) -> Stream:
    """Open a void or refund of ``original`` and bring it up to the authorization request."""
    credit = till.begin(kind, "card", original)
    till.append(credit, {"type": "AmountEntered", "amount_minor": amount_minor, "currency": "CNY"})
    till.append(credit, {"type": "AmountConfirmed"})
    till.append(credit, card())
    till.append(credit, {"type": "PinVerified", "method": "online"})
    till.append(credit, {"type": "AuthorizationRequested", "stan": "000777"})
    return credit


def approve_and_complete(till: Till, credit: Stream) -> None:
    till.append(credit, {"type": "Authorized", "auth_code": "B2C3D4", "rrn": "000000000777", "response_code": "00"})
    till.finish(credit)


def test_a_void_in_the_same_batch_completes_and_marks_the_original_voided(till: Till) -> None:
    sale = till.card_sale(8_800)

    void = till.card_sale(8_800, kind="void", original=sale)

    assert till.state(void)["status"] == "completed"
    assert till.state(void)["kind"] == "void"
    original = till.state(sale)
    assert original["voided_by"] == void.stream_id
    assert original["refundable_minor"] == 0
    assert original["credits"] == {void.stream_id: {"kind": "void", "amount_minor": 8_800, "state": "applied"}}
    assert till.history(sale)["chain_valid"] and till.history(void)["chain_valid"]


def test_a_void_is_for_the_full_amount_only(till: Till) -> None:
    sale = till.card_sale(8_800)
    void = till.begin("void", "card", sale)

    problem = till.append(void, {"type": "AmountEntered", "amount_minor": 4_400, "currency": "CNY"}, expect=422)

    assert (problem["code"], problem["original_amount_minor"]) == ("void_not_allowed", 8_800)


def test_a_sale_cannot_be_voided_twice(till: Till) -> None:
    sale = till.card_sale(8_800)
    till.card_sale(8_800, kind="void", original=sale)

    assert refused_opening(till, "void", sale)["code"] == "void_not_allowed"


def test_a_void_after_settlement_is_refused(till: Till) -> None:
    sale = till.card_sale(8_800)
    settle(till)

    problem = refused_opening(till, "void", sale)

    assert problem["code"] == "void_not_allowed"
    assert problem["status"] == 422
    assert till.state(sale)["voided_by"] is None


def test_a_refund_before_settlement_is_refused(till: Till) -> None:
    sale = till.card_sale(8_800)

    problem = refused_opening(till, "refund", sale)

    assert problem["code"] == "refund_not_allowed"
    assert till.state(sale)["credits"] == {}


def test_partial_refunds_after_settlement_are_allowed_until_the_remainder_is_used_up(till: Till) -> None:
    sale = till.card_sale(10_000)
    settle(till)

    first = till.card_sale(3_000, kind="refund", original=sale)
    second = till.card_sale(5_000, kind="refund", original=sale)
    third = till.begin("refund", "card", sale)
    problem = till.append(third, {"type": "AmountEntered", "amount_minor": 2_001, "currency": "CNY"}, expect=422)

    assert (problem["code"], problem["remaining_minor"]) == ("refund_exceeds_remaining", 2_000)
    original = till.state(sale)
    assert original["refundable_minor"] == 2_000
    assert {k: (v["amount_minor"], v["state"]) for k, v in original["credits"].items()} == {
        first.stream_id: (3_000, "applied"), second.stream_id: (5_000, "applied")}
    assert till.state(first)["status"] == till.state(second)["status"] == "completed"
    till.append(third, {"type": "AmountEntered", "amount_minor": 2_000, "currency": "CNY"})


def test_the_last_of_the_remainder_can_be_refunded_and_then_nothing_more(till: Till) -> None:
    sale = till.card_sale(10_000)
    settle(till)
    till.card_sale(10_000, kind="refund", original=sale)

    problem = refused_opening(till, "refund", sale)

    assert problem["code"] == "refund_not_allowed"
    assert till.state(sale)["refundable_minor"] == 0


def test_a_declined_refund_releases_its_hold_on_the_original(till: Till) -> None:
    sale = till.card_sale(10_000)
    settle(till)
    refund = begin_credit(till, "refund", sale, 6_000)
    held = till.state(sale)
    assert held["refundable_minor"] == 4_000
    assert held["credits"][refund.stream_id]["state"] == "reserved"

    till.append(refund, {"type": "Declined", "response_code": "05", "reason": "do not honour"})

    released = till.state(sale)
    assert released["refundable_minor"] == 10_000
    assert released["credits"] == {}
    till.finish(refund)
    assert (till.state(refund)["status"], till.state(refund)["outcome"]) == ("completed", "declined")
    assert till.state(sale)["refundable_minor"] == 10_000
    full = till.card_sale(10_000, kind="refund", original=sale)
    assert till.state(full)["status"] == "completed"


def test_refunds_in_flight_hold_their_amounts_so_together_they_never_exceed_the_sale(till: Till) -> None:
    sale = till.card_sale(10_000)
    settle(till)
    begin_credit(till, "refund", sale, 7_000)

    too_much = till.begin("refund", "card", sale)
    problem = till.append(too_much, {"type": "AmountEntered", "amount_minor": 3_001, "currency": "CNY"}, expect=422)
    assert (problem["code"], problem["remaining_minor"]) == ("refund_exceeds_remaining", 3_000)
    begin_credit(till, "refund", sale, 3_000)

    assert till.state(sale)["refundable_minor"] == 0
    assert refused_opening(till, "refund", sale)["code"] == "refund_not_allowed"
