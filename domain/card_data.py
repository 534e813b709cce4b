"""The PCI guard: full PANs and track data never enter an event.

Every event field is scanned when the event is created (see ``domain.aggregate``). A Luhn-valid run
of 13–19 digits (spaces or dashes allowed between digits) or a track-1/track-2/tag-57 pattern is
refused with ``CardDataRejected``, naming the field but never echoing the value.

Fields whose format is checked strictly elsewhere and cannot carry a PAN by construction (hex
digests, the argon2 hash) are exempt, because a 64-hex digest has a fair chance of containing a
Luhn-valid digit run. Product barcodes are exempt only when they carry a valid GS1 check digit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from domain.errors import CardDataRejected, InvalidInput

# A run of digit groups (single spaces or dashes between them) not glued to letters or digits.
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])\d+(?:[ -]\d+)*(?![0-9A-Za-z])")
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
# Track 2 "PAN=YYMM…", its chip equivalent (tag 57 / 9F6B: PAN nibbles, 'D', YYMM) and track 1 "B PAN ^".
_TRACK = re.compile(r"\d{12,19}[=Dd]\d{4}|%?[Bb]\d{12,19}\^")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# A canonical UUID is an id, never a card number, though about 1 in 10,000 random ones has all-digit
# leading groups that join into a Luhn-valid run (and would be refused at random).
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SAFE_KEY = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_MASKED_PAN = re.compile(r"^(\d{6})([*]{3,9})(\d{4})$")

EXEMPT_FIELDS = frozenset(
    {"pan_token", "prev_hash", "image_sha256", "receipt_sha256", "token_hash", "password_hash"}
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def gs1_valid(digits: str) -> bool:
    """GS1 check digit (EAN-8, UPC-A, EAN-13, GTIN-14)."""
    if len(digits) not in (8, 12, 13, 14) or not digits.isdigit():
        return False
    body, check = digits[:-1], int(digits[-1])
    weighted = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - weighted % 10) % 10 == check


def looks_like_card_data(text: str) -> bool:
    if _UUID.match(text):
        return False
    if _TRACK.search(text):
        return True
    for match in _DIGIT_RUN.finditer(text):
        # Try every span of whole groups, so a PAN written in groups with a stray digit after it
        # ("dddd dddd dddd dddd d") or glued to other text ("card dddddddddddddddd x2")
        # are caught, without testing arbitrary substrings of one long number (false alarms).
        groups = re.split(r"[ -]", match.group(0))
        for start in range(len(groups)):
            digits = ""
            for group in groups[start:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and luhn_valid(digits):
                    return True
    return False


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield f"{path} (a key)", str(key)
            # Never put a key into a path that an error message will show: it may be the card number.
            yield from _strings(item, f"{path}.{key}" if _SAFE_KEY.match(str(key)) else f"{path}.<key>")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")
    elif isinstance(value, int) and not isinstance(value, bool):
        yield path, str(value)


def guard_fields(fields: Mapping[str, Any]) -> None:
    """Raise CardDataRejected if any field could hold a full PAN or track data."""
    for name, value in fields.items():
        if name in EXEMPT_FIELDS:
            continue
        if name == "barcode" and isinstance(value, str) and gs1_valid(value):
            continue  # product codes carry a GS1 check digit; a random PAN rarely does
        for path, text in _strings(value, name):
            if looks_like_card_data(text):
                raise CardDataRejected(
                    f"field '{path}' looks like a full card number or track data; "
                    "send the masked PAN (first 6 + last 4) and the keyed token only",
                    field=path,
                )
            if _UNSTORABLE.search(text):
                raise InvalidInput(f"field '{path}' holds characters that cannot be stored (NUL or a lone "
                                   "surrogate); send valid UTF-8 text", field=path)


def check_masked_pan(value: str) -> str:
    match = _MASKED_PAN.match(value)
    if not match or not 13 <= len(value) <= 19:
        raise InvalidInput(
            "masked_pan must be the first 6 and last 4 digits with '*' between, "
            "e.g. 622202******1234",
            field="masked_pan",
        )
    return value


def check_hex64(value: str, field: str) -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise InvalidInput(f"{field} must be 64 lowercase hex characters (SHA-256)", field=field)
    return value
