"""The service's clock (a true edge: tests pass a fixed or stepping clock instead)."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
