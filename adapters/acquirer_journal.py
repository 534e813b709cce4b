"""The acquirer simulator's journal: every financial message it decided, in a SQLite file.

A row is written as soon as the host has decided (before any slow or dropped reply), and its
``state`` follows what happens to it afterwards: approved, declined, voided (a sale a void cancelled),
reversed. Only the masked PAN (first 6 + last 4) is ever stored. Per terminal the journal also keeps
the batch a sign-on opened and the batches settled, with their settlement date.

Safe to read from another thread (tests read it while the simulator's loop writes it).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from domain.acquirer import BatchTotals

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,                 -- sale | void | refund
    terminal_no TEXT NOT NULL,
    merchant_no TEXT NOT NULL,
    batch_no TEXT NOT NULL,
    stan TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    masked_pan TEXT NOT NULL,
    rrn TEXT NOT NULL UNIQUE,
    auth_code TEXT NOT NULL,
    response_code TEXT NOT NULL,
    state TEXT NOT NULL,                -- approved | declined | voided | reversed
    original_id INTEGER REFERENCES messages (id),
    original_rrn TEXT NOT NULL,
    received_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0,
    settlement_date TEXT,
    UNIQUE (terminal_no, batch_no, stan)
);
CREATE TABLE IF NOT EXISTS batches (
    terminal_no TEXT NOT NULL,
    batch_no TEXT NOT NULL,
    merchant_no TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    settlement_date TEXT,               -- NULL while the batch is open
    balanced INTEGER,
    PRIMARY KEY (terminal_no, batch_no)
);
"""
_COLUMNS = ("id, kind, terminal_no, merchant_no, batch_no, stan, amount_minor, currency, masked_pan, rrn, "
            "auth_code, response_code, state, original_id, original_rrn, received_at, updated_at, settled, "
            "settlement_date")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One financial message as it stands now. The card shows as its masked number only."""

    id: int
    kind: str
    terminal_no: str
    merchant_no: str
    batch_no: str
    stan: str
    amount_minor: int
    currency: str
    masked_pan: str
    rrn: str
    auth_code: str
    response_code: str
    state: str
    original_id: int | None
    original_rrn: str
    received_at: datetime
    updated_at: datetime
    settled: bool
    settlement_date: date | None

    @classmethod
    def _of(cls, row: Sequence[Any]) -> JournalEntry:
        return cls(*row[:15], received_at=datetime.fromisoformat(row[15]),
                   updated_at=datetime.fromisoformat(row[16]), settled=bool(row[17]),
                   settlement_date=date.fromisoformat(row[18]) if row[18] else None)


class Journal:
    """The simulator's record of decisions (SQLite file, or ":memory:")."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _select(self, where: str = "1", args: Sequence[Any] = ()) -> list[JournalEntry]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM messages WHERE {where} ORDER BY id", args).fetchall()
        return [JournalEntry._of(row) for row in rows]

    def _write(self, sql: str, args: Sequence[Any]) -> int:
        with self._lock, self._db:
            return self._db.execute(sql, args).lastrowid or 0

    def _value(self, sql: str, args: Sequence[Any]) -> Any:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return row[0] if row else None

    # --- reading (tests, the settlement file) ---

    def entries(self) -> list[JournalEntry]:
        return self._select()

    def approved_outstanding(self) -> list[JournalEntry]:
        """Approved and not reversed, each as it stands (a sale a void cancelled shows as voided)."""
        return self._select("state IN ('approved', 'voided')")

    def entry(self, terminal_no: str, batch_no: str, stan: str) -> JournalEntry | None:
        found = self._select("terminal_no = ? AND batch_no = ? AND stan = ?", (terminal_no, batch_no, stan))
        return found[0] if found else None

    def by_rrn(self, rrn: str) -> JournalEntry | None:
        found = self._select("rrn = ?", (rrn,))
        return found[0] if found else None

    def settled_on(self, day: date) -> list[JournalEntry]:
        """What settles that day: approved sales not voided or reversed, and approved refunds not reversed."""
        return self._select("settled = 1 AND settlement_date = ? AND state = 'approved' AND kind IN ('sale', 'refund')",
                            (day.isoformat(),))

    def totals(self, terminal_no: str, batch_no: str, currency: str) -> BatchTotals:
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, COUNT(*), COALESCE(SUM(amount_minor), 0) FROM messages WHERE terminal_no = ? "
                "AND batch_no = ? AND currency = ? AND state = 'approved' AND kind IN ('sale', 'refund') "
                "GROUP BY kind", (terminal_no, batch_no, currency)).fetchall()
        by_kind = {kind: (count, amount) for kind, count, amount in rows}
        debit, credit = by_kind.get("sale", (0, 0)), by_kind.get("refund", (0, 0))
        return BatchTotals(debit_count=debit[0], debit_minor=debit[1], credit_count=credit[0],
                           credit_minor=credit[1])

    def refunded_minor(self, sale_id: int) -> int:
        """What approved, unreversed refunds have returned of a sale."""
        return int(self._value("SELECT COALESCE(SUM(amount_minor), 0) FROM messages WHERE original_id = ? "
                               "AND kind = 'refund' AND state = 'approved'", (sale_id,)))

    def settlement_date(self, terminal_no: str, batch_no: str) -> date | None:
        day = self._value("SELECT settlement_date FROM batches WHERE terminal_no = ? AND batch_no = ?",
                          (terminal_no, batch_no))
        return date.fromisoformat(day) if day else None

    def highest_settled(self, terminal_no: str) -> str | None:
        highest = self._value("SELECT MAX(batch_no) FROM batches WHERE terminal_no = ? "
                              "AND settlement_date IS NOT NULL", (terminal_no,))
        return str(highest) if highest else None

    def next_rrn(self) -> str:
        # RRNs are unique host-wide (voids and refunds find their sale by it): one sequence for all.
        highest = self._value("SELECT MAX(CAST(rrn AS INTEGER)) FROM messages", ())
        return f"{(highest or 0) + 1:012d}"

    # --- writing (the simulator) ---

    def record(self, *, kind: str, terminal_no: str, merchant_no: str, batch_no: str, stan: str,
               amount_minor: int, currency: str, masked_pan: str, rrn: str, auth_code: str, response_code: str,
               state: str, at: datetime, original: JournalEntry | None = None) -> int:
        return self._write(
            "INSERT INTO messages (kind, terminal_no, merchant_no, batch_no, stan, amount_minor, currency, "
            "masked_pan, rrn, auth_code, response_code, state, original_id, original_rrn, received_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (kind, terminal_no, merchant_no, batch_no, stan, amount_minor, currency, masked_pan, rrn, auth_code,
             response_code, state, original.id if original else None, original.rrn if original else "",
             at.isoformat(), at.isoformat()))

    def set_state(self, entry_id: int, state: str, at: datetime) -> None:
        self._write("UPDATE messages SET state = ?, updated_at = ? WHERE id = ?", (state, at.isoformat(), entry_id))

    def open_batch(self, terminal_no: str, merchant_no: str, batch_no: str, at: datetime) -> None:
        self._write("INSERT OR IGNORE INTO batches (terminal_no, batch_no, merchant_no, opened_at) "
                    "VALUES (?, ?, ?, ?)", (terminal_no, batch_no, merchant_no, at.isoformat()))

    def settle(self, terminal_no: str, merchant_no: str, batch_no: str, day: date, balanced: bool,
               at: datetime) -> date:
        """Close the batch on ``day`` (a batch settled before keeps its first date); returns the date."""
        self.open_batch(terminal_no, merchant_no, batch_no, at)
        with self._lock, self._db:
            self._db.execute("UPDATE batches SET settlement_date = COALESCE(settlement_date, ?), balanced = ? "
                             "WHERE terminal_no = ? AND batch_no = ?", (day.isoformat(), int(balanced),
                                                                          terminal_no, batch_no))
            settled = self._db.execute("SELECT settlement_date FROM batches WHERE terminal_no = ? AND batch_no = ?",
                                       (terminal_no, batch_no)).fetchone()[0]
            self._db.execute("UPDATE messages SET settled = 1, settlement_date = ? WHERE terminal_no = ? "
                             "AND batch_no = ?", (settled, terminal_no, batch_no))
        return date.fromisoformat(settled)
