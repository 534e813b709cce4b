"""The append protocol shared by every client-written stream (transactions, till sessions).

A client states the version it believes the stream is at. If that is the current version the event
is recorded as the next one. If the stream has moved on and the event recorded at the stated
position is the same statement, the append is a retry and its recorded result is returned
(idempotent). Anything else is a ``VersionConflict`` carrying the current version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.aggregate import LedgerAggregate
from domain.chain import event_hash
from domain.errors import Forbidden, InvalidInput, OutOfSequence, VersionConflict
from domain.ports import UnitOfWork
from domain.stamp import Stamp


@dataclass(frozen=True, slots=True)
class AppendRequest:
    stream_id: UUID
    expected_version: int
    event_type: str
    fields: Mapping[str, Any]
    stamp: Stamp


@dataclass(slots=True)
class AppendResult:
    stream_id: UUID
    version: int
    event_type: str
    recorded_at: datetime
    hash: str
    replayed: bool
    position: int | None = None  # the notification id, filled in once saved


Handler = Callable[[UnitOfWork, Any, AppendRequest], LedgerAggregate]


def same_statement(event: Any, request: AppendRequest) -> bool:
    """Whether a recorded event says exactly what the request says (ignoring server-added fields)."""
    if type(event).__name__ != request.event_type:
        return False
    stamp = request.stamp
    if (event.terminal_id, event.operator_no, event.device_time) != (
            stamp.terminal_id, stamp.operator_no, stamp.device_time):
        return False
    return all(getattr(event, name) == request.fields.get(name) for name in type(event).client_fields)


def append(uow: UnitOfWork, cls: type[LedgerAggregate], handlers: Mapping[str, Handler],
           request: AppendRequest, owner: Callable[[Any], UUID | None]) -> AppendResult:
    """Run one client append against a stream of aggregate class ``cls``."""
    handler = handlers.get(request.event_type)
    if handler is None:
        raise InvalidInput(f"unknown event type '{request.event_type}' for this stream; "
                           f"expected one of {', '.join(sorted(handlers))}", field="event.type")
    if request.expected_version < 0:
        raise InvalidInput("expected_version must not be negative", field="expected_version")
    stream = uow.find(request.stream_id, cls, at_least_version=request.expected_version,
                      expect_new=request.expected_version == 0)
    current = stream.version if stream is not None else 0
    if stream is not None and owner(stream) != request.stamp.terminal_id:
        raise Forbidden("this stream belongs to another terminal")
    if current != request.expected_version:
        if current > request.expected_version:
            recorded = uow.recorded_event(request.stream_id, request.expected_version + 1)
            if recorded is not None and same_statement(recorded, request):
                return AppendResult(request.stream_id, recorded.originator_version, request.event_type,
                                    recorded.timestamp, event_hash(recorded), replayed=True)
        raise VersionConflict(
            f"the stream is at version {current}, not {request.expected_version}; re-read it before appending",
            current_version=current)
    if stream is None and request.expected_version == 0 and not getattr(handlers[request.event_type],
                                                                        "creates_stream", False):
        raise OutOfSequence(f"a new stream must begin with its opening event, not {request.event_type}")
    stream = handler(uow, stream, request)
    event = stream.pending_events[-1]
    return AppendResult(request.stream_id, event.originator_version, request.event_type, event.timestamp,
                        stream.chain_head, replayed=False)


def creates_stream(handler: Handler) -> Handler:
    """Mark the one handler allowed to start a new stream."""
    handler.creates_stream = True  # type: ignore[attr-defined]
    return handler
