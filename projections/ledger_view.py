"""The ledger view projection: terminals, till sessions and transactions as rows, a page at a time.

Built on ``eventsourcing.projection.Projection`` with a tracking-recorder view (``view_store``).
``process_page`` folds a whole page of notifications in memory (``rows.Folder``), then writes every
changed row and the page's last position in one view transaction. API tokens are not projected.
"""

from __future__ import annotations

from datetime import time
from typing import Any

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import InfrastructureFactory, Tracking
from eventsourcing.projection import Projection
from eventsourcing.utils import Environment

from adapters.settings import Settings
from adapters.store import ledger_environment
from domain.ledger import Ledger
from projections.rows import TERMINAL, TILL, TRANSACTION, Folder, MemoryRows, Row
from projections.view_store import PostgresLedgerView, SQLiteLedgerView, _LedgerViewSql

NAME = "ledger_view"
_TABLE_OF = {"Terminal": TERMINAL, "TillSession": TILL, "Transaction": TRANSACTION}
LedgerViewStore = _LedgerViewSql


class _PageRows:
    """RowSet over the view for one page: rows read once, changes kept until the page is written."""

    def __init__(self, view: LedgerViewStore) -> None:
        self.view = view
        self.loaded = MemoryRows()
        self.changed = MemoryRows()

    def prefetch(self, table: str, ids: list[str]) -> None:
        missing = [i for i in ids if self.loaded.get(table, i) is None]
        for row_id, row in self.view.rows(table, missing).items():
            self.loaded.put(table, row_id, row)

    def get(self, table: str, row_id: str) -> Row | None:
        row = self.changed.get(table, row_id) or self.loaded.get(table, row_id)
        if row is None:
            row = self.view.row(table, row_id)
            if row is not None:
                self.loaded.put(table, row_id, row)
        return row

    def put(self, table: str, row_id: str, row: Row) -> None:
        self.changed.put(table, row_id, row)


class LedgerViewProjection(Projection[Any]):
    name = NAME

    def __init__(self, view: LedgerViewStore, application_name: str = Ledger.name,
                 cutoff: time = time(0, 0)) -> None:
        super().__init__(view)
        self.application_name = application_name
        self.folder = Folder(cutoff)

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """One event alone (the library's interface); the runner uses process_page."""
        rows = _PageRows(self.view)
        self.folder.apply(rows, domain_event, tracking.notification_id)
        self.view.apply_page(rows.changed, tracking)

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
            self.folder.apply(rows, ledger.mapper.to_domain_event(notification), notification.id)
        self.view.apply_page(rows.changed, Tracking(self.application_name, notifications[-1].id))

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
