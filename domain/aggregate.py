"""Base aggregate: chains every event to its predecessor and refuses card data in any field.

Subclasses declare their events as nested classes of ``LedgerAggregate.Event`` (or ``Created``)
and trigger them through ``_record``/``_start``, which add the stamp and ``prev_hash``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import itertools
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.card_data import guard_fields
from domain.chain import GENESIS, event_hash
from domain.stamp import Stamp

TLedgerAggregate = TypeVar("TLedgerAggregate", bound="LedgerAggregate")

# Advanced once per event created (atomic under the GIL). A unit of work reads it before and after a
# command: if a command raised but the sequence moved by more than the read itself, it may have left
# events on an aggregate, and its group must be replayed from fresh loads.
EVENT_SEQUENCE = itertools.count()


class LedgerAggregate(Aggregate):
    """An aggregate whose events form a SHA-256 hash chain."""

    if TYPE_CHECKING:  # state attributes; not annotations at run time (they would become __init__ args)
        chain_head: str

    class Event(Aggregate.Event):
        terminal_id: UUID | None
        operator_no: str | None
        device_time: datetime | None
        prev_hash: str

        # Fields the client states; an idempotent retry must repeat them exactly.
        client_fields = ()  # type: tuple[str, ...]  (unannotated: a class attribute, not an event field)

        def mutate(self, aggregate: Any) -> Any:
            aggregate = super().mutate(aggregate)
            aggregate.chain_head = event_hash(self)
            return aggregate

    class Created(Event, Aggregate.Created):
        pass

    @classmethod
    def _start(
        cls: type[TLedgerAggregate],
        event_class: type[Any],
        aggregate_id: UUID,
        stamp: Stamp,
        **fields: Any,
    ) -> TLedgerAggregate:
        guard_fields(fields)
        next(EVENT_SEQUENCE)
        return cls._create(event_class, id=aggregate_id, prev_hash=GENESIS, **stamp.event_fields(), **fields)

    def _record(self, event_class: type[Any], stamp: Stamp, **fields: Any) -> None:
        guard_fields(fields)
        next(EVENT_SEQUENCE)
        self.trigger_event(event_class, prev_hash=self.chain_head, **stamp.event_fields(), **fields)
