"""The append protocol: the client states the version it saw; retries are idempotent, races conflict."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from domain.errors import Forbidden, InvalidInput, OutOfSequence, VersionConflict
from domain.till_actions import PASSWORD_VERIFIED
from domain.transaction import Transaction
from tests.domain.world import Counter, position, refused


def test_an_append_answers_the_new_version_and_the_hash_of_the_recorded_event(counter: Counter) -> None:
    sale = counter.begin()
    result = counter.txn_event(sale, "AmountEntered", amount_minor=1_000, currency="CNY")
    records, check = counter.ledger.history(sale, Transaction)
    assert (result.version, result.replayed, result.hash) == (2, False, records[-1]["hash"])
    assert check.valid


def test_retrying_an_identical_append_replays_the_recorded_result(counter: Counter) -> None:
    sale = counter.begin()
    request = counter.request(sale, "AmountEntered", amount_minor=1_000, currency="CNY")
    first = counter.resend(request)
    before = position(counter.ledger)
    retry = counter.resend(request)
    assert retry.replayed and not first.replayed
    assert (retry.version, retry.hash, retry.recorded_at) == (first.version, first.hash, first.recorded_at)
    assert position(counter.ledger) == before
    assert counter.events(sale).count("AmountEntered") == 1


def test_retrying_the_opening_event_replays_it(counter: Counter) -> None:
    sale = uuid4()
    request = counter.request(sale, "TransactionOpened", kind="sale", payment_method="card",
                              till_session_id=counter.till_id, batch_no="000001", trace_no="000123")
    first = counter.resend(request)
    retry = counter.resend(request)
    assert retry.replayed and (retry.version, retry.hash) == (1, first.hash)
    assert list(counter.terminal().traces.values()) == [str(sale)]


def test_a_retry_arriving_after_later_appends_still_replays(counter: Counter) -> None:
    sale = counter.begin()
    request = counter.request(sale, "AmountEntered", amount_minor=1_000, currency="CNY")
    first = counter.resend(request)
    counter.txn_event(sale, "AmountConfirmed")
    retry = counter.resend(request)
    assert retry.replayed and retry.version == first.version == 2
    assert counter.version(sale) == 3


def test_retrying_a_sign_in_replays_it(counter: Counter) -> None:
    counter.till_event("OperatorSignedOut", operator_no="01")
    request = counter.request(counter.till_id, "OperatorSignedIn", operator="02", operator_no="02",  # type: ignore[arg-type]
                              **{PASSWORD_VERIFIED: True})
    first = counter.resend(request, till=True)
    assert counter.resend(request, till=True).hash == first.hash
    assert counter.till().operator == "02"


@pytest.mark.parametrize(("event_type", "fields"), [
    ("AmountEntered", {"amount_minor": 2_000, "currency": "CNY"}),  # same type, another amount
    ("TransactionCancelled", {"reason": "customer left"}),           # another event
])
def test_a_different_event_at_a_taken_version_is_a_version_conflict(
        counter: Counter, event_type: str, fields: dict[str, object]) -> None:
    sale = counter.begin()
    counter.txn_event(sale, "AmountEntered", amount_minor=1_000, currency="CNY")
    with refused(counter.ledger, VersionConflict) as error:
        counter.txn_event(sale, event_type, expected_version=1, **fields)
    assert error.value.current_version == 2


def test_the_same_event_stated_at_another_device_time_is_a_version_conflict(counter: Counter) -> None:
    sale = counter.begin()
    request = counter.request(sale, "AmountEntered", amount_minor=1_000, currency="CNY")
    counter.resend(request)
    other = counter.request(sale, "AmountEntered", expected_version=1, amount_minor=1_000, currency="CNY",
                            device_time=request.stamp.device_time + timedelta(seconds=1))  # type: ignore[operator]
    with refused(counter.ledger, VersionConflict):
        counter.resend(other)


@pytest.mark.parametrize("ahead", [1, 5])
def test_an_expected_version_ahead_of_the_stream_is_a_version_conflict(counter: Counter, ahead: int) -> None:
    sale = counter.begin()
    with refused(counter.ledger, VersionConflict) as error:
        counter.txn_event(sale, "AmountEntered", expected_version=1 + ahead, amount_minor=1_000, currency="CNY")
    assert error.value.current_version == 1


def test_an_expected_version_on_a_stream_that_does_not_exist_is_a_version_conflict(counter: Counter) -> None:
    with refused(counter.ledger, VersionConflict) as error:
        counter.txn_event(uuid4(), "AmountEntered", expected_version=3, amount_minor=1_000, currency="CNY")
    assert error.value.current_version == 0


def test_a_negative_expected_version_is_invalid(counter: Counter) -> None:
    sale = counter.begin()
    with refused(counter.ledger, InvalidInput):
        counter.txn_event(sale, "AmountConfirmed", expected_version=-1)


@pytest.mark.parametrize("event_type", ["AmountRefunded", "CreditReserved", "TransactionVoided", "Refunded",
                                        "TillOpened"])
def test_an_event_type_the_transaction_stream_does_not_take_is_invalid(counter: Counter, event_type: str) -> None:
    sale = counter.begin()
    with refused(counter.ledger, InvalidInput) as error:
        counter.txn_event(sale, event_type)
    assert error.value.extra["field"] == "event.type"


@pytest.mark.parametrize("event_type", ["Blocked", "Unblocked", "TransactionStarted", "TransactionOpened"])
def test_an_event_type_the_till_stream_does_not_take_is_invalid(counter: Counter, event_type: str) -> None:
    with refused(counter.ledger, InvalidInput):
        counter.till_event(event_type)


def test_a_new_transaction_stream_must_begin_with_its_opening_event(counter: Counter) -> None:
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(uuid4(), "AmountEntered", expected_version=0, amount_minor=1_000, currency="CNY")


def test_a_new_till_stream_must_begin_with_its_opening_event() -> None:
    counter = Counter.register()
    counter.till_id = uuid4()
    with refused(counter.ledger, OutOfSequence):
        counter.till_event("CashCounted", counted_minor=0, note="")


def test_an_opening_event_on_an_existing_stream_is_out_of_sequence(counter: Counter) -> None:
    sale = counter.begin()
    with refused(counter.ledger, OutOfSequence):
        counter.txn_event(sale, "TransactionOpened", kind="sale", payment_method="card",
                          till_session_id=counter.till_id, batch_no="000001", trace_no="000999")


def test_a_terminal_cannot_append_to_another_terminals_transaction(counter: Counter) -> None:
    sale = counter.begin()
    other = counter.beside("10000002")
    with refused(counter.ledger, Forbidden):
        other.txn_event(sale, "TransactionCancelled", reason="not mine")


def test_a_terminal_cannot_replay_another_terminals_append(counter: Counter) -> None:
    sale = counter.begin()
    request = counter.request(sale, "AmountEntered", amount_minor=1_000, currency="CNY")
    counter.resend(request)
    other = counter.beside("10000002")
    stolen = other.request(sale, "AmountEntered", expected_version=1, amount_minor=1_000, currency="CNY")
    with refused(counter.ledger, Forbidden):
        other.resend(stolen)


def test_a_terminal_cannot_append_to_another_terminals_till(counter: Counter) -> None:
    other = counter.beside("10000002")
    with refused(counter.ledger, Forbidden):
        other.resend(other.request(counter.till_id, "CashCounted", counted_minor=0, note=""), till=True)  # type: ignore[arg-type]
    assert counter.till().counted_minor is None
