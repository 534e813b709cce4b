"""A cashier and customers played by a script: for ``till simulate``, demos and end-to-end tests.

The script says what each customer does (amount, yes or no, how the card is presented, which PINs
are typed); ``Hands`` puts the card into the (virtual) reader when the counter asks for it. Every
message the counter shows is kept in ``said`` for assertions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Customer:
    """One customer at the counter.

    ``presentations``: what happens at each "present card" prompt, in order (the last repeats):
    "chip", "contactless", "swipe", "chip_unreadable" (a damaged chip), "chip_pulled" (pulled mid-read).
    """

    amount_minor: int | None = None
    confirms: bool = True
    card: Any = None  # what Hands presents (a virtual card profile, a swipe line source)
    presentations: list[str] = field(default_factory=lambda: ["chip"])
    pins: list[str] = field(default_factory=list)
    signs: bool = True
    tendered_minor: int | None = None


class Hands(Protocol):
    """Presents the customer's card: inserts or taps it (returns None) or swipes it (returns the line)."""

    def present(self, customer: Customer, how: str) -> str | None: ...

    def take_back(self) -> None: ...


class ScriptedCashier:
    """Implements ``terminal_agent.counter.Cashier`` from a queue of customers."""

    def __init__(self, hands: Hands) -> None:
        self.hands = hands
        self.customers: deque[Customer] = deque()
        self.customer: Customer | None = None
        self.said: list[tuple[str, dict[str, Any]]] = []
        self._swipes: deque[str] = deque()
        self._attempt = 0
        self._amount_asked = False

    def next_customer(self, customer: Customer) -> None:
        self.hands.take_back()
        self.customer, self._attempt, self._amount_asked = customer, 0, False
        self._swipes.clear()

    def codes(self) -> list[str]:
        return [code for code, _ in self.said]

    # ---- Cashier ---------------------------------------------------------------------------------
    def show(self, code: str, **values: Any) -> None:
        self.said.append((code, values))
        if code in ("present_card", "fallback_swipe") and self.customer is not None:
            plan = self.customer.presentations
            how = plan[min(self._attempt, len(plan) - 1)]
            self._attempt += 1
            line = self.hands.present(self.customer, how)
            if line is not None:
                self._swipes.append(line)

    def ask_amount(self, code: str) -> int | None:
        if self.customer is None:
            return None
        if code == "cash_tendered_prompt":
            return self.customer.tendered_minor
        if self._amount_asked:  # the amount was refused: this customer has no other
            return None
        self._amount_asked = True
        return self.customer.amount_minor

    def confirm(self, code: str, **values: Any) -> bool:
        return self.customer is not None and self.customer.confirms

    def poll(self) -> str | None:
        return self._swipes.popleft() if self._swipes else None

    def ask_pin(self, tries_left: int | None) -> str | None:
        if self.customer is None or not self.customer.pins:
            return None
        return self.customer.pins.pop(0)

    def waiver_reason(self) -> str | None:
        return "the customer declined to sign"
