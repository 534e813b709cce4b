"""Who and when: every event names its terminal, operator and device clock; the store adds its own."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.errors import InvalidInput

_OPERATOR_NO = re.compile(r"^\d{2,4}$")


def check_operator_no(value: object) -> str:
    if not isinstance(value, str) or not _OPERATOR_NO.match(value):
        raise InvalidInput("operator_no must be 2-4 digits, e.g. '01'", field="operator_no")
    return value


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

    def __post_init__(self) -> None:
        if self.operator_no is not None:
            check_operator_no(self.operator_no)
        if self.device_time is not None and self.device_time.utcoffset() is None:
            raise InvalidInput("device_time must carry its UTC offset", field="device_time")

    def event_fields(self) -> dict[str, object]:
        return {
            "terminal_id": self.terminal_id,
            "operator_no": self.operator_no,
            "device_time": self.device_time,
            "timestamp": self.server_time,
        }
