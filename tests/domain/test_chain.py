"""Tamper evidence: every event carries the SHA-256 of its predecessor, so a changed, deleted or
reordered event breaks the chain at a named version; the head hash catches a change to the last one."""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.chain import GENESIS, record_hash, verify_records
from domain.terminal import Terminal
from domain.till import TillSession
from domain.transaction import Transaction
from tests.domain.world import Counter

@cache
def recorded_sale() -> tuple[str, str]:
    """One signed card sale's canonical records (as JSON, without their hashes) and its head hash.
    Built once: the chain walk is pure, so each example works on a fresh copy."""
    counter = Counter.at_open_till()
    sale = counter.card_sale(12_345, cvm="signature")
    records = [{k: v for k, v in r.items() if k != "hash"} for r in counter.ledger.history(sale, Transaction)[0]]
    return json.dumps(records), counter.txn(sale).chain_head


def copied() -> list[dict[str, Any]]:
    return json.loads(recorded_sale()[0])  # type: ignore[no-any-return]


def changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "0"
    if isinstance(value, list):
        return [*value, "x"]
    if isinstance(value, dict):
        return {**value, "x": 1}
    return "x"


def test_a_fresh_stream_of_every_kind_verifies(counter: Counter) -> None:
    sale = counter.card_sale(1_000)
    counter.settle()
    for stream_id, cls in ((sale, Transaction), (counter.till_id, TillSession), (counter.terminal_id, Terminal)):
        records, check = counter.ledger.history(stream_id, cls)  # type: ignore[arg-type]
        assert check.valid, (cls.__name__, check)
        assert records[0]["prev_hash"] == GENESIS
        assert [r["prev_hash"] for r in records[1:]] == [r["hash"] for r in records[:-1]]


def test_the_last_hash_of_the_history_is_the_head_the_ledger_answered(counter: Counter) -> None:
    sale = counter.begin()
    result = counter.txn_event(sale, "AmountEntered", amount_minor=1_000, currency="CNY")
    records, _ = counter.ledger.history(sale, Transaction)
    assert records[-1]["hash"] == result.hash == counter.txn(sale).chain_head


@given(st.data())
def test_changing_one_field_of_an_event_breaks_the_chain_at_that_event_or_the_next(data: st.DataObject) -> None:
    records = copied()
    index = data.draw(st.integers(0, len(records) - 2), label="index")
    name = data.draw(st.sampled_from(sorted(records[index])), label="field")
    records[index][name] = changed(records[index][name])
    check = verify_records(records)
    version = index + 1
    # Its own version or link is checked at the event; anything else in it, at its successor's link.
    expected = version if name in ("originator_version", "prev_hash") else version + 1
    assert not check.valid and check.broken_at_version == expected, check


@given(st.data())
def test_deleting_an_event_breaks_the_chain_where_it_was(data: st.DataObject) -> None:
    records = copied()
    index = data.draw(st.integers(0, len(records) - 2), label="index")
    del records[index]
    check = verify_records(records)
    assert not check.valid and check.broken_at_version == index + 1, check


@given(st.data())
def test_swapping_two_events_breaks_the_chain_at_the_first(data: st.DataObject) -> None:
    records = copied()
    first = data.draw(st.integers(0, len(records) - 2), label="first")
    second = data.draw(st.integers(first + 1, len(records) - 1), label="second")
    records[first], records[second] = records[second], records[first]
    check = verify_records(records)
    assert not check.valid and check.broken_at_version == first + 1, check


@pytest.mark.parametrize("tamper", ["change", "delete"])
def test_changing_or_dropping_the_last_event_is_caught_against_the_head_hash(tamper: str) -> None:
    records = copied()
    if tamper == "change":
        records[-1]["response_code"] = "05"  # the field need not exist for the hash to move
    else:
        records.pop()
    assert verify_records(records).valid  # the walk alone cannot see it: nothing follows the last event
    assert record_hash(records[-1]) != recorded_sale()[1]


def test_a_stored_event_rewritten_in_the_store_is_detected_by_the_history(counter: Counter) -> None:
    sale = counter.card_sale(1_000)
    recorder = counter.ledger.recorder
    at = recorder._stored_events_index[str(sale)][2]  # type: ignore[attr-defined]  # AmountEntered
    stored = recorder._stored_events[at]  # type: ignore[attr-defined]
    assert b'"amount_minor":1000' in stored.state
    recorder._stored_events[at] = dataclasses.replace(  # type: ignore[attr-defined]
        stored, state=stored.state.replace(b'"amount_minor":1000', b'"amount_minor":100'))
    _, check = counter.ledger.history(sale, Transaction)
    assert not check.valid and check.broken_at_version == 3
