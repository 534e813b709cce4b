"""A card sale at the counter: given its events so far, when the terminal appends one more, then the
event is recorded or a named rule is broken (and nothing at all is recorded)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from domain.errors import (
    AmountOutOfRange,
    CurrencyMismatch,
    FallbackNotAllowed,
    InvalidInput,
    OutOfSequence,
    PaymentMethodNotAccepted,
    SignatureRequired,
)
from tests.domain.world import Counter, card, receipt_hash, refused

STEPS: dict[str, dict[str, Any]] = {
    "PinVerified": {"method": "online"},
    "PinFailed": {"tries_left": 2},
    "PinBypassed": {"reason": "no PIN"},
    "CvmNotRequired": {},
    "AuthorizationRequested": {"stan": "000042"},
    "Authorized": {"auth_code": "A1B2C3", "rrn": "123456789012", "response_code": "00"},
    "Declined": {"response_code": "51", "reason": "insufficient funds"},
    "OutcomeUnknown": {"reason": "no reply within 60 s"},
    "Reversed": {"reason_code": "4021", "response_code": "00"},
}


def step(counter: Counter, txn: UUID, event_type: str) -> None:
    counter.txn_event(txn, event_type, **STEPS[event_type])


# ---- amount ------------------------------------------------------------------------------------

@pytest.mark.parametrize("amount", [99, 500_001])
def test_an_amount_outside_the_terminals_limits_is_refused(amount: int) -> None:
    counter = Counter.at_open_till(min_amount_minor=100, max_amount_minor=500_000)
    sale = counter.begin()
    with refused(counter.ledger, AmountOutOfRange) as error:
        counter.txn_event(sale, "AmountEntered", amount_minor=amount, currency="CNY")
    assert (error.value.extra["minimum"], error.value.extra["maximum"]) == (100, 500_000)


@pytest.mark.parametrize("amount", [100, 500_000])
def test_an_amount_on_the_terminals_limits_is_accepted(amount: int) -> None:
    counter = Counter.at_open_till(min_amount_minor=100, max_amount_minor=500_000)
    sale = counter.begin()
    counter.txn_event(sale, "AmountEntered", amount_minor=amount, currency="CNY")
    assert counter.txn(sale).amount_minor == amount


def test_a_zero_amount_is_refused_even_when_the_minimum_is_zero() -> None:
    counter = Counter.at_open_till(min_amount_minor=0)
    sale = counter.begin()
    with refused(counter.ledger, AmountOutOfRange):
        counter.txn_event(sale, "AmountEntered", amount_minor=0, currency="CNY")


def test_an_amount_in_another_currency_than_the_terminals_is_refused(counter: Counter) -> None:
    sale = counter.begin()
    with refused(counter.ledger, CurrencyMismatch):
        counter.txn_event(sale, "AmountEntered", amount_minor=1_000, currency="USD")


def test_the_amount_cannot_change_after_the_customer_confirmed_it(counter: Counter) -> None:
    sale = counter.begin()
    counter.enter(sale, 1_000)
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "AmountEntered", amount_minor=2_000, currency="CNY")
    assert counter.txn(sale).amount_minor == 1_000


def test_the_customer_confirms_only_an_entered_amount(counter: Counter) -> None:
    sale = counter.begin()
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "AmountConfirmed")


def test_a_terminal_that_takes_only_cash_refuses_a_card_sale() -> None:
    counter = Counter.at_open_till(accepted_methods=["cash"])
    with refused(counter.ledger, PaymentMethodNotAccepted):
        counter.begin(method="card")
    assert counter.terminal().traces == {}


# ---- card and cardholder verification ----------------------------------------------------------

@pytest.mark.parametrize("cardholder_step", ["PinVerified", "PinFailed", "PinBypassed", "CvmNotRequired"])
def test_the_card_comes_before_the_pin(counter: Counter, cardholder_step: str) -> None:
    sale = counter.begin()
    counter.enter(sale, 1_000)
    with refused(counter.ledger, OutOfSequence):
        step(counter, sale, cardholder_step)


def test_a_second_card_is_refused_once_one_was_read(counter: Counter) -> None:
    sale = counter.begin()
    counter.txn_event(sale, "CardPresented", **card("1234"))
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "CardPresented", **card("9999"))
    assert counter.txn(sale).card["masked_pan"].endswith("1234")  # type: ignore[index]


def test_a_card_presented_with_a_full_card_number_as_masked_pan_is_refused(counter: Counter) -> None:
    sale = counter.begin()
    with refused(counter.ledger, InvalidInput):
        counter.txn_event(sale, "CardPresented", **{**card(), "masked_pan": "6222021234567894"})


@pytest.mark.parametrize("missing", ["AmountConfirmed", "CardPresented", "PinVerified"])
def test_no_authorization_without_a_confirmed_amount_a_card_and_a_cardholder_step(
        counter: Counter, missing: str) -> None:
    sale = counter.begin()
    counter.txn_event(sale, "AmountEntered", amount_minor=1_000, currency="CNY")
    for event_type, fields in [("AmountConfirmed", {}), ("CardPresented", card()), ("PinVerified", {"method": "online"})]:
        if event_type == missing:
            break
        counter.txn_event(sale, event_type, **fields)
    with refused(counter.ledger, OutOfSequence):
        step(counter, sale, "AuthorizationRequested")


def test_no_cardholder_verification_is_allowed_up_to_the_no_cvm_limit() -> None:
    counter = Counter.at_open_till(no_cvm_limit_minor=100_000)
    sale = counter.begin()
    counter.enter(sale, 100_000)
    counter.txn_event(sale, "CardPresented", **card())
    counter.txn_event(sale, "CvmNotRequired")
    assert counter.txn(sale).cvm == "no_cvm"
    assert list(counter.ledger.events.get(sale))[-1].no_cvm_limit_minor == 100_000


def test_no_cardholder_verification_is_refused_above_the_no_cvm_limit() -> None:
    counter = Counter.at_open_till(no_cvm_limit_minor=100_000)
    sale = counter.begin()
    counter.enter(sale, 100_001)
    counter.txn_event(sale, "CardPresented", **card())
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "CvmNotRequired")


def test_a_wrong_pin_with_tries_left_lets_the_cardholder_try_again(counter: Counter) -> None:
    sale = counter.begin()
    counter.enter(sale, 1_000)
    counter.txn_event(sale, "CardPresented", **card())
    counter.txn_event(sale, "PinFailed", tries_left=2)
    counter.txn_event(sale, "PinVerified", method="offline")
    assert counter.txn(sale).cvm == "pin_offline"


@pytest.mark.parametrize("next_step", ["PinVerified", "PinFailed", "PinBypassed", "CvmNotRequired",
                                       "AuthorizationRequested"])
def test_a_blocked_pin_leaves_only_cancelling(counter: Counter, next_step: str) -> None:
    sale = counter.begin()
    counter.enter(sale, 1_000)
    counter.txn_event(sale, "CardPresented", **card())
    counter.txn_event(sale, "PinFailed", tries_left=0)
    with refused(counter.ledger, OutOfSequence):
        step(counter, sale, next_step)
    counter.txn_event(sale, "TransactionCancelled", reason="PIN blocked")
    assert counter.txn(sale).status == "cancelled"


@pytest.mark.parametrize("entry_mode", ["chip", "contactless"])
def test_fallback_swipe_needs_three_failed_chip_reads_first(counter: Counter, entry_mode: str) -> None:
    sale = counter.begin()
    for _ in range(2):
        counter.txn_event(sale, "CardReadFailed", entry_mode=entry_mode, reason="chip error")
    with refused(counter.ledger, FallbackNotAllowed):
        counter.txn_event(sale, "CardPresented", **card(entry_mode="fallback_swipe"))
    counter.txn_event(sale, "CardReadFailed", entry_mode=entry_mode, reason="chip error")
    counter.txn_event(sale, "CardPresented", **card(entry_mode="fallback_swipe"))
    assert counter.txn(sale).card["entry_mode"] == "fallback_swipe"  # type: ignore[index]


def test_failed_swipes_do_not_count_towards_a_fallback(counter: Counter) -> None:
    sale = counter.begin()
    for _ in range(3):
        counter.txn_event(sale, "CardReadFailed", entry_mode="swipe", reason="bad stripe")
    with refused(counter.ledger, FallbackNotAllowed):
        counter.txn_event(sale, "CardPresented", **card(entry_mode="fallback_swipe"))


def test_fallback_swipe_is_refused_where_the_terminal_forbids_it() -> None:
    counter = Counter.at_open_till(fallback_allowed=False)
    sale = counter.begin()
    for _ in range(3):
        counter.txn_event(sale, "CardReadFailed", entry_mode="chip", reason="chip error")
    with refused(counter.ledger, FallbackNotAllowed):
        counter.txn_event(sale, "CardPresented", **card(entry_mode="fallback_swipe"))


# ---- authorization outcome ---------------------------------------------------------------------

@pytest.mark.parametrize("outcome", ["Authorized", "Declined", "OutcomeUnknown", "Reversed"])
def test_no_outcome_before_authorization_was_requested(counter: Counter, outcome: str) -> None:
    sale = counter.begin()
    counter.enter(sale, 1_000)
    counter.txn_event(sale, "CardPresented", **card())
    step(counter, sale, "PinVerified")
    with refused(counter.ledger, OutOfSequence):
        step(counter, sale, outcome)


def test_an_unknown_outcome_is_resolved_by_a_late_approval(counter: Counter) -> None:
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000)
    counter.time_out(sale)
    counter.approve(sale)
    counter.finish(sale)
    assert counter.events(sale)[-5:] == ["OutcomeUnknown", "Authorized", "ReceiptPrinted", "ReceiptPrinted",
                                         "TransactionCompleted"]
    assert (counter.txn(sale).outcome, counter.txn(sale).status) == ("authorized", "completed")


@pytest.mark.parametrize("outcome", ["pending", "unknown"])
def test_a_card_sale_does_not_complete_before_its_outcome_is_known(counter: Counter, outcome: str) -> None:
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000)
    if outcome == "unknown":
        counter.time_out(sale)
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "TransactionCompleted")


def test_a_declined_card_sale_completes_as_declined(counter: Counter) -> None:
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000)
    counter.decline(sale)
    counter.finish(sale)
    assert (counter.txn(sale).outcome, counter.txn(sale).status) == ("declined", "completed")


# ---- signature ---------------------------------------------------------------------------------

def test_a_bypassed_pin_asks_for_a_signature_before_completion(counter: Counter) -> None:
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000, cvm="signature")
    counter.approve(sale)
    counter.print_receipts(sale)
    with refused(counter.ledger, SignatureRequired):
        counter.txn_event(sale, "TransactionCompleted")


@pytest.mark.parametrize(("event_type", "fields", "signature"), [
    ("SignatureCaptured", {"image_sha256": "cd" * 32, "image_ref": "sig/7.png"}, "captured"),
    ("SignatureWaived", {"reason": "小额免签"}, "waived"),
])
def test_a_captured_or_waived_signature_lets_a_bypassed_pin_sale_complete(
        counter: Counter, event_type: str, fields: dict[str, Any], signature: str) -> None:
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000, cvm="signature")
    counter.approve(sale)
    counter.txn_event(sale, event_type, **fields)
    counter.txn_event(sale, "TransactionCompleted")
    assert (counter.txn(sale).signature, counter.txn(sale).status) == (signature, "completed")


def test_a_pin_verified_sale_completes_without_a_signature(counter: Counter) -> None:
    sale = counter.card_sale(1_000, cvm="pin")
    assert counter.txn(sale).signature is None
    assert counter.events(sale)[-1] == "TransactionCompleted"


def test_a_signature_is_taken_only_for_an_authorized_transaction(counter: Counter) -> None:
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000, cvm="signature")
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "SignatureWaived", reason="too early")


# ---- cancelling --------------------------------------------------------------------------------

@pytest.mark.parametrize("outcome", ["pending", "unknown", "authorized"])
def test_a_transaction_cannot_be_cancelled_while_its_authorization_is_open_or_approved(
        counter: Counter, outcome: str) -> None:
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000)
    if outcome == "unknown":
        counter.time_out(sale)
    elif outcome == "authorized":
        counter.approve(sale)
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "TransactionCancelled", reason="customer left")


@pytest.mark.parametrize("resolve", ["declined", "reversed"])
def test_a_declined_or_reversed_transaction_can_be_cancelled(counter: Counter, resolve: str) -> None:
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000)
    if resolve == "declined":
        counter.decline(sale)
    else:
        counter.time_out(sale)
        counter.reverse(sale)
    counter.txn_event(sale, "TransactionCancelled", reason="customer pays cash")
    assert counter.txn(sale).status == "cancelled"


def test_a_cancelled_transaction_takes_no_further_event(counter: Counter) -> None:
    sale = counter.begin()
    counter.txn_event(sale, "TransactionCancelled", reason="wrong till")
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "AmountEntered", amount_minor=1_000, currency="CNY")
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "ReceiptPrinted", copy="merchant", printer="p", reprint_no=0,
                          receipt_sha256=receipt_hash(sale, "merchant"))
