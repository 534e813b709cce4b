"""The ledger view projection: terminals, till sessions and transactions as rows, a page at a time.

Built on ``eventsourcing.projection.Projection`` with a tracking-recorder view (``view_store``).
``process_page`` folds a whole page of notifications in memory (``rows.Folder``), then writes every
changed row and the page's last position in one view transaction. API tokens are not projected.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Any

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import InfrastructureFactory, Tracking
from eventsourcing.projection import Projection
from eventsourcing.utils import Environment

from adapters.group_commit import run_alone
from adapters.settings import Settings
from adapters.store import ledger_environment
from domain.errors import AlreadyExists
from domain.ledger import Ledger
from domain.stamp import Stamp
from projections.aggregates import contributions, deltas
from projections.reconciliation import batch_totals
from projections.rows import TERMINAL, TILL, TRANSACTION, Z_REPORT, Folder, MemoryRows, Row, business_day
from projections.view_store import PostgresLedgerView, SQLiteLedgerView, _LedgerViewSql

NAME = "ledger_view"
_TABLE_OF = {"Terminal": TERMINAL, "TillSession": TILL, "Transaction": TRANSACTION, "ZReport": Z_REPORT}
LedgerViewStore = _LedgerViewSql


class _PageRows:
    """RowSet over the view for one page: rows read once, changes kept until the page is written."""

    def __init__(self, view: LedgerViewStore) -> None:
        self.view = view
        self.loaded = MemoryRows()
        self.changed = MemoryRows()
        # What each transaction row added to the running totals before this page touched it.
        self.before: dict[str, list[Any]] = {}

    def _keep(self, table: str, row_id: str, row: Row) -> None:
        self.loaded.put(table, row_id, row)
        if table == TRANSACTION:
            self.before[row_id] = contributions(row)

    def prefetch(self, table: str, ids: list[str]) -> None:
        missing = [i for i in ids if self.loaded.get(table, i) is None]
        for row_id, row in self.view.rows(table, missing).items():
            self._keep(table, row_id, row)

    def get(self, table: str, row_id: str) -> Row | None:
        row = self.changed.get(table, row_id) or self.loaded.get(table, row_id)
        if row is None:
            row = self.view.row(table, row_id)
            if row is not None:
                self._keep(table, row_id, row)
        return row

    def increments(self) -> dict[tuple[str, tuple[str, ...]], list[int]]:
        totals: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        for row_id, row in self.changed.tables.get(TRANSACTION, {}).items():
            deltas(self.before.get(row_id, []), contributions(row), totals)
        return totals

    def put(self, table: str, row_id: str, row: Row) -> None:
        self.changed.put(table, row_id, row)


class LedgerViewProjection(Projection[Any]):
    name = NAME

    def __init__(self, view: LedgerViewStore, application_name: str = Ledger.name,
                 cutoff: time = time(0, 0), clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__(view)
        self.application_name = application_name
        self.folder = Folder(cutoff)
        self.clock = clock

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """One event alone (the library's interface); the runner uses process_page."""
        rows = _PageRows(self.view)
        self.folder.apply(rows, domain_event, tracking.notification_id)
        self.view.apply_page(rows.changed, tracking, rows.increments())

    def process_page(self, notifications: list[Any], ledger: Ledger) -> None:
        rows = _PageRows(self.view)
        wanted: dict[str, list[str]] = {}
        relevant = []
        for notification in notifications:
            aggregate = notification.topic.rpartition(":")[2].partition(".")[0]
            table = _TABLE_OF.get(aggregate)
            if table is not None:
                wanted.setdefault(table, []).append(str(notification.originator_id))
                relevant.append(notification)
        for table, ids in wanted.items():
            rows.prefetch(table, ids)
        for notification in relevant:
            event = ledger.mapper.to_domain_event(notification)
            self.folder.apply(rows, event, notification.id)
            if type(event).__qualname__ == "TillSession.BatchSettled":
                self._issue_z_report(rows, event, ledger)
        self.view.apply_page(rows.changed, Tracking(self.application_name, notifications[-1].id), rows.increments())

    def _issue_z_report(self, rows: _PageRows, settled: Any, ledger: Ledger) -> None:
        """Record the batch's Z report, from every transaction of the batch folded so far. It is
        saved before the page commits: a page replayed after a crash finds it issued (same id)."""
        terminal = rows.get(TERMINAL, str(settled.terminal_id))
        if terminal is None:
            return
        batch = {r["id"]: r for r in self.view.find_transactions(terminal_id=terminal["id"], batch_no=settled.batch_no)}
        batch.update((row_id, row) for row_id, row in rows.changed.tables.get(TRANSACTION, {}).items()
                     if row["terminal_id"] == terminal["id"] and row["batch_no"] == settled.batch_no)
        report = batch_totals(settled.batch_no, sorted(batch.values(), key=lambda r: r["id"]), [terminal])
        settled_at = settled.timestamp.astimezone(UTC).isoformat()
        day = business_day(settled_at, terminal["parameters"].get("timezone", "Asia/Shanghai"), self.folder.cutoff)
        stamp = Stamp(settled.terminal_id, settled.operator_no, None, self.clock())
        try:
            run_alone(ledger, Ledger.issue_z_report(stamp, settled.terminal_id, settled.batch_no, day, settled_at,
                                                    report))
        except AlreadyExists:
            pass

    def position(self) -> int:
        return self.view.max_tracking_id(self.application_name) or 0

    def reset(self) -> None:
        self.view.reset(self.application_name)


def open_view(settings: Settings) -> LedgerViewStore:
    """The ledger view's store: tables in the ledger's PostgreSQL schema, or ledger_view.sqlite."""
    env = ledger_environment(settings, create_tables=True)
    env[f"{NAME.upper()}_SQLITE_DBNAME"] = str(settings.data_dir / f"{NAME}.sqlite")
    factory = InfrastructureFactory.construct(Environment(NAME, env))
    view_class = PostgresLedgerView if settings.uses_postgres else SQLiteLedgerView
    return factory.tracking_recorder(view_class)  # type: ignore[arg-type,no-any-return]
