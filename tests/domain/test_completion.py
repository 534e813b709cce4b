"""After completion nothing more happens to a transaction except reprints (and, on an original sale,
the bookkeeping of its voids and refunds, see test_void_and_refund.py)."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import OutOfSequence
from tests.domain.world import Counter, card, receipt_hash, refused

AFTER_COMPLETION: list[tuple[str, dict[str, Any]]] = [
    ("ItemScanned", {"barcode": "6901234567892", "name": "tea", "quantity": 1, "unit_price_minor": 100}),
    ("AmountEntered", {"amount_minor": 1_000, "currency": "CNY"}),
    ("AmountConfirmed", {}),
    ("CardPresented", card()),
    ("CardReadFailed", {"entry_mode": "chip", "reason": "chip error"}),
    ("PinVerified", {"method": "online"}),
    ("PinFailed", {"tries_left": 2}),
    ("PinBypassed", {"reason": "no PIN"}),
    ("CvmNotRequired", {}),
    ("AuthorizationRequested", {"stan": "000099"}),
    ("Authorized", {"auth_code": "A1B2C3", "rrn": "123456789012", "response_code": "00"}),
    ("Declined", {"response_code": "05", "reason": "do not honour"}),
    ("OutcomeUnknown", {"reason": "timeout"}),
    ("Reversed", {"reason_code": "4021", "response_code": "00"}),
    ("SignatureCaptured", {"image_sha256": "ab" * 32, "image_ref": "sig/1.png"}),
    ("SignatureWaived", {"reason": "late"}),
    ("TransactionCompleted", {}),
    ("TransactionCancelled", {"reason": "changed mind"}),
    ("CashTendered", {"amount_minor": 1_000}),
    ("ChangeGiven", {"amount_minor": 0}),
]


@pytest.mark.parametrize(("event_type", "fields"), AFTER_COMPLETION, ids=[e for e, _ in AFTER_COMPLETION])
def test_a_completed_card_sale_takes_nothing_but_reprints(
        counter: Counter, event_type: str, fields: dict[str, Any]) -> None:
    sale = counter.card_sale(1_000)
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, event_type, **fields)
    counter.txn_event(sale, "ReceiptPrinted", copy="merchant", printer="p", reprint_no=1,
                      receipt_sha256=receipt_hash(sale, "merchant", 1))
    assert counter.events(sale)[-2:] == ["TransactionCompleted", "ReceiptPrinted"]


@pytest.mark.parametrize(("event_type", "fields"), AFTER_COMPLETION, ids=[e for e, _ in AFTER_COMPLETION])
def test_a_completed_cash_sale_takes_nothing_but_reprints(
        counter: Counter, event_type: str, fields: dict[str, Any]) -> None:
    sale = counter.cash_sale(1_000, 2_000)
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, event_type, **fields)
    assert counter.txn(sale).status == "completed"
