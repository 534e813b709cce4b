"""Ports for the counter's hardware (card reader, PIN pad, signature pad, receipt printer) and their errors.

The terminal agent drives these; adapters implement them over pyscard and python-escpos, and the
project's virtual hardware implements them for tests and demos. Nothing here does I/O.

    HardwareError                      (codes are stable: the agent records them as reasons)
    ├── CardReaderUnavailable          no PC/SC service or no such reader
    ├── CardAbsent                     no card in the reader (yet)
    ├── CardRemoved                    the card was pulled while we were talking to it
    ├── CardUnreadable                 the card answered something we cannot use (bad TLV, bad status word)
    │   └── UnsupportedCard            the card offers no application this terminal accepts
    ├── PrinterUnavailable             nothing answers at the printer's address
    ├── PrinterOffline                 the printer answers but reports itself offline (cover open, error)
    └── PaperOut                       the printer reports its paper roll empty
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


class HardwareError(Exception):
    """Base of every error the counter hardware raises on purpose; ``code`` is stable."""

    code = "hardware_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CardReaderUnavailable(HardwareError):
    code = "reader_unavailable"


class CardAbsent(HardwareError):
    code = "card_absent"


class CardRemoved(HardwareError):
    code = "card_removed"


class CardUnreadable(HardwareError):
    code = "card_unreadable"


class UnsupportedCard(CardUnreadable):
    code = "unsupported_card"


class PrinterUnavailable(HardwareError):
    code = "printer_unavailable"


class PrinterOffline(HardwareError):
    code = "printer_offline"


class PaperOut(HardwareError):
    code = "paper_out"


EntryMode = Literal["chip", "contactless"]


class CardChannel(Protocol):
    """An open connection to one card. ``transmit`` returns the response data and the final status
    word (e.g. 0x9000); T=0 ``61xx`` (GET RESPONSE) and ``6Cxx`` (resend with Le=xx) are already
    handled. Raises CardRemoved when the card goes away, CardUnreadable on a malformed response."""

    def transmit(self, apdu: bytes) -> tuple[bytes, int]: ...

    def close(self) -> None: ...


class CardReader(Protocol):
    """One card slot: contact (``entry_mode`` chip) or contactless."""

    name: str
    entry_mode: EntryMode

    def present(self) -> bool:
        """The reader exists and its service answers (the start-of-day self-check)."""
        ...

    def wait_for_card(self, timeout_s: float) -> CardChannel | None:
        """A channel to the card once one is inserted or tapped; None after ``timeout_s`` without one.
        Raises CardReaderUnavailable when the reader or its service is gone."""
        ...


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    online: bool
    paper: Literal["ok", "near_end", "out"]

    @property
    def ready(self) -> bool:
        return self.online and self.paper != "out"


class ReceiptPrinter(Protocol):
    """An ESC/POS receipt printer. ``print_receipt`` sends one job; it does not prove the paper came
    out — the caller checks ``status()`` before and after ("sent is not printed")."""

    name: str
    columns: int  # 32 (58 mm paper) or 48 (80 mm)

    def status(self) -> PrinterStatus:
        """Raises PrinterUnavailable when nothing answers."""
        ...

    def print_receipt(self, text: str, reference: str) -> None:
        """``text``: lines already laid out to ``columns`` display columns; ``reference``: put in a QR
        code under the text. Raises PrinterUnavailable, PrinterOffline or PaperOut."""
        ...


PinOutcome = Literal["verified", "wrong", "blocked", "cancelled"]


@dataclass(frozen=True, slots=True)
class PinResult:
    """What a PIN entry came to. Never holds the PIN."""

    outcome: PinOutcome
    tries_left: int | None = None


class PinPad(Protocol):
    """Takes the cardholder's PIN and has the card verify it offline. The PIN never leaves the
    implementation: not returned, not logged, not stored."""

    def verify_offline(self, channel: CardChannel) -> PinResult: ...


class SignaturePad(Protocol):
    """Captures the cardholder's signature as an image (PNG bytes); None when the customer refuses."""

    def capture(self, reference: str) -> bytes | None: ...
