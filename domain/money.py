"""Money: integer minor units plus an ISO 4217 currency. Never floats."""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.errors import CurrencyMismatch, InvalidMoney

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def check_minor(value: object, field: str = "amount_minor") -> int:
    """Accept only real ints (not bools, not floats) for minor units."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMoney(f"{field} must be an integer number of minor units", field=field)
    return value


def check_currency(value: object) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise InvalidMoney("currency must be an ISO 4217 code like 'CNY'", field="currency")
    return value


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units (fen for CNY) of one currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        check_minor(self.minor)
        check_currency(self.currency)

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __str__(self) -> str:
        sign = "-" if self.minor < 0 else ""
        whole, cents = divmod(abs(self.minor), 100)
        return f"{sign}{whole}.{cents:02d} {self.currency}"


# ISO 4217 minor-unit exponents that are not 2 (the common ones; every other currency uses 2).
MINOR_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3,
                "LYD": 3, "OMR": 3, "TND": 3}


def minor_digits(currency: str | None) -> int:
    return MINOR_DIGITS.get(currency or "", 2)


def decimal_text(minor: int, currency: str | None) -> str:
    """``-12345, "CNY"`` -> ``"-123.45"``; ``500, "JPY"`` -> ``"500"`` (integer arithmetic only)."""
    digits = minor_digits(currency)
    whole, fraction = divmod(abs(minor), 10 ** digits)
    sign = "-" if minor < 0 else ""
    return f"{sign}{whole}.{fraction:0{digits}d}" if digits else f"{sign}{whole}"
