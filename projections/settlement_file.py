"""The acquirer settlement file format (CSV) and its parser. Documented in docs/settlement-file.md.

UTF-8 (a BOM is accepted), comma-separated, one header row naming the columns (any order):

    settlement_date,merchant_no,terminal_no,batch_no,trace_no,rrn,auth_code,masked_card,amount,fee,net,type[,currency]

Amounts are decimals in the currency's unit with at most its minor digits (``123.45`` CNY); they
become integer minor units here, without floating point. ``currency`` defaults to CNY.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from domain.errors import InvalidInput
from domain.money import minor_digits

REQUIRED = ("settlement_date", "merchant_no", "terminal_no", "batch_no", "trace_no", "rrn", "auth_code",
            "masked_card", "amount", "fee", "net", "type")
MAX_BYTES = 20 * 1024 * 1024


def to_minor(text: str, currency: str, *, field: str, line: int) -> int:
    digits = minor_digits(currency)
    pattern = r"-?\d{1,15}" + (rf"(\.\d{{1,{digits}}})?" if digits else "")
    if not re.fullmatch(pattern, text.strip()):
        raise InvalidInput(f"line {line}: {field} must be a decimal amount with at most {digits} decimals",
                           field=f"lines[{line}].{field}")
    whole, _, fraction = text.strip().partition(".")
    negative = whole.startswith("-")
    value = abs(int(whole)) * 10 ** digits + int((fraction or "0").ljust(digits, "0")[:digits] or "0")
    return -value if negative else value


def parse_settlement_csv(data: bytes) -> list[dict[str, Any]]:
    """The file's lines as dicts the domain validates (SettlementFile.import_file)."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"a settlement file is at most {MAX_BYTES // (1024 * 1024)} MiB", field="file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the settlement file must be UTF-8 text", field="file") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise InvalidInput(f"the header lacks {', '.join(missing)} (see docs/settlement-file.md)", field="header")
    reader.fieldnames = header
    lines = []
    try:
        for number, raw in enumerate(reader, start=1):
            if None in raw or any(value is None for value in raw.values()):
                raise InvalidInput(f"line {number}: expected {len(header)} columns", field=f"lines[{number}]")
            cells = {key: value.strip() for key, value in raw.items()}
            currency = cells.get("currency") or "CNY"
            lines.append({
                "settlement_date": cells["settlement_date"], "merchant_no": cells["merchant_no"],
                "terminal_no": cells["terminal_no"], "batch_no": cells["batch_no"], "trace_no": cells["trace_no"],
                "rrn": cells["rrn"], "auth_code": cells["auth_code"], "masked_pan": cells["masked_card"],
                "currency": currency, "type": cells["type"].lower(),
                **{f"{name}_minor": to_minor(cells[name], currency, field=name, line=number)
                   for name in ("amount", "fee", "net")},
            })
    except csv.Error as exc:
        raise InvalidInput(f"the settlement file is not valid CSV: {exc}", field="file") from None
    return lines
