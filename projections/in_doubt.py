"""In-doubt transactions (authorization pending or outcome unknown), as the ledger view knows them.

The reversal worker's memory across restarts: it asks here on start and every few seconds. The
view is brought up to the log's head first (bounded wait), so a request recorded just before a
crash is found once the projection has applied it.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from domain.ledger import Ledger
from projections.read_models import ReadModels

IN_DOUBT = ("pending", "unknown")


class ViewInDoubtSource:
    def __init__(self, ledger: Ledger, read_models: ReadModels, catch_up_timeout_s: float = 5.0) -> None:
        self.ledger, self.read_models, self.catch_up_timeout_s = ledger, read_models, catch_up_timeout_s

    async def in_doubt(self) -> list[UUID]:
        return await asyncio.to_thread(self._scan)

    def _scan(self) -> list[UUID]:
        head = self.ledger.recorder.max_notification_id() or 0
        self.read_models.wait_for(head, self.catch_up_timeout_s)  # what is there is still worth acting on
        view = self.read_models.view
        rows = [row for outcome in IN_DOUBT for row in view.find_transactions(outcome=outcome)]
        return [UUID(row["id"]) for row in rows]
