"""UnitOfWork over the Ledger's repository, with an optional writer-side aggregate cache.

The cache is optimistic: a cached aggregate may be stale if another process wrote to it, but then
saving it violates the events table's primary key (stream id, version), the save fails as a whole
and the caller retries with fresh loads. The primary key, not the cache, is the source of truth.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain.aggregate import LedgerAggregate
from domain.errors import NotFound
from domain.ledger import Ledger

TAgg = TypeVar("TAgg", bound=LedgerAggregate)


def _spread(aggregate_id: UUID) -> float:
    """1.0-1.5, fixed per aggregate: terminals provisioned together must not all come due for a
    refresh in the same group commit (a latency spike every max_age seconds)."""
    return 1.0 + (aggregate_id.int % 512) / 1024


class AggregateCache:
    """Least-recently-used aggregates of one writer thread (not thread-safe by design)."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._entries: OrderedDict[UUID, tuple[LedgerAggregate, float]] = OrderedDict()

    def get(self, aggregate_id: UUID) -> tuple[LedgerAggregate, float] | None:
        """The cached aggregate and when it was last brought up to date from the store."""
        entry = self._entries.get(aggregate_id)
        if entry is not None:
            self._entries.move_to_end(aggregate_id)
        return entry

    def put(self, aggregate: LedgerAggregate, loaded_at: float) -> None:
        if self.max_size == 0:
            return
        self._entries[aggregate.id] = (aggregate, loaded_at)
        self._entries.move_to_end(aggregate.id)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def evict(self, aggregate_ids: Any) -> None:
        for aggregate_id in aggregate_ids:
            self._entries.pop(aggregate_id, None)

    def clear(self) -> None:
        self._entries.clear()


class WorkingSet:
    """The aggregates that one batch of commands reads and changes (a UnitOfWork)."""

    def __init__(self, ledger: Ledger, cache: AggregateCache | None, *, optimistic: bool = False) -> None:
        self.ledger = ledger
        self.cache = cache
        # Optimistic: trust the cache and skip reads for streams expected to be new; the save's
        # primary key catches any mistake and the caller re-runs the command non-optimistically.
        self.optimistic = optimistic
        self.touched: dict[UUID, LedgerAggregate] = {}
        self.loaded_at: dict[UUID, float] = {}

    def find(self, aggregate_id: UUID, cls: type[TAgg], *, at_least_version: int = 0,
             max_age: float | None = None, expect_new: bool = False) -> TAgg | None:
        aggregate = self.touched.get(aggregate_id)
        if aggregate is None:
            cached = self.cache.get(aggregate_id) if self.cache is not None else None
            if cached is not None and cached[0].version >= at_least_version:
                aggregate, self.loaded_at[aggregate_id] = cached
                if max_age is not None and time.monotonic() - cached[1] > max_age * _spread(aggregate_id):
                    aggregate = self._catch_up(aggregate)
            elif expect_new and self.optimistic:
                return None
            else:
                aggregate = self._load(aggregate_id)
            if aggregate is None:
                return None
            self.touched[aggregate_id] = aggregate
        if not isinstance(aggregate, cls):
            raise NotFound(f"{aggregate_id} is not a {cls.__name__}")
        return aggregate

    def get(self, aggregate_id: UUID, cls: type[TAgg], *, max_age: float | None = None) -> TAgg:
        found = self.find(aggregate_id, cls, max_age=max_age)
        if found is None:
            raise NotFound(f"no {cls.__name__} with id {aggregate_id}")
        return found

    def add(self, aggregate: LedgerAggregate) -> None:
        self.touched[aggregate.id] = aggregate
        self.loaded_at[aggregate.id] = time.monotonic()

    def recorded_event(self, aggregate_id: UUID, version: int) -> Any | None:
        # A retry can arrive in the same group as its original, before that one is saved.
        touched = self.touched.get(aggregate_id)
        for event in touched.pending_events if touched is not None else ():
            if event.originator_version == version:
                return event
        events = list(self.ledger.events.get(aggregate_id, gt=version - 1, lte=version))
        return events[0] if events else None

    def _load(self, aggregate_id: UUID) -> LedgerAggregate | None:
        loaded_at = time.monotonic()
        try:
            aggregate = self.ledger.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        self.loaded_at[aggregate_id] = loaded_at
        return aggregate  # type: ignore[no-any-return]

    def _catch_up(self, aggregate: LedgerAggregate) -> LedgerAggregate:
        """Apply what other processes recorded since the cached version: one indexed read that
        usually returns nothing, instead of replaying the whole stream."""
        loaded_at = time.monotonic()
        for event in self.ledger.events.get(aggregate.id, gt=aggregate.version):
            aggregate = event.mutate(aggregate)
        self.loaded_at[aggregate.id] = loaded_at
        return aggregate

    def changed(self) -> list[LedgerAggregate]:
        return [a for a in self.touched.values() if a.pending_events]

    def remember(self) -> None:
        """After a successful save: keep what this batch touched for the next one."""
        if self.cache is None:
            return
        for aggregate_id, aggregate in self.touched.items():
            self.cache.put(aggregate, self.loaded_at.get(aggregate_id, time.monotonic()))

    def forget(self) -> None:
        """After a failed save or a half-applied command: drop every touched object."""
        if self.cache is not None:
            self.cache.evict(self.touched)
