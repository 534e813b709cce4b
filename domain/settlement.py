"""SettlementFile: one acquirer settlement file (清算文件) as imported, line by line, immutably.

The id derives from the file's SHA-256, so importing the same file twice is recognisably the same
import (AlreadyExists) and never doubles the acquirer's lines. Lines carry the masked card number
only; a full PAN anywhere in the file is refused by the card-data guard like any other field.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.aggregate import LedgerAggregate
from domain.card_data import check_masked_pan
from domain.errors import InvalidInput
from domain.money import check_currency, check_minor
from domain.stamp import Stamp

LINE_TYPES = ("sale", "void", "refund")
_FORMATS = {"settlement_date": r"\d{4}-\d{2}-\d{2}", "merchant_no": r"\d{15}", "terminal_no": r"\d{8}",
            "batch_no": r"\d{6}", "trace_no": r"\d{6}", "rrn": r"\d{12}", "auth_code": r"[0-9A-Z]{0,6}"}
MAX_LINES = 100_000


def settlement_id_for(file_sha256: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"till-ledger:settlement-file:{file_sha256}")


def check_line(line: dict[str, Any], number: int) -> dict[str, Any]:
    """One settlement line, validated; errors name the line (1 = first line after the header)."""
    def bad(field: str, what: str) -> InvalidInput:
        return InvalidInput(f"line {number}: {field} {what}", field=f"lines[{number}].{field}")

    for field, pattern in _FORMATS.items():
        value = line.get(field)
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            raise bad(field, f"must match {pattern}")
    if line.get("type") not in LINE_TYPES:
        raise bad("type", f"must be one of {', '.join(LINE_TYPES)}")
    try:
        check_masked_pan(line.get("masked_pan", ""))
        check_currency(line.get("currency"))
        for field in ("amount_minor", "fee_minor", "net_minor"):
            check_minor(line.get(field), field)
    except InvalidInput as exc:
        raise bad(str(exc.extra.get("field", "value")), "is invalid: " + exc.detail) from None
    if line["amount_minor"] <= 0 or line["fee_minor"] < 0 or line["net_minor"] != line["amount_minor"] - line["fee_minor"]:
        raise bad("net_minor", "must equal amount_minor - fee_minor, with a positive amount and no negative fee")
    return line


class SettlementFile(LedgerAggregate):
    class SettlementReported(LedgerAggregate.Created):  # the name DESIGN.md gives it
        file_sha256: str
        file_name: str
        lines: list[dict[str, Any]]

        def apply(self, settlement: SettlementFile) -> None:
            settlement.file_sha256, settlement.file_name = self.file_sha256, self.file_name
            settlement.lines = [dict(line) for line in self.lines]

    if TYPE_CHECKING:
        file_sha256: str
        file_name: str
        lines: list[dict[str, Any]]

    @classmethod
    def import_file(cls, stamp: Stamp, file_sha256: str, file_name: str, lines: list[dict[str, Any]]) -> SettlementFile:
        if not re.fullmatch(r"[0-9a-f]{64}", file_sha256):
            raise InvalidInput("file_sha256 must be 64 lowercase hex digits", field="file_sha256")
        if not lines or len(lines) > MAX_LINES:
            raise InvalidInput(f"a settlement file holds 1 to {MAX_LINES} lines", field="lines")
        checked = [check_line(dict(line), number) for number, line in enumerate(lines, start=1)]
        return cls._start(cls.SettlementReported, settlement_id_for(file_sha256), stamp, file_sha256=file_sha256,
                          file_name=file_name[:200], lines=checked)
