"""The offline journal: durable, ordered, idempotent per stream version, and never holding card data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from domain.errors import CardDataRejected
from terminal_agent.journal import Journal


def envelope(version: int, event: dict[str, object]) -> dict[str, object]:
    return {"expected_version": version - 1, "operator_no": "01", "device_time": "2026-11-24T10:00:00+08:00",
            "event": event}


def test_events_come_back_queued_in_journal_order_and_leave_the_queue_once_forwarded(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    first = journal.append("transaction", "t1", 1, envelope(1, {"type": "TransactionOpened"}))
    journal.append("till-session", "s1", 1, envelope(1, {"type": "TillOpened"}))
    journal.append("transaction", "t1", 2, envelope(2, {"type": "AmountEntered"}))

    assert [(r.stream_id, r.version) for r in journal.queued()] == [("t1", 1), ("s1", 1), ("t1", 2)]
    assert [r.path for r in journal.queued("t1")] == ["/v1/transactions/t1/events"] * 2
    journal.mark_forwarded(first)
    assert journal.backlog().queued == 2
    assert [(r.stream_id, r.version) for r in journal.queued()] == [("s1", 1), ("t1", 2)]


def test_the_same_stream_version_cannot_be_journaled_twice(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.append("transaction", "t1", 1, envelope(1, {"type": "TransactionOpened"}))

    with pytest.raises(sqlite3.IntegrityError):
        journal.append("transaction", "t1", 1, envelope(1, {"type": "TransactionOpened"}))


def test_a_rejected_row_holds_back_its_stream_but_not_the_others(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    bad = journal.append("transaction", "t1", 1, envelope(1, {"type": "TransactionOpened"}))
    journal.append("transaction", "t1", 2, envelope(2, {"type": "AmountEntered"}))
    journal.append("transaction", "t2", 1, envelope(1, {"type": "TransactionOpened"}))

    journal.mark_rejected(bad, "till_not_open", "this till session is closed")

    assert [r.stream_id for r in journal.queued()] == ["t2"]
    assert journal.backlog().rejected == 1
    assert journal.rejected()[0]["code"] == "till_not_open"


def test_a_withdrawn_row_gives_its_version_to_the_correction(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    wrong = journal.append("transaction", "t1", 2, envelope(2, {"type": "AmountEntered", "amount_minor": 0}))
    journal.withdraw(wrong, "amount_out_of_range", "too small")

    journal.append("transaction", "t1", 2, envelope(2, {"type": "AmountEntered", "amount_minor": 100}))

    assert [r.envelope["event"]["amount_minor"] for r in journal.queued()] == [100]
    assert [e["state"] for e in journal.events("t1")] == ["withdrawn", "queued"]


def test_a_full_card_number_never_reaches_the_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    with pytest.raises(CardDataRejected):
        journal.append("transaction", "t1", 1, envelope(1, {"type": "CardPresented",
                                                            "masked_pan": "6222021234567894"}))
    with pytest.raises(CardDataRejected):
        journal.put_sale("t1", {"note": "track 6222021234567894=30122010000000000000"})

    assert journal.backlog().queued == 0
    assert b"6222021234567894" not in (tmp_path / "j.sqlite3").read_bytes()


def test_trace_numbers_survive_a_restart_and_wrap_after_999999(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    assert [journal.next_trace_no(), journal.next_trace_no()] == ["000001", "000002"]
    journal.close()

    reopened = Journal(tmp_path / "j.sqlite3")
    assert reopened.next_trace_no() == "000003"
    reopened.put("trace_no", 999_999)
    assert reopened.next_trace_no() == "000001"


def test_the_journal_commits_with_full_synchronous_writes(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    db = sqlite3.connect(tmp_path / "j.sqlite3")

    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync on every commit
