"""The ledger view against an independent recomputation from the events, row by row.

The events are folded again with the projection's own ``rows.Folder`` into fresh rows (``DiskRows``),
the running totals are summed again from those rows (``aggregates.contributions``), and every row,
indexed column and total is compared with what the view holds. A difference is named by table and
row id (or total key) with the fields that differ.

Memory stays bounded on a big store: ``DiskRows`` keeps the most recently used rows in memory and
the others in a temporary SQLite file, and the comparison is a join inside that file.
"""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from adapters.raw_store import RawStore
from projections.aggregates import AGGREGATES, Aggregate, contributions
from projections.audit_report import AuditReport
from domain.z_report import z_report_id_for
from projections.reconciliation import batch_totals
from projections.rows import TERMINAL, TILL, TRANSACTION, Z_REPORT, Row
from projections.view_store import _COLUMNS, _column_values

ROW_TABLES = (TERMINAL, TILL, TRANSACTION, Z_REPORT)
KIND_OF_TABLE = {TERMINAL: "Terminal", TILL: "TillSession", TRANSACTION: "Transaction", Z_REPORT: "ZReport"}


class DiskRows:
    """A ``RowSet`` holding the most recently used rows in memory and the rest in SQLite."""

    def __init__(self, db: sqlite3.Connection, cache_rows: int = 4_000) -> None:
        self.db = db
        self.cache_rows = cache_rows
        self.cache: OrderedDict[tuple[str, str], Row] = OrderedDict()
        db.execute("CREATE TABLE rec (tbl TEXT, id TEXT, doc TEXT, PRIMARY KEY (tbl, id))")
        # Which transactions belong to which terminal batch (for the Z reports); both are set at opening.
        db.execute("CREATE TABLE rec_batch (terminal_id TEXT, batch_no TEXT, id TEXT, "
                   "PRIMARY KEY (terminal_id, batch_no, id))")

    def get(self, table: str, row_id: str) -> Row | None:
        key = (table, row_id)
        row = self.cache.get(key)
        if row is None:
            found = self.db.execute("SELECT doc FROM rec WHERE tbl = ? AND id = ?", key).fetchone()
            if found is None:
                return None
            row = json.loads(found[0])
            self._keep(key, row)
        else:
            self.cache.move_to_end(key)
        return row

    def put(self, table: str, row_id: str, row: Row) -> None:
        if table == TRANSACTION and row.get("version") == 1:  # put first when the transaction opens
            self.db.execute("INSERT OR IGNORE INTO rec_batch VALUES (?, ?, ?)",
                            (row.get("terminal_id"), row.get("batch_no"), row_id))
        self._keep((table, row_id), row)

    def batch(self, terminal_id: str, batch_no: str) -> list[Row]:
        """The transaction rows of one terminal batch, by id."""
        ids = [r[0] for r in self.db.execute("SELECT id FROM rec_batch WHERE terminal_id = ? AND batch_no = ? "
                                             "ORDER BY id", (terminal_id, batch_no))]
        return [row for row in (self.get(TRANSACTION, i) for i in ids) if row is not None]

    def _keep(self, key: tuple[str, str], row: Row) -> None:
        self.cache[key] = row
        self.cache.move_to_end(key)
        if len(self.cache) > self.cache_rows:
            self._write([self.cache.popitem(last=False) for _ in range(self.cache_rows // 2)])

    def _write(self, items: list[tuple[tuple[str, str], Row]]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO rec VALUES (?, ?, ?)",
                            [(t, i, json.dumps(row, ensure_ascii=False, sort_keys=True)) for (t, i), row in items])

    def flush(self) -> None:
        self._write(list(self.cache.items()))
        self.cache.clear()


class ZReportCheck:
    """Each Z report's figures against the batch's transactions as folded up to its BatchSettled.

    A Z report is a single-event stream, so no later event's prev_hash witnesses it, and the view
    keeps only its header: this recomputation (``reconciliation.batch_totals``, what the projection
    ran when it issued the report) is what catches a changed figure without a heads file."""

    def __init__(self, rows: DiskRows) -> None:
        self.rows = rows
        rows.db.execute("CREATE TABLE rec_z (id TEXT PRIMARY KEY, report TEXT)")

    def settled(self, event: Any) -> None:
        terminal = self.rows.get(TERMINAL, str(event.terminal_id))
        if terminal is None:
            return
        batch = self.rows.batch(terminal["id"], event.batch_no)
        report = batch_totals(event.batch_no, batch, [terminal])
        self.rows.db.execute("INSERT OR REPLACE INTO rec_z VALUES (?, ?)", (
            str(z_report_id_for(event.terminal_id, event.batch_no)), _canonical(report)))

    def issued(self, event: Any, notification_id: int, report: AuditReport) -> None:
        found = self.rows.db.execute("SELECT report FROM rec_z WHERE id = ?", (str(event.originator_id),)).fetchone()
        if found is None or _canonical(event.report) == found[0]:
            return
        expected, stated = json.loads(found[0]), json.loads(_canonical(event.report))
        shown = [f"{path} is {json.dumps(b, ensure_ascii=False)[:40]} in the Z report, "
                 f"{json.dumps(a, ensure_ascii=False)[:40]} from the events" for path, a, b in _leaves(expected, stated)]
        report.tamper("zreport", "its figures differ from the batch's transactions folded up to its BatchSettled "
                      f"({'; '.join(shown[:4])}): changed, or issued "
                      "by a service version that totalled otherwise", stream_id=str(event.originator_id),
                      kind="ZReport", version=event.originator_version, versions=(event.originator_version,),
                      notification_id=notification_id)


def _leaves(a: Any, b: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Every place two JSON documents differ, as (path, one, other)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _leaves(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _leaves(x, y, f"{path}[{i}]")
    elif a != b:
        yield path or "(all)", a, b


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _differences(expected: dict[str, Any], found: dict[str, Any], limit: int = 4, where: str = "in the view"
                 ) -> list[str]:
    names = [k for k in sorted(set(expected) | set(found)) if expected.get(k) != found.get(k)]
    shown = [f"{k} is {json.dumps(found.get(k), ensure_ascii=False)[:60]} {where}, "
             f"{json.dumps(expected.get(k), ensure_ascii=False)[:60]} from the events" for k in names[:limit]]
    return shown + ([f"and {len(names) - limit} more fields"] if len(names) > limit else [])


def _text(value: Any) -> Any:
    """An indexed column as stored: text columns hold text (SQLite would store 7 as '7')."""
    return value if value is None or isinstance(value, int) and not isinstance(value, bool) else str(value)


def compare_rows(raw: RawStore, rows: DiskRows, report: AuditReport) -> None:
    rows.flush()
    db = rows.db
    db.execute("CREATE TABLE seen (tbl TEXT, id TEXT, cols TEXT, doc TEXT, PRIMARY KEY (tbl, id))")
    for table in ROW_TABLES:
        columns = _COLUMNS[table]
        db.executemany("INSERT OR REPLACE INTO seen VALUES (?, ?, ?, ?)", (
            (table, str(r[0]), json.dumps([_text(v) for v in r[1:-1]]), r[-1])
            for r in raw.view_rows(table, columns)))
        for row_id, doc, cols, seen_doc in db.execute(
                "SELECT r.id, r.doc, s.cols, s.doc FROM rec r LEFT JOIN seen s ON s.tbl = r.tbl AND s.id = r.id "
                "WHERE r.tbl = ?", [table]):
            report.view_rows += 1
            _compare_one(raw, table, row_id, json.loads(doc), cols, seen_doc, report)
        for row_id, seen_doc in db.execute("SELECT s.id, s.doc FROM seen s LEFT JOIN rec r ON r.tbl = s.tbl "
                                           "AND r.id = s.id WHERE s.tbl = ? AND r.id IS NULL", [table]):
            report.view_rows += 1
            _orphan(table, row_id, seen_doc, report)


def _orphan(table: str, row_id: str, seen_doc: str, report: AuditReport) -> None:
    """A view row no event makes: its stream's events were deleted (or the row was added)."""
    try:
        found = json.loads(seen_doc)
    except ValueError:
        found = {}
    position = found.get("position") if isinstance(found, dict) else None
    version = found.get("version") if isinstance(found, dict) and table == TRANSACTION else None
    version = 1 if table == Z_REPORT else version  # a Z report is one event
    report.tamper("view", "the view holds this row but no event in the store makes it: the stream's events were "
                  "deleted (or the row was added)" + (f"; the view last applied notification {position}"
                                                      if isinstance(position, int) else ""),
                  table=table, row_id=row_id, stream_id=row_id, kind=KIND_OF_TABLE[table],
                  version=version if isinstance(version, int) else None,
                  versions=tuple(range(1, version + 1))[:50] if isinstance(version, int) else (),
                  notification_id=position if isinstance(position, int) else None)


def _compare_one(raw: RawStore, table: str, row_id: str, expected: Row, cols: str | None, seen_doc: str | None,
                 report: AuditReport) -> None:
    where: dict[str, Any] = {"table": table, "row_id": row_id, "stream_id": row_id, "kind": KIND_OF_TABLE[table]}
    if seen_doc is None:
        report.tamper("view", "the events make this row but the view does not hold it (deleted from the view)",
                      **where)
        return
    try:
        found = json.loads(seen_doc)
    except ValueError:
        report.tamper("view", "the row's stored document is not JSON (edited)", **where)
        return
    problems = _differences(expected, found) if found != expected else []
    if not problems and seen_doc != json.dumps(expected, ensure_ascii=False, sort_keys=True):
        problems.append("its stored document was rewritten (the same values in other bytes)")
    stored_columns = json.loads(cols or "[]")
    expected_columns = [_text(v) for v in _column_values(table, expected)]
    problems += [f"column {name} is {stored!r}, the events give {wanted!r}"
                 for name, stored, wanted in zip(_COLUMNS[table], stored_columns, expected_columns) if stored != wanted]
    if not problems:
        return
    message = "differs from the events: " + "; ".join(problems)
    applied = found.get("position") if isinstance(found, dict) else None
    if isinstance(applied, int) and applied > int(expected.get("position") or 0) and not raw.holds(applied):
        # The view applied an event of this stream that the store no longer holds.
        head = raw.stream_head(row_id) or 0
        gone = found.get("version") if table == TRANSACTION else None
        gone = gone if isinstance(gone, int) and gone > head else head + 1  # the chain names a deletion inside
        where.update(notification_id=applied, version=gone, versions=tuple(range(head + 1, gone + 1))[:50])
        message = (f"the view applied notification {applied} to this row, which the store no longer holds "
                   f"(the stream now ends at version {head}, so version {gone} was deleted); the row {message}")
    report.tamper("view", message, **where)


def compare_totals(raw: RawStore, rows: DiskRows, report: AuditReport) -> None:
    """The running totals, summed again from the recomputed transaction rows."""
    db = rows.db
    for aggregate in AGGREGATES:
        for prefix in ("rec_", "seen_"):
            db.execute(f"CREATE TABLE {prefix}{aggregate.table} ({', '.join(aggregate.keys)}, "
                       f"{', '.join(aggregate.values)}, PRIMARY KEY ({', '.join(aggregate.keys)}))")
    increments = {a.table: _increment(a) for a in AGGREGATES}
    for (doc,) in db.execute("SELECT doc FROM rec WHERE tbl = ?", [TRANSACTION]):
        for aggregate, key, values in contributions(json.loads(doc)):
            db.execute(increments[aggregate.table], [*key, *values])
    for aggregate in AGGREGATES:
        columns = (*aggregate.keys, *aggregate.values)
        db.executemany(f"INSERT OR REPLACE INTO seen_{aggregate.table} VALUES ({', '.join('?' * len(columns))})",
                       raw.view_totals(aggregate.table, columns))
        for expected, found in _joined_totals(db, aggregate):
            report.view_totals += 1
            if expected == found:
                continue
            width = len(aggregate.keys)
            key = "/".join(str(k) for k in (expected or found or ())[:width])
            wanted = expected[width:] if expected else (0,) * len(aggregate.values)
            stored = found[width:] if found else (0,) * len(aggregate.values)
            shown = ", ".join(f"{name} is {f} in the view, {e} from the events"
                              for name, e, f in zip(aggregate.values, wanted, stored) if e != f)
            report.tamper("totals", f"running total differs: {shown}", table=aggregate.table, row_id=key)


def _increment(aggregate: Aggregate) -> str:
    columns = (*aggregate.keys, *aggregate.values)
    updates = ", ".join(f"{v} = {v} + excluded.{v}" for v in aggregate.values)
    return (f"INSERT INTO rec_{aggregate.table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({', '.join(aggregate.keys)}) DO UPDATE SET {updates}")


def _joined_totals(db: sqlite3.Connection, aggregate: Aggregate) -> Iterator[tuple[Any, Any]]:
    """(recomputed, stored) rows by key; None where a side has no row. A row of zeros counts as no row:
    the view keeps a total that went back to zero, the recomputation never makes one."""
    keys, values = aggregate.keys, aggregate.values
    on = " AND ".join(f"a.{k} = b.{k}" for k in keys)
    a_counts = "(" + " OR ".join(f"a.{v} != 0" for v in values) + ")"
    b_counts = "(" + " OR ".join(f"b.{v} != 0" for v in values) + ")"
    b_columns = ", ".join(f"b.{c}" for c in (*keys, *values))
    width = len(keys) + len(values)
    for row in db.execute(f"SELECT a.*, {b_counts}, {b_columns} FROM rec_{aggregate.table} a "
                          f"LEFT JOIN seen_{aggregate.table} b ON {on} WHERE {a_counts}"):
        yield tuple(row[:width]), (tuple(row[width + 1:]) if row[width] else None)
    for row in db.execute(f"SELECT a.* FROM seen_{aggregate.table} a LEFT JOIN rec_{aggregate.table} b ON {on} "
                          f"WHERE {a_counts} AND (b.{keys[0]} IS NULL OR NOT {b_counts})"):
        yield None, tuple(row)
