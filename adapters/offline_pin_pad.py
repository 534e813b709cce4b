"""The development PIN pad: a ``domain.hardware.PinPad`` that takes the digits from a callback (the
counter's keyboard, a script) and has the card verify them as an offline plaintext PIN.

The PIN is only ever a local variable here: it is not logged, returned, stored or put in an error, and
the reference is dropped as soon as the VERIFY command is built.
"""

from __future__ import annotations

from collections.abc import Callable

from domain.hardware import CardChannel, PinResult
from terminal_agent.emv import parse_verify, pin_try_counter, verify_pin_apdu

MAX_ENTRY_ATTEMPTS = 3  # malformed entries (too short, letters) before we treat it as cancelled


def _well_formed(pin: str) -> bool:
    return pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12


class OfflinePinPad:
    """``read_pin(tries_left)`` returns the digits the cardholder typed, or None when they cancel;
    ``tries_left`` is the card's PIN try counter when it tells it (GET DATA 9F17), else None."""

    def __init__(self, read_pin: Callable[[int | None], str | None]) -> None:
        self._read_pin = read_pin

    def __repr__(self) -> str:
        return "OfflinePinPad()"

    def verify_offline(self, channel: CardChannel) -> PinResult:
        tries_left = pin_try_counter(channel)
        if tries_left == 0:
            return PinResult("blocked", tries_left=0)
        for _ in range(MAX_ENTRY_ATTEMPTS):
            pin = self._read_pin(tries_left)
            if pin is None:
                return PinResult("cancelled", tries_left=tries_left)
            if not _well_formed(pin):
                del pin  # not a PIN the card could check: ask again, the card's counter untouched
                continue
            command = verify_pin_apdu(pin)
            del pin
            try:
                _, sw = channel.transmit(command)
            finally:
                del command
            return parse_verify(sw)
        return PinResult("cancelled", tries_left=tries_left)
