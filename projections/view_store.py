"""The ledger view's tables, on PostgreSQL or SQLite, written a page at a time with their tracking row.

A view is an eventsourcing tracking recorder: ``apply_page`` upserts every row a page of events
changed and advances the view's tracking position in ONE database transaction, so each event is
applied exactly once (a page replayed after a crash is refused by the tracking upsert and rolled
back whole), and ``reset`` empties the tables and the position so the view can be rebuilt from zero.

Rows are stored as JSON documents beside the few columns that searches and reports filter on.
The SQL is written once with ``%s`` placeholders; the SQLite variant swaps them for ``?``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from projections.aggregates import AGGREGATE_BY_TABLE, AGGREGATES, TILL_CASH, Aggregate
from projections.rows import TERMINAL, TILL, TRANSACTION, Z_REPORT, MemoryRows, Row

# table -> indexed columns besides id and doc (all text except amount_minor)
_COLUMNS: dict[str, tuple[str, ...]] = {
    TERMINAL: ("merchant_no", "terminal_no", "store_id"),
    TILL: ("terminal_id", "store_id", "business_day"),
    TRANSACTION: ("terminal_id", "merchant_no", "terminal_no", "store_id", "business_day", "kind", "status",
                  "rrn", "auth_code", "trace_no", "last4", "amount_minor", "original_transaction_id",
                  "till_session_id", "batch_no", "outcome"),
    Z_REPORT: ("terminal_id", "store_id", "business_day", "batch_no"),
}
_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    TILL: (("business_day", "store_id"),),
    TRANSACTION: (("business_day", "store_id"), ("rrn",), ("auth_code",), ("terminal_no", "trace_no"),
                  ("last4", "business_day"), ("original_transaction_id",), ("till_session_id",),
                  ("terminal_id", "batch_no"), ("business_day", "outcome"), ("outcome",)),
    Z_REPORT: (("business_day", "store_id"), ("terminal_id", "batch_no")),
}


def _column_values(table: str, row: Row) -> list[Any]:
    values = []
    for column in _COLUMNS[table]:
        if column == "last4":
            masked = (row.get("card") or {}).get("masked_pan")
            values.append(masked[-4:] if masked else None)
        else:
            values.append(row.get(column))
    return values


def _aggregate_sql(prefix: str) -> list[str]:
    statements = []
    for aggregate in AGGREGATES:
        keys = ", ".join(f"{k} TEXT NOT NULL" for k in aggregate.keys)
        values = ", ".join(f"{v} BIGINT NOT NULL" for v in aggregate.values)
        statements.append(f"CREATE TABLE IF NOT EXISTS {prefix}{aggregate.table} ({keys}, {values}, "
                          f"PRIMARY KEY ({', '.join(aggregate.keys)}))")
    return statements


def _table_sql(prefix: str) -> list[str]:
    statements = _aggregate_sql(prefix)
    for table, columns in _COLUMNS.items():
        typed = ", ".join(f"{c} {'BIGINT' if c == 'amount_minor' else 'TEXT'}" for c in columns)
        statements.append(f"CREATE TABLE IF NOT EXISTS {prefix}{table} (id TEXT PRIMARY KEY, {typed}, doc TEXT NOT NULL)")
        for columns_of_index in _INDEXES.get(table, ()):
            name = f"view_{table}_{'_'.join(columns_of_index)}_idx"  # an index takes its table's schema
            statements.append(f"CREATE INDEX IF NOT EXISTS {name} ON {prefix}{table} ({', '.join(columns_of_index)})")
    return statements


class _LedgerViewSql:
    """What both backends share; subclasses set ``_prefix`` (schema-qualified table prefix) and ``_p``."""

    _prefix = "view_"
    _p = "%s"

    def _q(self, sql: str) -> str:
        return sql if self._p == "%s" else sql.replace("%s", self._p)

    def _increment(self, aggregate: Aggregate) -> str:
        columns = (*aggregate.keys, *aggregate.values)
        # Unqualified columns in SET refer to the row already stored (PostgreSQL and SQLite alike).
        updates = ", ".join(f"{v} = {aggregate.table}.{v} + excluded.{v}" for v in aggregate.values)
        return self._q(f"INSERT INTO {self._prefix}{aggregate.table} AS {aggregate.table} ({', '.join(columns)}) "
                       f"VALUES ({', '.join(['%s'] * len(columns))}) "
                       f"ON CONFLICT ({', '.join(aggregate.keys)}) DO UPDATE SET {updates}")

    def _upsert(self, table: str) -> str:
        columns = ("id", *_COLUMNS[table], "doc")
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        return self._q(f"INSERT INTO {self._prefix}{table} ({', '.join(columns)}) "
                       f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT (id) DO UPDATE SET {updates}")

    # ---- writes ----------------------------------------------------------------------------------
    def apply_page(self, changed: MemoryRows, tracking: Tracking,
                   increments: dict[tuple[str, tuple[str, ...]], list[int]] | None = None) -> None:
        """The page's rows, its aggregate increments and its position: all or nothing."""
        with self.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
            # executemany: psycopg pipelines the statements (one round trip per page, not per row).
            for table, rows in changed.tables.items():
                curs.executemany(self._upsert(table), [
                    [row_id, *_column_values(table, row), json.dumps(row, ensure_ascii=False, sort_keys=True)]
                    for row_id, row in rows.items()])
            by_table: dict[str, list[list[Any]]] = {}
            for (table, key), values in sorted((increments or {}).items()):
                by_table.setdefault(table, []).append([*key, *values])
            for table, params in by_table.items():
                curs.executemany(self._increment(AGGREGATE_BY_TABLE[table]), params)
            self._insert_tracking(curs, tracking)  # type: ignore[attr-defined]

    def reset(self, application_name: str) -> None:
        with self.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
            for table in (*_COLUMNS, *AGGREGATE_BY_TABLE):
                curs.execute(f"DELETE FROM {self._prefix}{table}")
            curs.execute(self._q(f"DELETE FROM {self._tracking_table()} WHERE application_name = %s"),
                         [application_name])

    def _tracking_table(self) -> str:
        raise NotImplementedError

    # ---- reads -----------------------------------------------------------------------------------
    def _select(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(self._q(sql), list(params))
            return [json.loads(r["doc"]) for r in curs.fetchall()]

    def rows(self, table: str, ids: Iterable[str]) -> dict[str, Row]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Row] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ", ".join(["%s"] * len(chunk))
            for row in self._select(f"SELECT doc FROM {self._prefix}{table} WHERE id IN ({marks})", chunk):
                found[row["id"]] = row
        return found

    def row(self, table: str, row_id: str) -> Row | None:
        return self.rows(table, [row_id]).get(row_id)

    def find_transactions(self, **criteria: Any) -> list[Row]:
        """Transactions matching every given column (rrn, auth_code, terminal_no, trace_no, last4,
        business_day, amount_minor, store_id, original_transaction_id), oldest first."""
        unknown = set(criteria) - set(_COLUMNS[TRANSACTION])
        if unknown or not criteria:
            raise ValueError(f"search by {sorted(_COLUMNS[TRANSACTION])}")
        where = " AND ".join(f"{column} = %s" for column in criteria)
        rows = self._select(f"SELECT doc FROM {self._prefix}{TRANSACTION} WHERE {where}", list(criteria.values()))
        return sorted(rows, key=lambda r: (r["opened_at"], r["id"]))

    def aggregate_rows(self, aggregate: Aggregate, **equal: str) -> list[Row]:
        """Aggregate rows whose key columns equal the given values ("" keys read back as None).

        Read as plain tuples: a day of 200 terminals has ~7,500 line totals, and a dict per
        database row costs more than the query."""
        columns = (*aggregate.keys, *aggregate.values)
        where = " AND ".join([f"{column} = %s" for column in equal]
                             + [f"NOT ({' AND '.join(f'{v} = 0' for v in aggregate.values)})"])
        selected = ", ".join([f"NULLIF({k}, '')" for k in aggregate.keys] + list(aggregate.values))
        statement = self._q(f"SELECT {selected} FROM {self._prefix}{aggregate.table} WHERE {where}")
        rows = self._select_tuples(statement, [value or "" for value in equal.values()])
        return [dict(zip(columns, row)) for row in rows]

    def _select_tuples(self, statement: str, params: list[Any]) -> list[Sequence[Any]]:
        with self.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(statement, params)
            return list(curs.fetchall())

    def till_cash(self, till_ids: Sequence[str]) -> list[Row]:
        rows: list[Row] = []
        for till_id in till_ids:
            rows += self.aggregate_rows(TILL_CASH, till_session_id=till_id)
        return rows

    def stores(self) -> list[str]:
        """Every store id a registered terminal names (the accountant picks one)."""
        rows = self._select_tuples(self._q(f"SELECT DISTINCT store_id FROM {self._prefix}{TERMINAL} "
                                           "WHERE store_id IS NOT NULL"), [])
        return sorted(str(row[0]) for row in rows)

    def day(self, table: str, business_day: str, store_id: str | None = None) -> list[Row]:
        if store_id is None:
            return self._select(f"SELECT doc FROM {self._prefix}{table} WHERE business_day = %s", [business_day])
        return self._select(f"SELECT doc FROM {self._prefix}{table} WHERE business_day = %s AND store_id = %s",
                            [business_day, store_id])


class PostgresLedgerView(_LedgerViewSql, PostgresTrackingRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = self.datastore.schema
        self._prefix = f"{Identifier(schema).as_string(None)}.view_" if schema else "view_"
        self.sql_create_statements.extend(SQL(s) for s in _table_sql(self._prefix))  # type: ignore[arg-type]

    def _select_tuples(self, statement: str, params: list[Any]) -> list[Sequence[Any]]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, params)
            return curs.fetchall()

    def _tracking_table(self) -> str:
        return SQL("{}.{}").format(Identifier(self.datastore.schema),
                                   Identifier(self.tracking_table_name)).as_string(None)


class SQLiteLedgerView(_LedgerViewSql, SQLiteTrackingRecorder):
    _p = "?"


    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *_table_sql(self._prefix)]

    def _tracking_table(self) -> str:
        return "tracking"
