"""Void (撤销): same terminal, same open batch, full amount, once. Refund (退货): a settled sale, partial
and repeated, never above what remains, counting refunds still in flight, on the original card."""

from __future__ import annotations

from uuid import UUID

import pytest

from domain.errors import InvalidInput, RefundExceedsRemaining, RefundNotAllowed, VoidNotAllowed
from tests.domain.world import MERCHANT_NO, Counter, card, refused


def credits_on(counter: Counter, sale: UUID) -> dict[str, tuple[str, int]]:
    """What the original sale holds for its voids and refunds: id -> (reserved|applied, amount)."""
    return {k: (c["state"], c["amount_minor"]) for k, c in counter.txn(sale).credits.items()}


def settled_sale(counter: Counter, amount_minor: int = 10_000) -> UUID:
    sale = counter.card_sale(amount_minor)
    counter.settle()
    return sale


# ---- void --------------------------------------------------------------------------------------

def test_a_void_in_the_same_open_batch_voids_the_whole_sale(counter: Counter) -> None:
    sale = counter.card_sale(10_000)
    void = counter.void(sale)
    assert counter.txn(sale).voided_by == void
    assert counter.txn(sale).refundable_minor == 0
    assert counter.events(sale)[-2:] == ["CreditReserved", "TransactionVoided"]
    assert counter.verifies(sale) and counter.verifies(void)


def test_a_cash_sale_is_voided_in_cash(counter: Counter) -> None:
    sale = counter.cash_sale(2_500, 3_000)
    void = counter.void(sale)
    assert counter.txn(sale).voided_by == void


@pytest.mark.parametrize("amount", [9_999, 10_001, 1])
def test_a_void_is_for_the_full_amount_only(counter: Counter, amount: int) -> None:
    sale = counter.card_sale(10_000)
    void = counter.begin("void", "card", sale)
    with refused(counter.ledger, VoidNotAllowed) as error:
        counter.txn_event(void, "AmountEntered", amount_minor=amount, currency="CNY")
    assert error.value.extra["original_amount_minor"] == 10_000


def test_a_void_on_another_terminal_is_refused(counter: Counter) -> None:
    sale = counter.card_sale(10_000)
    other = counter.beside("10000002")
    with refused(counter.ledger, VoidNotAllowed):
        other.begin("void", "card", sale)


def test_after_settlement_a_void_is_refused_and_a_refund_allowed(counter: Counter) -> None:
    sale = settled_sale(counter)
    with refused(counter.ledger, VoidNotAllowed):
        counter.begin("void", "card", sale)
    refund = counter.refund(sale, 10_000)
    assert credits_on(counter, sale) == {str(refund): ("applied", 10_000)}


@pytest.mark.parametrize("method", ["card", "cash"])
def test_a_void_in_flight_when_the_batch_is_settled_cannot_void_the_sale(counter: Counter, method: str) -> None:
    sale = counter.card_sale(10_000) if method == "card" else counter.cash_sale(10_000)
    void = counter.begin("void", method, sale)
    counter.settle()
    with pytest.raises(VoidNotAllowed):
        if method == "card":
            counter.send_for_authorization(void, 10_000)
            counter.approve(void)
        else:
            counter.enter(void, 10_000)
        counter.txn_event(void, "TransactionCompleted")
    assert counter.txn(sale).voided_by is None
    assert "TransactionVoided" not in counter.events(sale)


def test_a_void_approved_by_the_host_after_settlement_is_reversed_and_releases_the_sale(counter: Counter) -> None:
    sale = counter.card_sale(10_000)
    void = counter.begin("void", "card", sale)
    counter.send_for_authorization(void, 10_000)
    counter.settle()
    counter.approve(void)
    with refused(counter.ledger, VoidNotAllowed):
        counter.txn_event(void, "TransactionCompleted")
    counter.reverse(void)
    assert credits_on(counter, sale) == {}
    assert counter.txn(sale).voided_by is None


def test_a_sale_is_voided_only_once(counter: Counter) -> None:
    sale = counter.card_sale(10_000)
    counter.void(sale)
    with refused(counter.ledger, VoidNotAllowed):
        counter.begin("void", "card", sale)


