"""The till session: operators, the unknown-outcome block, batch settlement and closing."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from domain.errors import (
    InvalidInput,
    OperatorAlreadySignedIn,
    OperatorCredentialsInvalid,
    OperatorNotSignedIn,
    TillBlocked,
    TillNotOpen,
    WrongBatch,
)
from domain.till_actions import PASSWORD_VERIFIED
from tests.domain.world import SELF_CHECK, Counter, refused


def in_doubt(counter: Counter) -> UUID:
    """A card sale whose authorization reply never came: OutcomeUnknown."""
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000)
    counter.time_out(sale)
    return sale


# ---- the unknown-outcome block ------------------------------------------------------------------

def test_an_unknown_outcome_blocks_new_card_sales(counter: Counter) -> None:
    sale = in_doubt(counter)
    assert counter.terminal().blocked_by == [sale]
    with refused(counter.ledger, TillBlocked) as error:
        counter.begin(method="card")
    assert error.value.extra["transaction_id"] == str(sale)


def test_an_unknown_outcome_does_not_block_cash_sales(counter: Counter) -> None:
    in_doubt(counter)
    cash = counter.cash_sale(500, 1_000)
    assert counter.txn(cash).status == "completed"


@pytest.mark.parametrize("event_type", ["BatchSettled", "TillClosed"])
def test_an_unknown_outcome_blocks_settling_and_closing(counter: Counter, event_type: str) -> None:
    in_doubt(counter)
    fields = {"batch_no": counter.batch_no} if event_type == "BatchSettled" else {}
    with refused(counter.ledger, TillBlocked):
        counter.till_event(event_type, **fields)
    assert counter.till().is_open


@pytest.mark.parametrize("resolve", ["approve", "decline", "reverse"])
def test_resolving_the_unknown_outcome_unblocks_the_till(counter: Counter, resolve: str) -> None:
    sale = in_doubt(counter)
    getattr(counter, resolve)(sale)
    assert counter.terminal().blocked_by == []
    assert counter.events(counter.terminal_id)[-2:] == ["Blocked", "Unblocked"]
    assert counter.txn(counter.card_sale(2_000)).status == "completed"
    counter.settle()
    assert counter.till().settled_batches == ["000001"]


def test_two_unknown_outcomes_keep_the_till_blocked_until_both_are_resolved(counter: Counter) -> None:
    first = counter.begin()
    second = counter.begin()
    for sale in (first, second):
        counter.send_for_authorization(sale, 1_000)
        counter.time_out(sale)
    counter.reverse(first)
    with refused(counter.ledger, TillBlocked):
        counter.begin()
    counter.approve(second)
    assert counter.terminal().blocked_by == []


# ---- batch settlement --------------------------------------------------------------------------

def test_settling_the_batch_opens_the_next_one(counter: Counter) -> None:
    counter.card_sale(1_000)
    counter.settle()
    assert (counter.till().settled_batches, counter.batch_no) == (["000001"], "000002")
    assert counter.txn(counter.card_sale(1_000)).batch_no == "000002"


@pytest.mark.parametrize("batch_no", ["000002", "000000", "1"])
def test_settling_another_batch_than_the_open_one_is_refused(counter: Counter, batch_no: str) -> None:
    with refused(counter.ledger, WrongBatch):
        counter.till_event("BatchSettled", batch_no=batch_no)


def test_a_transaction_in_another_batch_than_the_open_one_is_refused(counter: Counter) -> None:
    counter.settle()
    with refused(counter.ledger, WrongBatch) as error:
        counter.begin(batch_no="000001")
    assert error.value.extra["open_batch"] == "000002"


# ---- operators ---------------------------------------------------------------------------------

def test_no_transaction_begins_without_an_operator_signed_in(counter: Counter) -> None:
    counter.till_event("OperatorSignedOut", operator_no="01")
    with refused(counter.ledger, OperatorNotSignedIn):
        counter.begin(method="cash")


def test_a_transaction_in_the_name_of_another_operator_is_refused(counter: Counter) -> None:
    with refused(counter.ledger, OperatorNotSignedIn):
        counter.txn_event(uuid4(), "TransactionOpened", operator="02", kind="sale", payment_method="cash",
                          till_session_id=counter.till_id, batch_no="000001", trace_no="000001")
    assert counter.terminal().traces == {}


def test_an_operator_cannot_sign_in_while_another_is_signed_in(counter: Counter) -> None:
    with refused(counter.ledger, OperatorAlreadySignedIn):
        counter.sign_in("02")
    assert counter.till().operator == "01"


def test_an_operator_who_is_not_signed_in_cannot_sign_out(counter: Counter) -> None:
    with refused(counter.ledger, OperatorNotSignedIn):
        counter.till_event("OperatorSignedOut", operator="02", operator_no="02")


def test_the_next_operator_signs_in_after_the_first_signed_out(counter: Counter) -> None:
    counter.till_event("OperatorSignedOut", operator_no="01")
    counter.sign_in("02")
    sale = counter.cash_sale(300)
    assert (counter.till().operator, counter.txn(sale).operator) == ("02", "02")


def test_signing_in_needs_the_password_checked_first(counter: Counter) -> None:
    counter.till_event("OperatorSignedOut", operator_no="01")
    with refused(counter.ledger, OperatorCredentialsInvalid):
        counter.till_event("OperatorSignedIn", operator="02", operator_no="02")
    with refused(counter.ledger, OperatorCredentialsInvalid):
        counter.till_event("OperatorSignedIn", operator="02", operator_no="02", **{PASSWORD_VERIFIED: "yes"})


# ---- opening, counting, closing ----------------------------------------------------------------

@pytest.mark.parametrize("self_check", [
    {k: v for k, v in SELF_CHECK.items() if k != "paper_present"},
    {**SELF_CHECK, "printer_online": "yes"},
    {**SELF_CHECK, "software_version": ""},
    "all good",
])
def test_a_till_opens_only_with_a_complete_self_check(self_check: object) -> None:
    counter = Counter.register()
    counter.till_id = uuid4()
    with refused(counter.ledger, InvalidInput):
        counter.till_event("TillOpened", operator=None, float_minor=50_000, currency="CNY", self_check=self_check)
    assert counter.terminal().till_session_id is None


def test_a_negative_float_is_refused() -> None:
    counter = Counter.register()
    counter.till_id = uuid4()
    with refused(counter.ledger, InvalidInput):
        counter.till_event("TillOpened", operator=None, float_minor=-1, currency="CNY", self_check=SELF_CHECK)


def test_counted_cash_is_recorded_and_a_negative_count_refused(counter: Counter) -> None:
    counter.till_event("CashCounted", counted_minor=51_250, note="one 50-fen coin short")
    with refused(counter.ledger, InvalidInput):
        counter.till_event("CashCounted", counted_minor=-1, note="")
    assert counter.till().counted_minor == 51_250


@pytest.mark.parametrize(("event_type", "fields"), [
    ("OperatorSignedIn", {"operator_no": "02", PASSWORD_VERIFIED: True}),
    ("CashCounted", {"counted_minor": 100, "note": ""}),
    ("BatchSettled", {"batch_no": "000001"}),
    ("TillClosed", {}),
])
def test_a_closed_till_takes_no_further_event(counter: Counter, event_type: str, fields: dict[str, object]) -> None:
    counter.till_event("TillClosed")
    operator = fields.get("operator_no", "01")
    with refused(counter.ledger, TillNotOpen):
        counter.till_event(event_type, operator=operator, **fields)


def test_no_transaction_begins_on_a_closed_till(counter: Counter) -> None:
    counter.till_event("TillClosed")
    with refused(counter.ledger, TillNotOpen):
        counter.begin(method="cash")
