"""Sends the journal's queued events to the service in journal order, each exactly once.

"Exactly once" rests on the service: a row re-sent after a lost answer is the identical envelope at
the same version, which the service answers 200 ``replayed`` instead of appending it again. A row
the service refuses (4xx) is marked rejected and holds back the rest of its stream; the cashier sees
the count. A 5xx or no answer stops the pass; the background thread tries again later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from terminal_agent.journal import Journal, OutboxRow
from terminal_agent.service_client import ServiceClient, ServiceRefused, ServiceUnreachable

log = logging.getLogger("till.agent.forwarder")
CHUNK = 16  # rows sent per hold of the pass lock


@dataclass(frozen=True, slots=True)
class Refusal:
    row: OutboxRow
    error: ServiceRefused


@dataclass(frozen=True, slots=True)
class FlushResult:
    """``drained``: nothing of the asked stream(s) is left queued; ``refused``: rows the service said no to."""

    drained: bool
    sent: int
    refused: tuple[Refusal, ...] = ()
    unreachable: ServiceUnreachable | None = None


class Forwarder:
    """Flushes the outbox; one pass at a time (order matters), from the flow or the background thread."""

    def __init__(self, journal: Journal, client: ServiceClient, *, interval_s: float = 1.0,
                 on_change: Callable[[], None] | None = None) -> None:
        self._journal, self._client, self._interval_s = journal, client, interval_s
        self._on_change = on_change or (lambda: None)
        self._pass = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.online = True

    def flush(self, stream_id: str | None = None, *, withdraw_seq: int | None = None) -> FlushResult:
        """Forward queued rows (of one stream, or all). ``withdraw_seq``: the row the cashier is waiting
        for; if it is refused it is withdrawn (the flow corrects it at once) rather than left holding
        back its stream. Any other refused row is marked rejected."""
        sent, refused = 0, []
        try:
            while True:
                # The lock is held for a few rows at a time, not the whole backlog: after a long outage
                # the background pass may have hundreds to send, and the cashier's own flush (of the
                # sale in hand) must get between them. Each stream's rows still go in journal order.
                with self._pass:
                    rows = self._journal.queued(stream_id, limit=CHUNK)
                    if not rows:
                        break
                    for row in rows:
                        try:
                            self._client.append(row.path, row.envelope)
                        except ServiceRefused as exc:
                            if row.seq == withdraw_seq:
                                self._journal.withdraw(row.seq, exc.code, exc.detail)
                            else:
                                self._journal.mark_rejected(row.seq, exc.code, exc.detail)
                                log.warning("the service refused %s v%d of stream %s: %s", row.event_type,
                                            row.version, row.stream_id, exc.code)
                            refused.append(Refusal(row, exc))
                            break  # the stream's later rows depend on this one
                        self._journal.mark_forwarded(row.seq)
                        sent += 1
                        self._set_online(True)  # the service answers: the counter may sell by card again
                    else:
                        continue
                if withdraw_seq is not None:
                    break
        except ServiceUnreachable as exc:
            self._set_online(False)
            return FlushResult(False, sent, tuple(refused), exc)
        self._set_online(True)
        return FlushResult(not refused, sent, tuple(refused))

    def kick(self) -> None:
        """Ask the background thread for a pass now (e.g. after journaling while offline)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="till-agent-forwarder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            if self._journal.backlog().queued or not self.online:
                try:
                    self.flush()
                except Exception:  # noqa: BLE001 - the forwarder must outlive any one pass; the row stays queued
                    log.exception("forwarding pass failed; retrying later")
                if not self.online and self._client.healthy():
                    self._set_online(True)

    def _set_online(self, online: bool) -> None:
        if online != self.online:
            self.online = online
            self._on_change()
