"""A customer's hands on virtual hardware: insert, tap or swipe a virtual card, pull it out too early.

``InProcessHands`` uses readers without pcscd (``adapters.virtual_reader``), for the load simulator
running many terminals; ``VpcdHands`` plugs the card into a real pcscd through vpcd's socket.
"""

from __future__ import annotations

from typing import Any

from adapters.virtual_card import VirtualCard
from adapters.virtual_reader import VirtualCardReader
from adapters.vpcd_link import VpcdCardLink
from terminal_agent.scripted_cashier import Customer

PULL_AFTER_APDUS = 3  # "chip_pulled": the card leaves after SELECT PPSE, SELECT AID and GPO
VPCD_CHIP_PORT, VPCD_TAP_PORT = 35963, 35964  # vpcd's "Virtual PCD 00 00" and "Virtual PCD 00 01"


def track2_line(card: VirtualCard) -> str:
    """What a keyboard-wedge reader types for the card's magnetic stripe (kept in memory only)."""
    profile = card.profile
    return f";{card.pan}={profile.expiry}{profile.service_code}00000000000?"


def unreadable(card: VirtualCard) -> VirtualCard:
    """The same card with a damaged chip: its records come back truncated."""
    return VirtualCard(card.profile, corrupt_records=True)


class InProcessHands:
    """Presents virtual cards to in-process virtual readers (a chip slot and a contactless pad)."""

    def __init__(self, contact: VirtualCardReader, contactless: VirtualCardReader) -> None:
        self.contact, self.contactless = contact, contactless

    def present(self, customer: Customer, how: str) -> str | None:
        card: Any = customer.card
        self.take_back()
        if how == "swipe":
            return track2_line(card)
        if how == "contactless":
            self.contactless.insert(card)
        elif how == "chip_unreadable":
            self.contact.insert(unreadable(card))
        else:
            self.contact.insert(card)
            if how == "chip_pulled":
                self.contact.remove_after(PULL_AFTER_APDUS)
        return None

    def take_back(self) -> None:
        self.contact.remove()
        self.contactless.remove()


class VpcdHands:
    """Plugs virtual cards into pcscd's vpcd readers over its socket: the agent reads them through
    real PC/SC (slot 0 = chip, slot 1 = contactless)."""

    def __init__(self, chip_port: int = VPCD_CHIP_PORT, tap_port: int = VPCD_TAP_PORT) -> None:
        self.chip_port, self.tap_port = chip_port, tap_port
        self._links: list[VpcdCardLink] = []

    def present(self, customer: Customer, how: str) -> str | None:
        card: Any = customer.card
        self.take_back()
        if how == "swipe":
            return track2_line(card)
        link = VpcdCardLink(unreadable(card) if how == "chip_unreadable" else card,
                            port=self.tap_port if how == "contactless" else self.chip_port)
        link.insert()
        if how == "chip_pulled":
            link.remove_after(PULL_AFTER_APDUS)
        self._links.append(link)
        return None

    def take_back(self) -> None:
        for link in self._links:
            link.close()
        self._links.clear()
