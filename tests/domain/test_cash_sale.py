"""A cash sale: amount confirmed, cash tendered (covering the amount), exact change, completed."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from domain.errors import InvalidInput, OutOfSequence, PaymentMethodNotAccepted
from tests.domain.world import Counter, card, receipt_hash, refused


def confirmed_cash_sale(counter: Counter, amount_minor: int = 1_250) -> UUID:
    sale = counter.begin(method="cash")
    counter.enter(sale, amount_minor)
    return sale


def test_a_cash_sale_with_change_completes_and_records_the_change(counter: Counter) -> None:
    sale = counter.cash_sale(1_250, 2_000)
    txn = counter.txn(sale)
    assert (txn.cash_tendered_minor, txn.change_given_minor, txn.status) == (2_000, 750, "completed")
    assert counter.events(sale)[-3:] == ["CashTendered", "ChangeGiven", "TransactionCompleted"]


def test_exact_cash_completes_without_change(counter: Counter) -> None:
    sale = counter.cash_sale(1_250, 1_250)
    assert counter.txn(sale).change_given_minor is None
    assert counter.txn(sale).status == "completed"


def test_cash_that_does_not_cover_the_amount_is_refused(counter: Counter) -> None:
    sale = confirmed_cash_sale(counter)
    with refused(counter.ledger, InvalidInput):
        counter.txn_event(sale, "CashTendered", amount_minor=1_249)


@pytest.mark.parametrize("change", [0, 749, 751])
def test_change_must_be_exactly_what_is_due(counter: Counter, change: int) -> None:
    sale = confirmed_cash_sale(counter)
    counter.txn_event(sale, "CashTendered", amount_minor=2_000)
    with refused(counter.ledger, InvalidInput) as error:
        counter.txn_event(sale, "ChangeGiven", amount_minor=change)
    assert error.value.extra["change_due_minor"] == 750


def test_cash_is_tendered_only_after_the_customer_confirmed_the_amount(counter: Counter) -> None:
    sale = counter.begin(method="cash")
    counter.txn_event(sale, "AmountEntered", amount_minor=1_000, currency="CNY")
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "CashTendered", amount_minor=1_000)


def test_cash_is_tendered_once(counter: Counter) -> None:
    sale = confirmed_cash_sale(counter)
    counter.txn_event(sale, "CashTendered", amount_minor=2_000)
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "CashTendered", amount_minor=5_000)


def test_change_comes_after_the_cash(counter: Counter) -> None:
    sale = confirmed_cash_sale(counter)
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "ChangeGiven", amount_minor=0)


def test_a_cash_sale_does_not_complete_before_the_cash_is_tendered(counter: Counter) -> None:
    sale = confirmed_cash_sale(counter)
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "TransactionCompleted")


def test_a_cash_sale_does_not_complete_before_the_change_is_given(counter: Counter) -> None:
    sale = confirmed_cash_sale(counter)
    counter.txn_event(sale, "CashTendered", amount_minor=2_000)
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "TransactionCompleted")


def test_a_cash_receipt_prints_once_the_cash_is_tendered(counter: Counter) -> None:
    sale = confirmed_cash_sale(counter)
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "ReceiptPrinted", copy="customer", printer="p", reprint_no=0,
                          receipt_sha256=receipt_hash(sale, "customer"))
    counter.txn_event(sale, "CashTendered", amount_minor=1_250)
    counter.print_receipts(sale)
    assert counter.txn(sale).prints == {"merchant": 1, "customer": 1}


@pytest.mark.parametrize(("event_type", "fields"), [
    ("CardPresented", card()),
    ("CardReadFailed", {"entry_mode": "chip", "reason": "x"}),
    ("AuthorizationRequested", {"stan": "000001"}),
])
def test_card_steps_are_refused_in_a_cash_sale(counter: Counter, event_type: str, fields: dict[str, Any]) -> None:
    sale = confirmed_cash_sale(counter)
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, event_type, **fields)


def test_cash_is_not_tendered_in_a_card_sale(counter: Counter) -> None:
    sale = counter.begin(method="card")
    counter.enter(sale, 1_000)
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "CashTendered", amount_minor=1_000)


def test_a_card_only_terminal_refuses_a_cash_sale() -> None:
    counter = Counter.at_open_till(accepted_methods=["card"])
    with refused(counter.ledger, PaymentMethodNotAccepted):
        counter.begin(method="cash")
