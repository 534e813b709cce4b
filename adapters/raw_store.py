"""The stored rows exactly as they are, read-only, for the store audit (``projections.store_audit``).

The application reads events through eventsourcing's recorder, which trusts what it reads. The
audit must not: it reads the raw rows (notification id, stream id, version, topic, state bytes) in
one consistent snapshot and decides for itself. Nothing here writes: SQLite files are opened
``mode=ro`` (a missing file is an error, never created); PostgreSQL runs one ``REPEATABLE READ``
``READ ONLY`` transaction, so the events, the snapshots and the view are read as of one instant
even while the service appends.

On SQLite the view is another file: its snapshot is taken first, then the events', so the
view's position can never be ahead of the events it was built from.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import Notification
from psycopg import sql

from adapters.settings import Settings
from adapters.store import ledger_environment, libpq_conninfo
from domain.errors import StoreUnavailable

APPLICATION = "Ledger"  # domain.ledger.Ledger.name: the events table and the view's tracking row
VIEW = "ledger_view"  # projections.ledger_view.NAME
PAGE = 2_000


class RawStore:
    """Raw rows of the ledger (events, snapshots) and of its view, for both backends."""

    description: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._closers: list[Any] = []
        self._cursors = 0
        if settings.uses_postgres:
            self._open_postgres()
        else:
            self._open_sqlite()

    # ---- opening ---------------------------------------------------------------------------------
    def _open_postgres(self) -> None:
        schema = self.settings.database_schema
        self.description = f"PostgreSQL schema {schema}"
        try:
            conn = psycopg.connect(libpq_conninfo(self.settings))
            conn.read_only = True
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot reach PostgreSQL: {exc.__class__.__name__}: {exc}") from exc
        self._closers.append(conn)
        self._pg = conn
        self._p = "%s"
        self._events = sql.Identifier(schema, f"{APPLICATION.lower()}_events").as_string(conn)
        self._snapshots = sql.Identifier(schema, f"{APPLICATION.lower()}_snapshots").as_string(conn)
        self._tracking = sql.Identifier(schema, f"{VIEW}_tracking").as_string(conn)
        self._view_prefix = f"{sql.Identifier(schema).as_string(conn)}.view_"
        self._id_column = "notification_id"
        found = {r[0] for r in conn.execute("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = %s",
                                            [schema])}
        if f"{APPLICATION.lower()}_events" not in found:
            raise StoreUnavailable(f"no ledger in PostgreSQL schema {schema} (table {APPLICATION.lower()}_events "
                                   "is missing): check TILL_DATABASE_URL and TILL_DATABASE_SCHEMA")
        self.has_snapshots = f"{APPLICATION.lower()}_snapshots" in found
        self.has_view = f"{VIEW}_tracking" in found and "view_txn" in found
        self._view = self._ledger = conn

    def _open_sqlite(self) -> None:
        ledger_path = Path(ledger_environment(self.settings)["SQLITE_DBNAME"])
        view_path = self.settings.data_dir / f"{VIEW}.sqlite"
        self.description = f"SQLite in {self.settings.data_dir.resolve()}"
        self._p = "?"
        self._events, self._snapshots, self._tracking = "stored_events", "stored_snapshots", "tracking"
        self._view_prefix = "view_"
        self._id_column = "rowid"
        self.has_view = view_path.exists()
        if self.has_view:  # first: the view's snapshot must not be newer than the events'
            self._view = self._sqlite(view_path)
            tables = self._tables(self._view)
            self.has_view = "tracking" in tables and "view_txn" in tables
        if not ledger_path.exists():
            raise StoreUnavailable(f"no ledger at {ledger_path}: check TILL_DATA_DIR")
        self._ledger = self._sqlite(ledger_path)
        tables = self._tables(self._ledger)
        if "stored_events" not in tables:
            raise StoreUnavailable(f"{ledger_path} holds no ledger (no stored_events table)")
        self.has_snapshots = "stored_snapshots" in tables

    def _sqlite(self, path: Path) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            conn.execute("BEGIN")  # one read snapshot until close (WAL)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read {path}: {exc}") from exc
        self._closers.append(conn)
        return conn

    @staticmethod
    def _tables(conn: sqlite3.Connection) -> set[str]:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def close(self) -> None:
        for conn in self._closers:
            conn.close()
        self._closers.clear()

    # ---- reading ---------------------------------------------------------------------------------
    def _rows(self, conn: Any, statement: str, params: Sequence[Any] = ()) -> Iterator[Sequence[Any]]:
        """Every row of one query, fetched a page at a time (a server-side cursor on PostgreSQL)."""
        statement = statement.replace("%s", self._p)
        if isinstance(conn, sqlite3.Connection):
            yield from conn.execute(statement, list(params))  # steps lazily
            return
        self._cursors += 1
        with conn.cursor(name=f"till_audit_{self._cursors}") as cursor:
            cursor.itersize = PAGE
            cursor.execute(statement, list(params))
            yield from cursor

    def _one(self, conn: Any, statement: str, params: Sequence[Any] = ()) -> Any:
        row = conn.execute(statement.replace("%s", self._p), list(params)).fetchone()
        return None if row is None else row[0]

    @staticmethod
    def _notification(row: Sequence[Any]) -> Notification:
        stream = row[1]
        if not isinstance(stream, UUID):
            try:
                stream = UUID(stream)
            except (TypeError, ValueError):
                stream = str(stream)  # an edited SQLite id: kept as found, the audit reports it
        return Notification(id=row[0], originator_id=stream, originator_version=row[2], topic=row[3],
                            state=bytes(row[4]) if row[4] is not None else b"")

    def head(self) -> int:
        """The highest notification id in this snapshot (0 for an empty log)."""
        return int(self._one(self._ledger, f"SELECT max({self._id_column}) FROM {self._events}") or 0)

    def events_by_stream(self) -> Iterator[Notification]:
        """Every event, stream after stream, each stream in version order."""
        for row in self._rows(self._ledger, f"SELECT {self._id_column}, originator_id, originator_version, topic, "
                              f"state FROM {self._events} ORDER BY originator_id, originator_version"):
            yield self._notification(row)

    def events_by_position(self, stop: int) -> Iterator[Notification]:
        """Every event up to notification id ``stop``, in notification order."""
        for row in self._rows(self._ledger, f"SELECT {self._id_column}, originator_id, originator_version, topic, "
                              f"state FROM {self._events} WHERE {self._id_column} <= %s ORDER BY {self._id_column}",
                              [stop]):
            yield self._notification(row)

    def stream_head(self, stream_id: str) -> int | None:
        """The last version of one stream (None: no such stream)."""
        key: Any = stream_id if self.settings.uses_postgres else UUID(stream_id).hex
        value = self._one(self._ledger, f"SELECT max(originator_version) FROM {self._events} "
                          "WHERE originator_id = %s", [key])
        return None if value is None else int(value)

    def holds(self, notification_id: int) -> bool:
        """Whether some event has this notification id."""
        return self._one(self._ledger, f"SELECT count(*) FROM {self._events} WHERE {self._id_column} = %s",
                         [notification_id]) > 0

    def snapshot_keys(self) -> dict[UUID, list[int]]:
        """Which stream has a snapshot at which versions (the states are read one at a time)."""
        found: dict[UUID, list[int]] = {}
        if self.has_snapshots:
            for stream, version in self._rows(self._ledger, f"SELECT originator_id, originator_version "
                                              f"FROM {self._snapshots} ORDER BY originator_id, originator_version"):
                found.setdefault(stream if isinstance(stream, UUID) else UUID(stream), []).append(int(version))
        return found

    def snapshot(self, stream_id: UUID, version: int) -> Notification:
        key: Any = stream_id if self.settings.uses_postgres else stream_id.hex
        row = self._ledger.execute(f"SELECT 0, originator_id, originator_version, topic, state FROM {self._snapshots} "
                                   f"WHERE originator_id = {self._p} AND originator_version = {self._p}",
                                   [key, version]).fetchone()
        return self._notification(row)

    # ---- the view --------------------------------------------------------------------------------
    def view_position(self) -> int:
        return int(self._one(self._view, f"SELECT max(notification_id) FROM {self._tracking} "
                             "WHERE application_name = %s", [APPLICATION]) or 0)

    def view_rows(self, table: str, columns: Sequence[str]) -> Iterator[Sequence[Any]]:
        """(id, *columns, doc) of every row of one view table."""
        yield from self._rows(self._view, f"SELECT id, {', '.join((*columns, 'doc'))} "
                              f"FROM {self._view_prefix}{table}")

    def view_totals(self, table: str, columns: Sequence[str]) -> Iterator[Sequence[Any]]:
        """Every row of one running-totals table, its key columns then its values."""
        yield from self._rows(self._view, f"SELECT {', '.join(columns)} FROM {self._view_prefix}{table}")
