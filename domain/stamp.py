"""Who and when: every event names its terminal, operator and device clock; the store adds its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Stamp:
    """The provenance of one command.

    ``server_time`` comes from the service's Clock port (a true edge, replaceable in tests);
    ``device_time`` is what the terminal's own clock said, kept for disputes.
    """

    terminal_id: UUID | None
    operator_no: str | None
    device_time: datetime | None
    server_time: datetime

    def event_fields(self) -> dict[str, object]:
        return {
            "terminal_id": self.terminal_id,
            "operator_no": self.operator_no,
            "device_time": self.device_time,
            "timestamp": self.server_time,
        }
