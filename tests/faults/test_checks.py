"""The fault suite's checks can fail: each finds the problem it exists for (the last one on the private
PostgreSQL cluster, the others on hand-made stores)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from psycopg import sql

from adapters.acquirer_journal import JournalEntry
from tests.faults.checks import Store, StoredEvent, acknowledgements, host_and_ledger, projection, read_store
from tests.faults.deployment import Deployment
from tests.faults.load import Ack, Book, Load, provision
from tests.faults.private_postgres import PrivatePostgres

TERMINAL, TXN = "terminal-1", "txn-1"


def stored(stream: str, version: int, name: str, position: int, aggregate: str = "Transaction",
           **fields: Any) -> StoredEvent:
    return StoredEvent(stream, version, name, aggregate, position, SimpleNamespace(**fields))


def store_of(*events: StoredEvent) -> Store:
    return Store(list(events), {(e.stream_id, e.version): e for e in events}, 0)


def sale(outcome_events: list[StoredEvent]) -> Store:
    return store_of(
        stored(TERMINAL, 1, "Registered", 1, "Terminal", terminal_no="70000001"),
        stored(TXN, 1, "TransactionOpened", 2, terminal_id=TERMINAL, kind="sale", payment_method="card",
               batch_no="000001", trace_no="000007"),
        stored(TXN, 2, "AuthorizationRequested", 3, stan="000007"), *outcome_events)


def host_entry(state: str, rrn: str = "000000000001", auth_code: str = "A1B2C3") -> JournalEntry:
    now = datetime(2026, 11, 24, 12)
    return JournalEntry(1, "sale", "70000001", "898310048990001", "000001", "000007", 1_000, "CNY", "622202******0001",
                        rrn, auth_code, "00", state, None, "", now, now, False, None)


def book_with(*acks: tuple[str, int, str], attempts: dict[tuple[str, int], str] | None = None) -> Book:
    book = Book()
    for stream, version, name in acks:
        book.attempt(stream, version, name)
        book.ack(Ack(stream, version, name, None, False, "test", 0.0))
    for (stream, version), name in (attempts or {}).items():
        book.attempt(stream, version, name)
    return book


def test_an_acknowledged_append_missing_from_the_store_is_counted_lost() -> None:
    store = store_of(stored(TXN, 1, "TransactionOpened", 1))
    check = acknowledgements(book_with((TXN, 1, "TransactionOpened"), (TXN, 2, "AmountEntered")), store)
    assert len(check.lost) == 1 and "v2" in check.lost[0]
    assert check.duplicated == []


def test_an_acknowledged_append_stored_as_another_event_is_counted_lost() -> None:
    store = store_of(stored(TXN, 1, "TransactionOpened", 1), stored(TXN, 2, "AmountConfirmed", 2))
    check = acknowledgements(book_with((TXN, 1, "TransactionOpened"), (TXN, 2, "AmountEntered")), store)
    assert len(check.lost) == 1


def test_an_event_stored_at_a_version_no_client_sent_is_counted_duplicated() -> None:
    store = store_of(stored(TXN, 1, "TransactionOpened", 1), stored(TXN, 2, "AmountEntered", 2),
                     stored(TXN, 3, "AmountEntered", 3))
    check = acknowledgements(book_with((TXN, 1, "TransactionOpened"), (TXN, 2, "AmountEntered")), store)
    assert check.lost == [] and len(check.duplicated) == 1 and "v3" in check.duplicated[0]


def test_an_authorization_recorded_twice_is_counted_duplicated() -> None:
    store = store_of(stored(TXN, 1, "TransactionOpened", 1), stored(TXN, 2, "AuthorizationRequested", 2),
                     stored(TXN, 3, "AuthorizationRequested", 3))
    check = acknowledgements(book_with((TXN, 1, "TransactionOpened")), store)
    assert any("AuthorizationRequested recorded 2 times" in d for d in check.duplicated)


def test_an_event_sent_but_never_answered_is_neither_lost_nor_duplicated() -> None:
    store = store_of(stored(TXN, 1, "TransactionOpened", 1), stored(TXN, 2, "AmountEntered", 2))
    check = acknowledgements(book_with((TXN, 1, "TransactionOpened"), attempts={(TXN, 2): "AmountEntered"}), store)
    assert (check.lost, check.duplicated) == ([], [])


def test_a_host_approval_the_ledger_left_unknown_is_inconsistent() -> None:
    check = host_and_ledger([host_entry("approved")], sale([stored(TXN, 3, "OutcomeUnknown", 4)]))
    assert not check.consistent and "approved at the host" in check.problems[0]


def test_a_host_approval_the_ledger_authorized_with_its_rrn_is_consistent() -> None:
    authorized = stored(TXN, 3, "Authorized", 4, rrn="000000000001", auth_code="A1B2C3")
    assert host_and_ledger([host_entry("approved")], sale([authorized])).consistent


def test_a_reversal_at_the_host_the_ledger_shows_as_authorized_is_inconsistent() -> None:
    authorized = stored(TXN, 3, "Authorized", 4, rrn="000000000001", auth_code="A1B2C3")
    assert not host_and_ledger([host_entry("reversed")], sale([authorized])).consistent


def test_a_ledger_authorization_the_host_never_approved_is_inconsistent() -> None:
    authorized = stored(TXN, 3, "Authorized", 4, rrn="000000000001", auth_code="A1B2C3")
    check = host_and_ledger([], sale([authorized]))
    assert not check.consistent and "the host has no such sale" in check.problems[0]


@pytest.mark.postgres
def test_a_view_row_or_running_total_changed_behind_the_projection_is_found_by_the_projection_check(
        private_postgres: PrivatePostgres, tmp_path: Path) -> None:
    with Deployment(private_postgres, tmp_path, "tampered_view") as d:
        book = Book()
        terminals = provision(d.url, d.admin_token, 2, book)
        load = Load(d.url, terminals, book).start()
        time.sleep(1.0)
        load.stop()
        d.wait_for_view()
        services = d.read()
        store = read_store(services)
        assert projection(services, store).equal
        table = sql.Identifier(d.schema, "view_txn")
        with psycopg.connect(d.pg.url, autocommit=True) as conn:
            conn.execute(sql.SQL("UPDATE {} SET doc = replace(doc, '\"status\": \"completed\"', "
                                 "'\"status\": \"open\"') WHERE id = (SELECT min(id) FROM {} WHERE status = "
                                 "'completed')").format(table, table))
            differences = projection(services, store).differences
            assert any(line.startswith("txn ") for line in differences), differences
            assert any(line.startswith("transaction ") for line in differences), differences
            conn.execute(sql.SQL("UPDATE {} SET gross_minor = gross_minor + 1 WHERE ctid = (SELECT min(ctid) "
                                 "FROM {})").format(sql.Identifier(d.schema, "view_day_line"),
                                                    sql.Identifier(d.schema, "view_day_line")))
        differences = projection(services, store).differences
        assert any("served from the running totals != recomputed from rows" in line for line in differences)
