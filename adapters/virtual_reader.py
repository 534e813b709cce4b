"""A card slot in memory: a ``domain.hardware.CardReader`` serving a ``VirtualCard`` without pcscd.

For the load simulator (many terminals in one process) and fast tests. Commands go through the same
``transmit_t0`` as on a real reader, so T=0 cards behave the same. Inserting, removing and pulling the
card after n APDUs can happen from any thread.
"""

from __future__ import annotations

import threading

from adapters.apdu import transmit_t0
from adapters.virtual_card import VirtualCard
from domain.hardware import CardReaderUnavailable, CardRemoved, CardUnreadable, EntryMode


class VirtualCardReader:
    """An in-process card reader. ``available = False`` makes it behave like a reader whose service is gone."""

    def __init__(self, name: str = "Virtual Reader", entry_mode: EntryMode = "chip") -> None:
        self.name = name
        self.entry_mode: EntryMode = entry_mode
        self.available = True
        self._cond = threading.Condition()
        self._card: VirtualCard | None = None
        self._session = 0  # bumped at every insertion and removal: older channels see the card gone
        self._apdus_left: int | None = None

    def __repr__(self) -> str:
        return f"VirtualCardReader({self.name!r}, {self.entry_mode!r}, card={'in' if self._card else 'out'})"

    # ---- the cardholder's side ---------------------------------------------------------------------------
    def insert(self, card: VirtualCard) -> None:
        with self._cond:
            self._card = card
            self._session += 1
            self._apdus_left = None
            self._cond.notify_all()

    def remove(self) -> None:
        with self._cond:
            self._card = None
            self._session += 1
            self._apdus_left = None

    def remove_after(self, n_apdus: int) -> None:
        """Pull the card right after answering the ``n_apdus``-th APDU from now (GET RESPONSEs count)."""
        if n_apdus < 1:
            raise ValueError("remove_after counts at least one APDU")
        with self._cond:
            self._apdus_left = n_apdus

    # ---- CardReader ---------------------------------------------------------------------------------------
    def present(self) -> bool:
        return self.available

    def wait_for_card(self, timeout_s: float) -> VirtualCardChannel | None:
        with self._cond:
            if not self.available:
                raise CardReaderUnavailable(f"reader {self.name!r} is not available")
            self._cond.wait_for(lambda: self._card is not None, timeout=max(0.0, timeout_s))
            if self._card is None:
                return None
            self._card.reset()  # a new session powers the card up
            return VirtualCardChannel(self, self._session)

    def _exchange(self, session: int, apdu: bytes) -> tuple[bytes, int, int]:
        with self._cond:
            if session != self._session or self._card is None:
                raise CardRemoved(f"the card was removed from {self.name!r}")
            response = self._card.process(apdu)
            if self._apdus_left is not None:
                self._apdus_left -= 1
                if self._apdus_left == 0:
                    self._card, self._apdus_left = None, None
                    self._session += 1
        if len(response) < 2:
            raise CardUnreadable(f"the card in {self.name!r} gave no status word")
        return response[:-2], response[-2], response[-1]


class VirtualCardChannel:
    """A channel to the card of one insertion; CardRemoved once that card is gone."""

    def __init__(self, reader: VirtualCardReader, session: int) -> None:
        self._reader = reader
        self._session = session
        self._closed = False

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if self._closed:
            raise CardRemoved("the channel to the card is closed")
        return transmit_t0(lambda command: self._reader._exchange(self._session, command), apdu)

    def close(self) -> None:
        self._closed = True
