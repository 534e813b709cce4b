"""A magnetic-stripe swipe from a keyboard-wedge reader: track 2 typed as one line, ``;PAN=YYMMSSS…?``.

Only the PAN, expiry and service code are kept (the discretionary data is dropped); the PAN lives in a
``CardSecret``, masked wherever it could be shown. A line that is not a valid track 2 is CardUnreadable,
and the message never repeats the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.card_data import luhn_valid
from domain.hardware import CardUnreadable
from terminal_agent.emv import Brand, CardSecret, mask_pan

# Start sentinel, PAN, separator, YYMM, service code, discretionary data, end sentinel (an LRC may follow).
_TRACK2 = re.compile(r";?(\d{12,19})=(\d{4})(\d{3})(\d*)(?:\?.?)?")


@dataclass(frozen=True, slots=True, repr=False)
class SwipeRead:
    """What a swipe gives: the PAN (held by ``card``), expiry YYMM, service code, masked PAN and brand."""

    card: CardSecret
    expiry: str
    service_code: str
    masked_pan: str
    brand: Brand

    @property
    def pan(self) -> str:
        return self.card.pan

    @property
    def is_chip_card(self) -> bool:
        """Service code 2xx/6xx: the card has a chip, so a swipe is only a fallback."""
        return self.service_code[0] in "26"

    def __repr__(self) -> str:
        return (f"SwipeRead(masked_pan={self.masked_pan!r}, brand={self.brand!r}, "
                f"service_code={self.service_code!r})")


def brand_of_pan(pan: str) -> Brand:
    """The scheme by BIN: 62 UnionPay, 4 Visa, 51-55 and 2221-2720 Mastercard."""
    if pan.startswith("62"):
        return "unionpay"
    if pan.startswith("4"):
        return "visa"
    if 51 <= int(pan[:2]) <= 55 or 2221 <= int(pan[:4]) <= 2720:
        return "mastercard"
    return "other"


def parse_track2(line: str) -> SwipeRead:
    """Parse one swiped line (with or without sentinels; a track 1 read before it is skipped)."""
    text = line.strip()
    if "%" in text and ";" in text:
        text = text[text.index(";"):]  # readers that send track 1 then track 2 on one line
    match = _TRACK2.fullmatch(text)
    if match is None:
        raise CardUnreadable("the swipe is not a track 2 (expected ;PAN=YYMM service code …?)")
    pan, expiry, service_code = match.group(1), match.group(2), match.group(3)
    if not 13 <= len(pan) <= 19 or not luhn_valid(pan):
        raise CardUnreadable("the swiped card number fails its check digit: swipe again")
    if not 1 <= int(expiry[2:]) <= 12:
        raise CardUnreadable("the swiped expiry date is not a month: swipe again")
    return SwipeRead(CardSecret(pan), expiry, service_code, mask_pan(pan), brand_of_pan(pan))
