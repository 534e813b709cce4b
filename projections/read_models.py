"""The read side of one process: the ledger view, its runner, and read-your-writes waiting.

Built by the composition roots (``api.app`` for ``till serve``, ``api.cli`` for ``till project``).
Projection names accepted on the command line are in ``PROJECTIONS``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from adapters.settings import Settings
from domain.ledger import Ledger
from projections.ledger_view import NAME as LEDGER_VIEW, LedgerViewProjection, LedgerViewStore, open_view
from projections.runner import PageRunner, PositionListener, PositionWatch, poll_until

PROJECTIONS = (LEDGER_VIEW,)


@dataclass
class ReadModels:
    settings: Settings
    ledger: Ledger
    view: LedgerViewStore
    projection: LedgerViewProjection
    runner: PageRunner
    watch: PositionWatch
    _stop: threading.Event = field(default_factory=threading.Event)
    _listener: PositionListener | None = None

    @classmethod
    def open(cls, settings: Settings, ledger: Ledger) -> ReadModels:
        view = open_view(settings)
        projection = LedgerViewProjection(view, ledger.name, settings.business_day_cutoff)
        watch = PositionWatch(projection.position())
        runner = PageRunner(ledger, projection, settings, page_size=settings.projection_page_size, watch=watch)
        return cls(settings, ledger, view, projection, runner, watch)

    def start(self, *, embedded: bool) -> None:
        """Follow the log in this process (``embedded``), and on PostgreSQL listen for the position
        published by whichever process runs the projection."""
        if embedded:
            self.runner.start()
        if self.settings.uses_postgres:
            self._listener = PositionListener(self.settings, LEDGER_VIEW, self.watch, self._stop,
                                              self.projection.position)
            self._listener.start()

    def wait_for(self, position: int, timeout: float) -> bool:
        """Whether the view reached ``position`` (a notification id from an append) within ``timeout``."""
        if self.settings.uses_postgres:
            return self.watch.wait(position, timeout) or self._refresh() >= position
        # SQLite has no NOTIFY: another process may run the projection, so look at the view itself.
        return poll_until(lambda: self._refresh() >= position, timeout)

    def _refresh(self) -> int:
        self.watch.advance(self.projection.position())
        return self.watch.position

    def status(self) -> list[dict[str, Any]]:
        position, head = self.projection.position(), self.runner.head()
        failure = self.runner.failure
        return [{"name": LEDGER_VIEW, "position": position, "head": head, "lag": max(0, head - position),
                 "running_here": self.runner.active,
                 "failure": None if failure is None else type(failure).__name__}]

    def close(self) -> None:
        self._stop.set()
        self.runner.stop()
        self.view.datastore.close()  # type: ignore[attr-defined]
