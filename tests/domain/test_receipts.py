"""Receipts print only after an outcome (never while it is unknown), numbered per copy."""

from __future__ import annotations

from uuid import UUID

import pytest

from domain.errors import InvalidInput, OutOfSequence
from tests.domain.world import Counter, receipt_hash, refused


def print_copy(counter: Counter, txn: UUID, copy: str = "merchant", reprint_no: int = 0) -> None:
    counter.txn_event(txn, "ReceiptPrinted", copy=copy, printer="escpos-test", reprint_no=reprint_no,
                      receipt_sha256=receipt_hash(txn, copy, reprint_no))


@pytest.mark.parametrize("stage", ["amount confirmed", "pending", "unknown"])
def test_no_receipt_prints_before_the_outcome_is_known(counter: Counter, stage: str) -> None:
    sale = counter.begin()
    if stage == "amount confirmed":
        counter.enter(sale, 1_000)
    else:
        counter.send_for_authorization(sale, 1_000)
    if stage == "unknown":
        counter.time_out(sale)
    with refused(counter.ledger, OutOfSequence):
        print_copy(counter, sale)
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "PrintFailed", copy="merchant", printer="p", reprint_no=0, reason="x")


@pytest.mark.parametrize("resolve", ["approve", "decline"])
def test_a_receipt_prints_once_the_outcome_is_known(counter: Counter, resolve: str) -> None:
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000)
    getattr(counter, resolve)(sale)
    print_copy(counter, sale, "customer")
    assert counter.txn(sale).prints == {"merchant": 0, "customer": 1}


def test_each_copy_is_numbered_from_zero_and_a_reprint_takes_the_next_number(counter: Counter) -> None:
    sale = counter.card_sale(1_000)
    print_copy(counter, sale, "customer", reprint_no=1)
    print_copy(counter, sale, "customer", reprint_no=2)
    assert counter.txn(sale).prints == {"merchant": 1, "customer": 3}


@pytest.mark.parametrize("reprint_no", [0, 2, -1])
def test_a_reprint_with_the_wrong_number_is_refused_naming_the_expected_one(counter: Counter, reprint_no: int) -> None:
    sale = counter.card_sale(1_000)
    with refused(counter.ledger, InvalidInput) as error:
        print_copy(counter, sale, "merchant", reprint_no=reprint_no)
    assert error.value.extra["expected_reprint_no"] == 1


def test_a_failed_print_does_not_use_up_a_number(counter: Counter) -> None:
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000)
    counter.approve(sale)
    counter.txn_event(sale, "PrintFailed", copy="merchant", printer="p", reprint_no=0, reason="paper out")
    print_copy(counter, sale, "merchant", reprint_no=0)
    assert counter.txn(sale).prints["merchant"] == 1


def test_a_copy_is_either_merchant_or_customer(counter: Counter) -> None:
    sale = counter.card_sale(1_000)
    with refused(counter.ledger, InvalidInput):
        print_copy(counter, sale, "bank", reprint_no=0)
