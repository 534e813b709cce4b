"""Ports: what the domain needs from the outside world, as Protocols. Adapters implement them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from domain.aggregate import LedgerAggregate

TAgg = TypeVar("TAgg", bound=LedgerAggregate)


class Clock(Protocol):
    """The service's own time (the store's clock on every event)."""

    def now(self) -> datetime: ...


class PasswordHasher(Protocol):
    """Operator passwords are kept only as slow, salted hashes (argon2 in production)."""

    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...


class UnitOfWork(Protocol):
    """The aggregates one command reads and changes; everything it changes is saved atomically."""

    def find(self, aggregate_id: UUID, cls: type[TAgg], *, at_least_version: int = 0,
             max_age: float | None = None, expect_new: bool = False) -> TAgg | None:
        """The aggregate, or None if it does not exist (a cached copy older than max_age is brought up to date).

        ``expect_new`` lets an optimistic unit of work skip the read for a stream the caller is about
        to create: if it exists after all, the save conflicts and the command is re-run from fresh loads.
        """
        ...

    def get(self, aggregate_id: UUID, cls: type[TAgg], *, max_age: float | None = None) -> TAgg:
        """Like find, but a missing aggregate is NotFound."""
        ...

    def add(self, aggregate: LedgerAggregate) -> None:
        """A new aggregate to save with this unit of work."""
        ...

    def recorded_event(self, aggregate_id: UUID, version: int) -> Any | None:
        """The stored event at one version (for idempotent-retry checks)."""
        ...
