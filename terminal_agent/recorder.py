"""Records the counter's events: journal first (durable), then forward while the cashier waits.

The recorder knows each open stream's version. Journaling an event takes the next version; the
forward that follows either lands it, leaves it queued (offline: the flow carries on where it may),
or brings back the service's refusal, in which case the row is withdrawn and the version given back
so the flow can correct the input and record again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from terminal_agent.forwarder import Forwarder
from terminal_agent.journal import Journal
from terminal_agent.service_client import ServiceRefused, ServiceUnreachable

StreamKind = Literal["transaction", "till-session"]


@dataclass
class StreamRef:
    kind: StreamKind
    stream_id: str
    version: int = 0


@dataclass(frozen=True, slots=True)
class Recorded:
    version: int
    forwarded: bool  # False: journaled and queued (the service is unreachable)


class Recorder:
    def __init__(self, journal: Journal, forwarder: Forwarder, now: Any) -> None:
        self.journal, self.forwarder, self._now = journal, forwarder, now

    def device_time(self) -> str:
        moment: datetime = self._now()
        return moment.isoformat()

    def envelope(self, stream: StreamRef, event: dict[str, Any], operator_no: str | None) -> dict[str, Any]:
        return {"expected_version": stream.version, "operator_no": operator_no,
                "device_time": self.device_time(), "event": event}

    def record(self, stream: StreamRef, event: dict[str, Any], operator_no: str | None, *,
               must_forward: bool = False) -> Recorded:
        """Journal ``event`` as the stream's next version, then try to forward the stream.

        Raises ServiceRefused (the version is given back) when the service says no, and
        ServiceUnreachable when ``must_forward`` and the service cannot be reached — the event then stays
        journaled and queued, and will be forwarded later.
        """
        envelope = self.envelope(stream, event, operator_no)
        seq = self.journal.append(stream.kind, stream.stream_id, stream.version + 1, envelope)
        stream.version += 1
        result = self.forwarder.flush(stream.stream_id, withdraw_seq=seq)
        if result.refused:
            refusal = result.refused[0]
            if refusal.row.seq == seq:
                stream.version -= 1  # withdrawn: the correction takes this version
            raise refusal.error
        if result.unreachable is not None:
            if must_forward:
                raise result.unreachable
            self.forwarder.kick()
            return Recorded(stream.version, forwarded=False)
        return Recorded(stream.version, forwarded=True)

    def drain(self, stream: StreamRef) -> None:
        """Everything journaled for ``stream`` is at the service; else ServiceUnreachable or ServiceRefused."""
        result = self.forwarder.flush(stream.stream_id)
        if result.refused:
            raise result.refused[0].error
        if result.unreachable is not None:
            raise result.unreachable
        if not result.drained:
            raise ServiceUnreachable("events of this transaction are still queued")
