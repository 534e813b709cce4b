"""What must hold after a fault, each checked against the store itself (not the service's answers):

* ``acknowledgements``: every append acknowledged to a client is in the store exactly once — at the
  version (and position) it was acknowledged with, as the event type that was sent — and the store
  holds nothing the clients never sent (a retried append recorded a second time would show up as an
  event at a version nobody sent, or as a type other than the one sent there).
* ``projection``: the ledger view equals independent recomputations from the events: (1) a clean fold
  of the whole log in memory, row for row; (2) each transaction's status, outcome, amount and brand
  from a fold written here from the events; (3) the day report the service serves (from the view's
  running totals) equals the one ``projections.reconciliation.day_report`` computes from the rows, as
  tests/projections/test_random_day.py checks, and its gross per terminal, brand and kind equals the
  independent fold's.
* ``host_and_ledger``: every sale the acquirer host approved is Authorized in the ledger, or was
  reversed at the host and is Reversed (or never authorized) in the ledger; nothing is authorized in
  the ledger that the host did not approve, with that RRN and auth code.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from adapters.acquirer_journal import JournalEntry
from adapters.store import libpq_conninfo
from api.routers.reports import build_day_report
from api.services import Services
from projections.reconciliation import day_report
from projections.rows import TERMINAL, TILL, TRANSACTION, Folder, MemoryRows, Row
from tests.faults.load import Book

# Recorded by the service from the host's answers (or by the reversal worker), never sent by a client.
SERVICE_RECORDED = frozenset({"AuthorizationRequested", "Authorized", "Declined", "AuthorizationNotSent",
                              "OutcomeUnknown", "Reversed"})
AT_MOST_ONCE = frozenset({"AuthorizationRequested", "Authorized", "Declined", "OutcomeUnknown", "Reversed",
                          "TransactionOpened", "TransactionCompleted", "TransactionCancelled", "TillOpened"})
SHOWN = 5  # problems listed per check (the counts are complete)


@dataclass
class StoredEvent:
    stream_id: str
    version: int
    type: str  # the event class name, e.g. "AmountEntered"
    aggregate: str  # "Transaction", "TillSession", …
    position: int
    event: Any


@dataclass
class Store:
    """The whole log, read once: by (stream, version) and in order."""

    events: list[StoredEvent]
    by_key: dict[tuple[str, int], StoredEvent]
    duplicate_keys: int  # (stream, version) stored more than once: the primary key should make it 0


def read_store(services: Services) -> Store:
    ledger = services.ledger
    events: list[StoredEvent] = []
    start = 1
    while notes := list(ledger.recorder.select_notifications(start=start, limit=2_000)):
        for note in notes:
            event = ledger.mapper.to_domain_event(note)
            aggregate, _, name = type(event).__qualname__.partition(".")
            events.append(StoredEvent(str(note.originator_id), note.originator_version, name, aggregate, note.id,
                                      event))
        start = notes[-1].id + 1
    with psycopg.connect(libpq_conninfo(services.settings)) as conn:
        duplicates = conn.execute(sql.SQL(
            "SELECT count(*) FROM (SELECT originator_id, originator_version FROM {}.ledger_events "
            "GROUP BY 1, 2 HAVING count(*) > 1) d").format(sql.Identifier(services.settings.database_schema)))
        duplicate_keys = int(duplicates.fetchone()[0])  # type: ignore[index]
    by_key: dict[tuple[str, int], StoredEvent] = {}
    for stored in events:
        by_key[(stored.stream_id, stored.version)] = stored
    return Store(events, by_key, duplicate_keys)


# ---- 1. acknowledged appends: in the store exactly once ------------------------------------------


@dataclass
class AckCheck:
    acknowledged: int  # distinct (stream, version) acknowledged
    replayed: int  # acknowledgements that were a retry answered "replayed"
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)


def acknowledgements(book: Book, store: Store) -> AckCheck:
    acked: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for ack in book.acks:
        acked[(ack.stream_id, ack.version)].append(ack)
    check = AckCheck(acknowledged=len(acked), replayed=sum(a.replayed for a in book.acks))
    for (stream_id, version), acks in acked.items():
        stored = store.by_key.get((stream_id, version))
        types = {a.type for a in acks if a.type is not None}
        positions = {a.position for a in acks if a.position is not None}
        if stored is None:
            check.lost.append(f"{stream_id} v{version} {types or ''}: acknowledged, not in the store")
        elif types and types != {stored.type}:
            check.lost.append(f"{stream_id} v{version}: acknowledged as {types}, the store has {stored.type}")
        elif positions and positions != {stored.position}:
            check.lost.append(f"{stream_id} v{version}: acknowledged at position {positions}, stored at "
                              f"{stored.position}")
    check.duplicated.extend(f"{store.duplicate_keys} (stream, version) stored twice" for _ in
                            range(1 if store.duplicate_keys else 0))
    streams = {stream_id for stream_id, _ in book.attempts}
    per_stream: dict[str, Counter[str]] = defaultdict(Counter)
    for stored in store.events:
        if stored.stream_id not in streams:
            continue
        per_stream[stored.stream_id][stored.type] += 1
        sent = book.attempts.get((stored.stream_id, stored.version))
        if stored.type in SERVICE_RECORDED:
            if sent is not None and sent != stored.type:
                check.duplicated.append(f"{stored.stream_id} v{stored.version}: {stored.type} where the client "
                                        f"sent {sent}")
        elif sent is None:
            check.duplicated.append(f"{stored.stream_id} v{stored.version}: {stored.type} at a version no client "
                                    "sent (a retry recorded again?)")
        elif sent != stored.type:
            check.duplicated.append(f"{stored.stream_id} v{stored.version}: {stored.type} where the client sent "
                                    f"{sent}")
    for stream_id, types in per_stream.items():
        for name, count in types.items():
            if name in AT_MOST_ONCE and count > 1:
                check.duplicated.append(f"{stream_id}: {name} recorded {count} times")
    return check


# ---- 2. the view against recomputations from the events ------------------------------------------


@dataclass
class ProjectionCheck:
    rows: int
    differences: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences


def _json(row: Row) -> Row:
    # As the view stores a row (its doc column), so that both sides compare as JSON.
    loaded: Row = json.loads(json.dumps(row, ensure_ascii=False, sort_keys=True))
    return loaded


def clean_fold(store: Store, services: Services) -> MemoryRows:
    """The whole log folded in memory from position 1: what a rebuild of the view would hold."""
    rows = MemoryRows()
    folder = Folder(services.settings.business_day_cutoff)
    for stored in store.events:
        folder.apply(rows, stored.event, stored.position)
    return rows


@dataclass
class Sale:
    """A transaction as its events say, folded here (independent of projections/rows.py)."""

    terminal_id: str = ""
    kind: str = ""
    method: str = ""
    batch_no: str = ""
    trace_no: str = ""
    amount_minor: int | None = None
    brand: str | None = None
    status: str = "open"
    outcome: str | None = None
    stan: str | None = None
    rrn: str | None = None
    auth_code: str | None = None


def independent_sales(store: Store) -> dict[str, Sale]:
    sales: dict[str, Sale] = {}
    outcomes = {"AuthorizationRequested": "pending", "Authorized": "authorized", "Declined": "declined",
                "AuthorizationNotSent": None, "OutcomeUnknown": "unknown", "Reversed": "reversed"}
    for stored in store.events:
        if stored.aggregate != "Transaction":
            continue
        e = stored.event
        sale = sales.setdefault(stored.stream_id, Sale())
        if stored.type == "TransactionOpened":
            sale.terminal_id, sale.kind, sale.method = str(e.terminal_id), e.kind, e.payment_method
            sale.batch_no, sale.trace_no = e.batch_no, e.trace_no
        elif stored.type == "AmountEntered":
            sale.amount_minor = e.amount_minor
        elif stored.type == "CardPresented":
            sale.brand = e.brand
        elif stored.type in outcomes:
            sale.outcome = outcomes[stored.type]
            if stored.type == "AuthorizationRequested":
                sale.stan = e.stan
            if stored.type == "Authorized":
                sale.rrn, sale.auth_code = e.rrn, e.auth_code
        elif stored.type == "TransactionCompleted":
            sale.status = "completed"
        elif stored.type == "TransactionCancelled":
            sale.status = "cancelled"
    return sales


def projection(services: Services, store: Store) -> ProjectionCheck:
    views = services.read_models
    assert views is not None
    view = views.view
    differences: list[str] = []

    # (1) row for row against a clean fold of the whole log
    folded = clean_fold(store, services)
    in_view: dict[str, dict[str, Row]] = {}
    for table in (TERMINAL, TILL, TRANSACTION):
        in_view[table] = {r["id"]: r for r in view._select(f"SELECT doc FROM {view._prefix}{table}", [])}
        expected = {row_id: _json(row) for row_id, row in folded.tables.get(table, {}).items()}
        for row_id in sorted(set(expected) | set(in_view[table])):
            if expected.get(row_id) != in_view[table].get(row_id):
                differences.append(f"{table} {row_id}: view {_brief(in_view[table].get(row_id))} != clean fold "
                                   f"{_brief(expected.get(row_id))}")

    # (2) each transaction against the fold written here
    sales = independent_sales(store)
    for txn_id, sale in sales.items():
        row = in_view[TRANSACTION].get(txn_id)
        got = None if row is None else (row["status"], row["outcome"], row["kind"], row["payment_method"],
                                        row["amount_minor"], (row["card"] or {}).get("brand"))
        want = (sale.status, sale.outcome, sale.kind, sale.method, sale.amount_minor, sale.brand)
        if got != want:
            differences.append(f"transaction {txn_id}: view {got} != events {want}")

    # (3) the day report: running totals vs rows vs the independent fold
    now = datetime.now(UTC)
    terminals = in_view[TERMINAL]
    days = sorted({r["business_day"] for r in in_view[TRANSACTION].values()} |
                  {r["business_day"] for r in in_view[TILL].values()})
    independent_gross: Counter[tuple[str, str, str]] = Counter()
    for sale in sales.values():
        if sale.status == "completed" and (sale.method == "cash" or sale.outcome == "authorized"):
            brand = "cash" if sale.method == "cash" else (sale.brand or "other")
            terminal_no = terminals.get(sale.terminal_id, {}).get("terminal_no")
            independent_gross[(terminal_no, brand, sale.kind)] += (-1 if sale.kind in ("void", "refund") else 1) * (
                sale.amount_minor or 0)
    reported_gross: Counter[tuple[str, str, str]] = Counter()
    folded_txns = [_json(r) for r in folded.tables.get(TRANSACTION, {}).values()]
    folded_tills = [_json(r) for r in folded.tables.get(TILL, {}).values()]
    for day in days:
        served = build_day_report(views, day, None, now)
        tills = [r for r in in_view[TILL].values() if r["business_day"] == day]
        from_rows = day_report(day, [r for r in in_view[TRANSACTION].values() if r["business_day"] == day], tills,
                               list(terminals.values()), generated_at=now.isoformat())
        from_fold = day_report(day, folded_txns, folded_tills, list(terminals.values()), generated_at=now.isoformat())
        for section in ("lines", "totals", "declined", "reversed", "in_doubt", "cash"):
            if served[section] != from_rows[section]:
                differences.append(f"day {day} {section}: served from the running totals != recomputed from rows")
            if served[section] != from_fold[section]:
                differences.append(f"day {day} {section}: served != recomputed from a clean fold of the log")
        for line in served["lines"]:
            reported_gross[(line["terminal_no"], line["brand"], line["kind"])] += line["gross_minor"]
    if +reported_gross != +independent_gross:
        keys = sorted(set(reported_gross) | set(independent_gross), key=repr)
        differences.extend(f"gross {k}: report {reported_gross.get(k, 0)} != events {independent_gross.get(k, 0)}"
                           for k in keys if reported_gross.get(k, 0) != independent_gross.get(k, 0))
    return ProjectionCheck(rows=sum(len(t) for t in in_view.values()), differences=differences)


def _brief(row: Row | None) -> str:
    if row is None:
        return "missing"
    keys = ("status", "outcome", "amount_minor", "position", "version")
    return str({k: row.get(k) for k in keys if k in row})


# ---- 3. the acquirer host's approvals against the ledger -----------------------------------------


@dataclass
class HostCheck:
    host_approvals: int  # sales the host approved (including those reversed afterwards)
    reversed_at_host: int
    reversed_unseen_by_host: int = 0  # reversed in the ledger, never reached the host (it answered 25)
    problems: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.problems


def host_and_ledger(entries: list[JournalEntry], store: Store) -> HostCheck:
    """Matched by (terminal number, batch, STAN), as the host knows a request."""
    terminal_numbers = {s.stream_id: s.event.terminal_no for s in store.events
                        if s.aggregate == "Terminal" and s.type == "Registered"}
    sales = [e for e in entries if e.kind == "sale"]
    ledger = {(terminal_numbers.get(s.terminal_id), s.batch_no, s.stan): (txn_id, s)
              for txn_id, s in independent_sales(store).items() if s.stan is not None}
    check = HostCheck(host_approvals=sum(e.response_code == "00" for e in sales),
                      reversed_at_host=sum(e.state == "reversed" for e in sales))
    seen = set()
    for entry in sales:
        key = (entry.terminal_no, entry.batch_no, entry.stan)
        seen.add(key)
        found = ledger.get(key)
        where = f"host {entry.state} sale terminal {entry.terminal_no} batch {entry.batch_no} STAN {entry.stan}"
        if found is None:
            check.problems.append(f"{where}: no transaction in the ledger")
            continue
        txn_id, sale = found
        if entry.state in ("approved", "voided"):
            if sale.outcome != "authorized":
                check.problems.append(f"{where}: the ledger has {txn_id} {sale.outcome} (approved at the host, "
                                      "not recorded and not reversed)")
            elif (sale.rrn, sale.auth_code) != (entry.rrn, entry.auth_code):
                check.problems.append(f"{where}: the ledger has RRN {sale.rrn} / {sale.auth_code}, the host "
                                      f"{entry.rrn} / {entry.auth_code}")
        elif sale.outcome == "authorized":
            check.problems.append(f"{where}: the ledger has {txn_id} authorized")
        elif sale.outcome in ("pending", "unknown"):
            check.problems.append(f"{where}: the ledger still has {txn_id} {sale.outcome}")
    for key, (txn_id, sale) in ledger.items():
        check.reversed_unseen_by_host += key not in seen and sale.outcome == "reversed"
        if key not in seen and sale.outcome in ("authorized", "pending", "unknown"):
            check.problems.append(f"ledger {txn_id} {sale.outcome} (terminal {key[0]} batch {key[1]} STAN {key[2]}): "
                                  "the host has no such sale")
    return check
