"""The agent's offline journal: every event is written here (SQLite, fsync on commit) before it is sent.

A row is the exact request body the agent will POST for one stream version, so forwarding it again
after a crash or an outage is an idempotent retry the service recognises (200 ``replayed``). Rows
are never deleted or changed except for their forwarding state.

    outbox     seq, stream, stream_id, version, event_type, envelope,
               state: queued | forwarded | rejected (refused later, holds back its stream) |
               withdrawn (refused while the cashier waited, and corrected)
    receipts   the receipt documents the agent printed or may reprint (masked PAN only, like the slip)
    sales      the agent's own view of each transaction (outcome, amount, references) for offline
               reprints, voids and the X report
    settings   small facts kept across restarts: till session, batch, next trace number, terminal

No card data: every envelope and document passes ``domain.card_data.guard_fields`` before it is
written, so a full PAN or track data can never reach the disk, whatever a caller does.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain.card_data import guard_fields

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL CHECK (stream IN ('transaction', 'till-session')),
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    event_type TEXT NOT NULL,
    envelope TEXT NOT NULL,
    journaled_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'forwarded', 'rejected', 'withdrawn')),
    forwarded_at TEXT,
    rejection TEXT
);
-- One live row per stream version; a refused row the cashier corrected at once is 'withdrawn' and
-- stays as history, its version taken by the correction.
CREATE UNIQUE INDEX IF NOT EXISTS outbox_version ON outbox (stream_id, version)
    WHERE state IN ('queued', 'forwarded', 'rejected');
CREATE INDEX IF NOT EXISTS outbox_queued ON outbox (state, seq);
CREATE TABLE IF NOT EXISTS receipts (
    transaction_id TEXT NOT NULL,
    copy TEXT NOT NULL,
    document TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (transaction_id, copy)
);
CREATE TABLE IF NOT EXISTS sales (
    transaction_id TEXT PRIMARY KEY,
    facts TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

STREAM_PATHS = {"transaction": "/v1/transactions/{}/events", "till-session": "/v1/till-sessions/{}/events"}


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    stream: str
    stream_id: str
    version: int
    event_type: str
    envelope: dict[str, Any]

    @property
    def path(self) -> str:
        return STREAM_PATHS[self.stream].format(self.stream_id)


@dataclass(frozen=True, slots=True)
class Backlog:
    queued: int
    rejected: int


class Journal:
    """One agent's journal file. Thread-safe: the counter flow writes, the forwarder reads and marks."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # WAL + synchronous=FULL: a commit returns only once it is on disk (fsync of the WAL).
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- outbox ---------------------------------------------------------------------------------
    def append(self, stream: str, stream_id: str, version: int, envelope: dict[str, Any]) -> int:
        """Journal one event (durably) and return its sequence number; the same version twice is an error."""
        if stream not in STREAM_PATHS:
            raise ValueError(f"unknown stream kind {stream!r}")
        _guard(envelope)
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO outbox (stream, stream_id, version, event_type, envelope, journaled_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (stream, stream_id, version, envelope["event"]["type"], _json(envelope), _now()))
            return int(cursor.lastrowid or 0)

    def record_forwarded(self, stream: str, stream_id: str, version: int, envelope: dict[str, Any]) -> None:
        """Journal an event that was sent directly and accepted (e.g. a sign-in, whose password is
        stripped from ``envelope`` by the caller): kept for the record, never forwarded again."""
        _guard(envelope)
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO outbox (stream, stream_id, version, event_type, envelope, journaled_at, "
                "state, forwarded_at) VALUES (?, ?, ?, ?, ?, ?, 'forwarded', ?)",
                (stream, stream_id, version, envelope["event"]["type"], _json(envelope), _now(), _now()))

    def queued(self, stream_id: str | None = None, limit: int = 500) -> list[OutboxRow]:
        """Queued rows in journal order (of one stream, or all); a stream with a rejected row stops there."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, stream, stream_id, version, event_type, envelope FROM outbox o "
                "WHERE state = 'queued' AND (? IS NULL OR stream_id = ?) AND NOT EXISTS ("
                "  SELECT 1 FROM outbox r WHERE r.stream_id = o.stream_id AND r.state = 'rejected') "
                "ORDER BY seq LIMIT ?", (stream_id, stream_id, limit)).fetchall()
        return [OutboxRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def mark_forwarded(self, seq: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE outbox SET state = 'forwarded', forwarded_at = ? WHERE seq = ? AND state = 'queued'",
                       (_now(), seq))

    def mark_rejected(self, seq: int, code: str, detail: str) -> None:
        """The service refused the row for good: it stays here, visible, and holds back its stream."""
        with self._tx() as db:
            db.execute("UPDATE outbox SET state = 'rejected', rejection = ? WHERE seq = ? AND state = 'queued'",
                       (_json({"code": code, "detail": detail[:500]}), seq))

    def withdraw(self, seq: int, code: str, detail: str) -> None:
        """The service refused the row while the cashier waited; the flow corrects it at the same version."""
        with self._tx() as db:
            db.execute("UPDATE outbox SET state = 'withdrawn', rejection = ? WHERE seq = ? AND state = 'queued'",
                       (_json({"code": code, "detail": detail[:500]}), seq))

    def backlog(self) -> Backlog:
        with self._lock:
            counts = dict(self._db.execute(
                "SELECT state, count(*) FROM outbox WHERE state != 'forwarded' GROUP BY state").fetchall())
        return Backlog(queued=counts.get("queued", 0), rejected=counts.get("rejected", 0))

    def rejected(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT seq, stream_id, version, event_type, rejection FROM outbox "
                                    "WHERE state = 'rejected' ORDER BY seq").fetchall()
        return [{"seq": r[0], "stream_id": r[1], "version": r[2], "type": r[3], **json.loads(r[4])} for r in rows]

    def events(self, stream_id: str) -> list[dict[str, Any]]:
        """Every journaled event of one stream, in version order (what the agent itself recorded)."""
        with self._lock:
            rows = self._db.execute("SELECT version, envelope, state FROM outbox WHERE stream_id = ? ORDER BY version",
                                    (stream_id,)).fetchall()
        return [{"version": r[0], "state": r[2], **json.loads(r[1])} for r in rows]

    # ---- receipts and the agent's own view of its sales ----------------------------------------
    def keep_receipt(self, transaction_id: str, copy: str, document: dict[str, Any], sha256: str) -> None:
        guard_fields(document)
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO receipts VALUES (?, ?, ?, ?)",
                       (transaction_id, copy, _json(document), sha256))

    def receipt(self, transaction_id: str, copy: str) -> tuple[dict[str, Any], str] | None:
        with self._lock:
            row = self._db.execute("SELECT document, sha256 FROM receipts WHERE transaction_id = ? AND copy = ?",
                                   (transaction_id, copy)).fetchone()
        return (json.loads(row[0]), row[1]) if row else None

    def put_sale(self, transaction_id: str, facts: dict[str, Any]) -> None:
        guard_fields(facts)
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO sales VALUES (?, ?)", (transaction_id, _json(facts)))

    def sale(self, transaction_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT facts FROM sales WHERE transaction_id = ?", (transaction_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def sales(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT facts FROM sales ORDER BY rowid").fetchall()
        return [json.loads(r[0]) for r in rows]

    def get(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, _json(value)))

    def next_trace_no(self) -> str:
        """The terminal's next 6-digit trace number (凭证号), 000001-999999 then round again; durable."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM settings WHERE key = 'trace_no'").fetchone()
            current = json.loads(row[0]) if row else 0
            nxt = current % 999_999 + 1
            db.execute("INSERT OR REPLACE INTO settings VALUES ('trace_no', ?)", (json.dumps(nxt),))
        return f"{nxt:06d}"


def _guard(envelope: dict[str, Any]) -> None:
    # The event's own fields are guarded by name (so pan_token and receipt_sha256 are exempt as in the ledger).
    guard_fields(envelope["event"])
    guard_fields({k: v for k, v in envelope.items() if k != "event"})


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _now() -> str:
    return datetime.now(UTC).isoformat()