def test_a_second_void_is_refused_while_the_first_holds_the_sale(counter: Counter) -> None:
    sale = counter.card_sale(10_000)
    first, second = counter.begin("void", "card", sale), counter.begin("void", "card", sale)
    counter.send_for_authorization(first, 10_000)
    counter.enter(second, 10_000)
    counter.present_card(second)
    with refused(counter.ledger, VoidNotAllowed):
        counter.request_authorization(second)
    with refused(counter.ledger, VoidNotAllowed):
        counter.begin("void", "card", sale)
    assert credits_on(counter, sale) == {str(first): ("reserved", 10_000)}


def test_a_declined_void_releases_the_sale_for_another_void(counter: Counter) -> None:
    sale = counter.card_sale(10_000)
    declined = counter.begin("void", "card", sale)
    counter.send_for_authorization(declined, 10_000)
    counter.decline(declined)
    counter.finish(declined)
    assert credits_on(counter, sale) == {}
    void = counter.void(sale)
    assert counter.txn(sale).voided_by == void


@pytest.mark.parametrize("state", ["open", "declined", "cancelled"])
def test_only_a_completed_approved_sale_can_be_voided(counter: Counter, state: str) -> None:
    sale = counter.begin()
    if state == "declined":
        counter.send_for_authorization(sale, 1_000)
        counter.decline(sale)
        counter.finish(sale)
    elif state == "cancelled":
        counter.txn_event(sale, "TransactionCancelled", reason="customer left")
    with refused(counter.ledger, VoidNotAllowed):
        counter.begin("void", "card", sale)


def test_a_void_is_paid_back_the_way_the_sale_was_paid(counter: Counter) -> None:
    sale = counter.card_sale(10_000)
    with refused(counter.ledger, VoidNotAllowed):
        counter.begin("void", "cash", sale)


def test_a_void_must_use_the_card_of_the_sale(counter: Counter) -> None:
    sale = counter.card_sale(10_000, last4="1234")
    void = counter.begin("void", "card", sale)
    counter.enter(void, 10_000)
    with refused(counter.ledger, InvalidInput) as error:
        counter.txn_event(void, "CardPresented", **card("9999"))
    assert error.value.extra["field"] == "pan_token"


# ---- refund ------------------------------------------------------------------------------------

def test_a_sale_is_not_refunded_before_its_batch_is_settled(counter: Counter) -> None:
    sale = counter.card_sale(10_000)
    with refused(counter.ledger, RefundNotAllowed):
        counter.begin("refund", "card", sale)


def test_partial_refunds_are_allowed_until_nothing_remains(counter: Counter) -> None:
    sale = settled_sale(counter)
    counter.refund(sale, 3_000)
    counter.refund(sale, 7_000)
    assert counter.txn(sale).refundable_minor == 0
    assert counter.events(sale).count("Refunded") == 2
    with refused(counter.ledger, RefundNotAllowed):
        counter.begin("refund", "card", sale)


def test_a_refund_above_what_remains_is_refused(counter: Counter) -> None:
    sale = settled_sale(counter)
    counter.refund(sale, 6_000)
    refund = counter.begin("refund", "card", sale)
    with refused(counter.ledger, RefundExceedsRemaining) as error:
        counter.txn_event(refund, "AmountEntered", amount_minor=4_001, currency="CNY")
    assert error.value.extra["remaining_minor"] == 4_000


def test_refunds_in_flight_count_against_what_remains(counter: Counter) -> None:
    sale = settled_sale(counter)
    first, second = counter.begin("refund", "card", sale), counter.begin("refund", "card", sale)
    for refund in (first, second):  # each fits on its own, not both together
        counter.enter(refund, 6_000)
        counter.present_card(refund)
    counter.request_authorization(first)
    with refused(counter.ledger, RefundExceedsRemaining):
        counter.request_authorization(second)
    assert credits_on(counter, sale) == {str(first): ("reserved", 6_000)}
    assert counter.txn(sale).refundable_minor == 4_000


