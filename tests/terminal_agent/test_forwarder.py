"""The forwarder after a long outage: the backlog drains in journal order, each row once, and the
cashier's own flush gets through between its rows instead of waiting for the whole backlog."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

from terminal_agent.forwarder import Forwarder
from terminal_agent.journal import Journal


class SlowService:
    """The ServiceClient port's inspectable fake: each append takes a few ms and is remembered."""

    def __init__(self) -> None:
        self.received: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def append(self, path: str, envelope: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.003)
        with self.lock:
            self.received.append((envelope["stream_id"], envelope["expected_version"]))
        return {"replayed": False}

    def healthy(self) -> bool:
        return True


def journal_rows(journal: Journal, stream_id: str, count: int) -> None:
    for version in range(1, count + 1):
        journal.append("transaction", stream_id, version, {"stream_id": stream_id, "expected_version": version,
                                                           "event": {"type": "AmountConfirmed"}})


def test_a_flush_of_the_sale_in_hand_gets_between_the_rows_of_a_long_backlog(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    service = SlowService()
    forwarder = Forwarder(journal, service)  # type: ignore[arg-type]
    backlog, sale = str(uuid.uuid4()), str(uuid.uuid4())
    journal_rows(journal, backlog, 300)
    try:
        draining = threading.Thread(target=forwarder.flush)
        draining.start()
        while len(service.received) < 5:
            time.sleep(0.001)
        journal_rows(journal, sale, 1)
        started = time.monotonic()
        result = forwarder.flush(sale)
        waited = time.monotonic() - started
        draining.join(timeout=30)

        assert result.drained and result.sent == 1 and forwarder.online
        assert waited < 0.5, f"the cashier waited {waited:.2f} s behind the backlog"
        at = service.received.index((sale, 1))
        assert at < 100, "the sale was sent only after most of the backlog"
        assert [v for s, v in service.received if s == backlog] == list(range(1, 301))  # in order, each once
        assert journal.backlog().queued == 0
    finally:
        journal.close()
