"""The counter: what every flow shares (hardware, recorder, the open till) and the state the cashier sees.

The flows (``card_sale``, ``cash_sale``, ``receipt_desk``, ``till_desk``) move the counter through
these states; the UI shows the state and the queue length:

    OFF -> SELF_CHECK -> IDLE -> AMOUNT -> CONFIRM -> WAIT_CARD -> READING -> PIN -> AUTHORIZING
        -> SIGNATURE -> PRINTING -> IDLE  ...  SETTLING -> IDLE  ...  CLOSED
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from domain.hardware import CardReader, HardwareError, PinPad, ReceiptPrinter, SignaturePad
from domain.money import decimal_text
from terminal_agent.emv import TerminalConfig
from terminal_agent.journal import Journal
from terminal_agent.recorder import Recorder, StreamRef
from terminal_agent.service_client import ServiceClient


class State(enum.StrEnum):
    OFF = "off"
    SELF_CHECK = "self_check"
    IDLE = "idle"
    AMOUNT = "amount"
    CONFIRM = "confirm"
    WAIT_CARD = "wait_card"
    READING = "reading"
    PIN = "pin"
    AUTHORIZING = "authorizing"
    SIGNATURE = "signature"
    PRINTING = "printing"
    CASH = "cash"
    SETTLING = "settling"
    CLOSED = "closed"


class Cashier(Protocol):
    """The people at the counter, as the flows need them: the interactive UI or a script implements it."""

    def show(self, code: str, **values: Any) -> None:
        """A message (``terminal_agent.messages`` code) for the cashier and the customer."""
        ...

    def ask_amount(self, code: str) -> int | None:
        """An amount in minor units typed by the cashier; None: go back."""
        ...

    def confirm(self, code: str, **values: Any) -> bool:
        """The customer's yes or no (e.g. to the amount)."""
        ...

    def poll(self) -> str | None:
        """Non-blocking, while waiting for a card: a keyboard-wedge swipe line, "" if the cashier
        cancelled, None if nothing was typed."""
        ...

    def ask_pin(self, tries_left: int | None) -> str | None:
        """The cardholder's PIN for the PIN pad; None: cancelled. Never kept by the implementation."""
        ...

    def waiver_reason(self) -> str | None:
        """Why the signature is waived when the pad has none; None: try the pad again."""
        ...


@dataclass
class Counter:
    """One terminal's counter, built by ``terminal_agent.bootstrap``."""

    terminal_id: str
    terminal: dict[str, Any]  # registration and parameters, as the service gave them
    operator_no: str
    journal: Journal
    recorder: Recorder
    client: ServiceClient
    readers: list[CardReader]
    printer: ReceiptPrinter
    pin_pad: PinPad
    signature_pad: SignaturePad
    cashier: Cashier
    emv: TerminalConfig
    pan_key: bytes
    now: Callable[[], datetime]
    card_timeout_s: float = 60.0
    till: StreamRef | None = None
    batch_no: str | None = None
    card_ready: bool = False  # signed on with the host today
    state: State = State.OFF
    on_state: Callable[[State], None] = field(default=lambda state: None)

    def enter(self, state: State) -> None:
        self.state = state
        self.on_state(state)

    @property
    def parameters(self) -> dict[str, Any]:
        return self.terminal["parameters"]  # type: ignore[no-any-return]

    @property
    def currency(self) -> str:
        return str(self.parameters["currency"])

    @property
    def online(self) -> bool:
        return self.recorder.forwarder.online

    def money(self, minor: int) -> str:
        """``12345`` -> ``"CNY 123.45"`` in the terminal's currency, for the cashier's screen and slips."""
        return f"{self.currency} {decimal_text(minor, self.currency)}"

    def amount_problem(self, amount_minor: int) -> str | None:
        """Why the terminal's limits refuse this amount (the agent checks it itself: offline nobody else
        can at that moment), or None."""
        low = int(self.parameters.get("min_amount_minor", 1))
        high = int(self.parameters.get("max_amount_minor", 10**12))
        if low <= amount_minor <= high:
            return None
        return f"{self.money(amount_minor)} is outside {self.money(low)}–{self.money(high)}"

    def show_printer_error(self, exc: HardwareError) -> None:
        self.cashier.show(exc.code if exc.code in ("paper_out", "printer_offline") else "printer_unavailable")

    def require_till(self) -> StreamRef:
        if self.till is None:
            raise RuntimeError("open the till first (start of day)")
        return self.till

    def record(self, stream: StreamRef, event: dict[str, Any], **kwargs: Any) -> None:
        self.recorder.record(stream, event, self.operator_no, **kwargs)

    def remember(self, stream: StreamRef, **facts: Any) -> dict[str, Any]:
        """Update the agent's own record of a transaction (for reprints, voids and the X report)."""
        sale = self.journal.sale(stream.stream_id) or {"transaction_id": stream.stream_id,
                                                      "prints": {"merchant": 0, "customer": 0}}
        sale.update(facts, version=stream.version)
        self.journal.put_sale(stream.stream_id, sale)
        return sale