def test_a_refund_whose_outcome_is_unknown_keeps_its_reservation(counter: Counter) -> None:
    sale = settled_sale(counter)
    refund = counter.begin("refund", "card", sale)
    counter.send_for_authorization(refund, 6_000)
    counter.time_out(refund)
    assert counter.txn(sale).refundable_minor == 4_000


@pytest.mark.parametrize("resolve", ["decline", "time out and reverse"])
def test_a_declined_or_reversed_refund_releases_its_reservation(counter: Counter, resolve: str) -> None:
    sale = settled_sale(counter)
    refund = counter.begin("refund", "card", sale)
    counter.send_for_authorization(refund, 6_000)
    if resolve == "decline":
        counter.decline(refund)
    else:
        counter.time_out(refund)
        counter.reverse(refund)
    assert credits_on(counter, sale) == {}
    assert counter.events(sale)[-1] == "CreditReleased"
    counter.refund(sale, 10_000)
    assert counter.txn(sale).refundable_minor == 0


def test_a_refund_must_use_the_card_of_the_sale(counter: Counter) -> None:
    sale = settled_sale(counter)
    refund = counter.begin("refund", "card", sale)
    counter.enter(refund, 1_000)
    with refused(counter.ledger, InvalidInput) as error:
        counter.txn_event(refund, "CardPresented", **card("9999"))
    assert error.value.extra["field"] == "pan_token"


def test_a_voided_sale_cannot_be_refunded(counter: Counter) -> None:
    sale = counter.card_sale(10_000)
    counter.void(sale)
    counter.settle()
    with refused(counter.ledger, RefundNotAllowed):
        counter.begin("refund", "card", sale)


@pytest.mark.parametrize("state", ["open", "declined", "cancelled"])
def test_only_a_completed_approved_sale_can_be_refunded(counter: Counter, state: str) -> None:
    sale = counter.begin()
    if state == "declined":
        counter.send_for_authorization(sale, 1_000)
        counter.decline(sale)
        counter.finish(sale)
    elif state == "cancelled":
        counter.txn_event(sale, "TransactionCancelled", reason="customer left")
    counter.settle()
    with refused(counter.ledger, RefundNotAllowed):
        counter.begin("refund", "card", sale)


def test_a_refund_cannot_itself_be_refunded(counter: Counter) -> None:
    refund = counter.refund(settled_sale(counter), 1_000)
    counter.settle()
    with refused(counter.ledger, RefundNotAllowed):
        counter.begin("refund", "card", refund)


def test_a_refund_may_be_made_at_another_terminal_of_the_same_merchant(counter: Counter) -> None:
    sale = settled_sale(counter)
    other = counter.beside("10000002")
    refund = other.refund(sale, 2_500)
    assert credits_on(counter, sale) == {str(refund): ("applied", 2_500)}


def test_a_refund_at_another_merchant_is_refused(counter: Counter) -> None:
    sale = settled_sale(counter)
    elsewhere = counter.beside("20000001", merchant_no=MERCHANT_NO[:-1] + "9")
    with refused(counter.ledger, RefundNotAllowed):
        elsewhere.begin("refund", "card", sale)


def test_a_cash_sale_is_refunded_in_cash_in_parts(counter: Counter) -> None:
    sale = counter.cash_sale(5_000, 5_000)
    counter.settle()
    counter.refund(sale, 2_000)
    refund = counter.begin("refund", "cash", sale)
    with refused(counter.ledger, RefundExceedsRemaining):
        counter.txn_event(refund, "AmountEntered", amount_minor=3_001, currency="CNY")
    assert counter.txn(sale).refundable_minor == 3_000


def test_two_cash_refunds_entered_together_cannot_both_complete_beyond_the_sale(counter: Counter) -> None:
    sale = counter.cash_sale(5_000, 5_000)
    counter.settle()
    first, second = counter.begin("refund", "cash", sale), counter.begin("refund", "cash", sale)
    counter.enter(first, 3_000)
    counter.enter(second, 3_000)
    counter.txn_event(first, "TransactionCompleted")
    with refused(counter.ledger, RefundExceedsRemaining):
        counter.txn_event(second, "TransactionCompleted")
    assert credits_on(counter, sale) == {str(first): ("applied", 3_000)}
