"""Terminal registration and parameters; one open till per terminal; streams belong to their terminal."""

from __future__ import annotations

from uuid import uuid4

import pytest

from adapters.group_commit import run_alone
from domain.append import AppendRequest
from domain.errors import (
    AlreadyExists,
    AmountOutOfRange,
    DuplicateTrace,
    Forbidden,
    InvalidInput,
    TillAlreadyOpen,
)
from domain.ledger import Ledger
from domain.stamp import Stamp
from domain.terminal import terminal_id_for
from tests.domain.world import MERCHANT_NO, SELF_CHECK, Counter, new_ledger, refused


def test_a_terminal_cannot_open_a_second_till(counter: Counter) -> None:
    first = counter.till_id
    with refused(counter.ledger, TillAlreadyOpen):
        counter.open_till()
    assert counter.terminal().till_session_id == first


def test_a_terminal_opens_a_new_till_after_closing_the_last(counter: Counter) -> None:
    first = counter.till_id
    counter.till_event("TillClosed")
    counter.open_till()
    assert counter.terminal().till_session_id == counter.till_id != first


def test_registering_the_same_terminal_twice_is_refused(counter: Counter) -> None:
    with refused(counter.ledger, AlreadyExists):
        Counter.register(counter.ledger, counter.clock)
    assert counter.terminal_id == terminal_id_for(MERCHANT_NO, "10000001")


@pytest.mark.parametrize(("merchant_no", "terminal_no", "parameters"), [
    ("89831004899000", "10000001", {}),                     # merchant number is 15 digits
    (MERCHANT_NO, "1000001", {}),                           # terminal number is 8 digits
    (MERCHANT_NO, "10000001", {"min_amount_minor": 500, "max_amount_minor": 100}),
    (MERCHANT_NO, "10000001", {"currency": "yuan"}),
    (MERCHANT_NO, "10000001", {"timezone": "China/Beijing"}),
    (MERCHANT_NO, "10000001", {"accepted_methods": []}),
    (MERCHANT_NO, "10000001", {"accepted_methods": ["card", "cheque"]}),
    (MERCHANT_NO, "10000001", {"fee_rates_ppm": {"unionpay": 200_000}}),
    (MERCHANT_NO, "10000001", {"no_cvm_limit_minor": -1}),
    (MERCHANT_NO, "10000001", {"fallback_allowed": "no"}),
])
def test_a_terminal_with_malformed_parameters_is_not_registered(
        merchant_no: str, terminal_no: str, parameters: dict[str, object]) -> None:
    ledger = new_ledger()
    with refused(ledger, InvalidInput):
        Counter.register(ledger, None, terminal_no, merchant_no, **parameters)


def test_a_transaction_keeps_the_limits_in_force_when_it_began(counter: Counter) -> None:
    sale = counter.begin()
    run_alone(counter.ledger, Ledger.change_terminal_parameters(counter.stamp(None), counter.terminal_id,
                                                                {"max_amount_minor": 1_000}))
    counter.enter(sale, 5_000)
    later = counter.begin()
    with refused(counter.ledger, AmountOutOfRange):
        counter.txn_event(later, "AmountEntered", amount_minor=5_000, currency="CNY")
    assert counter.txn(sale).amount_minor == 5_000


def test_a_parameter_change_that_crosses_the_limits_is_refused(counter: Counter) -> None:
    with refused(counter.ledger, InvalidInput):
        run_alone(counter.ledger, Ledger.change_terminal_parameters(counter.stamp(None), counter.terminal_id,
                                                                    {"min_amount_minor": 20_000_000}))


def test_an_operator_is_enrolled_once(counter: Counter) -> None:
    enroll = Ledger.enroll_operator(counter.stamp(None), counter.terminal_id, "07", "李雷", "$argon2id$x")
    run_alone(counter.ledger, enroll)
    with refused(counter.ledger, AlreadyExists):
        run_alone(counter.ledger, enroll)
    assert counter.terminal().operators["07"]["name"] == "李雷"


@pytest.mark.parametrize("operator_no", ["1", "12345", "ab", ""])
def test_an_operator_number_is_two_to_four_digits(counter: Counter, operator_no: str) -> None:
    with refused(counter.ledger, InvalidInput):
        run_alone(counter.ledger, Ledger.enroll_operator(counter.stamp(None), counter.terminal_id, operator_no,
                                                         "name", "$argon2id$x"))


def test_a_transaction_on_another_terminals_till_is_forbidden(counter: Counter) -> None:
    other = counter.beside("10000002")
    with refused(counter.ledger, Forbidden):
        counter.txn_event(uuid4(), "TransactionOpened", kind="sale", payment_method="cash",
                          till_session_id=other.till_id, batch_no="000001", trace_no="000001")


def test_a_till_event_without_a_terminal_is_forbidden() -> None:
    counter = Counter.register()
    anonymous = Stamp(None, None, None, counter.clock.now())
    request = AppendRequest(uuid4(), 0, "TillOpened", {"float_minor": 0, "currency": "CNY",
                                                       "self_check": SELF_CHECK}, anonymous)
    with refused(counter.ledger, Forbidden):
        run_alone(counter.ledger, Ledger.append_till_event(request))


def test_a_trace_number_is_used_once_in_a_batch(counter: Counter) -> None:
    counter.begin(trace_no="000042")
    with refused(counter.ledger, DuplicateTrace):
        counter.begin(trace_no="000042")
    counter.settle()
    fresh = counter.begin(trace_no="000042")
    assert counter.terminal().traces == {"000042": str(fresh)}


def test_a_busy_terminal_loaded_from_its_snapshot_equals_its_replayed_history(counter: Counter) -> None:
    for _ in range(101):  # each transaction started is one terminal event; a snapshot is taken every 100
        counter.txn_event(counter.begin(method="cash"), "TransactionCancelled", reason="no sale")
    assert counter.ledger.snapshots is not None
    assert list(counter.ledger.snapshots.get(counter.terminal_id))
    replayed = None
    for event in counter.ledger.events.get(counter.terminal_id):
        replayed = event.mutate(replayed)
    assert vars(counter.terminal()) == vars(replayed)
    assert len(counter.terminal().traces) == 101
