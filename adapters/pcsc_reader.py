"""A PC/SC card reader over pyscard: the real counter's contact slot or contactless pad (and vpcd in tests).

pyscard's exceptions become ``domain.hardware`` errors here (raised ``from`` the original):

    no pcscd (EstablishContextException), unknown reader        -> CardReaderUnavailable
    no card at connect (NoCardException)                         -> no card yet: keep waiting
    card pulled during a command (CardConnectionException)       -> CardRemoved
    a response without a status word                             -> CardUnreadable

pyscard does not handle T=0's ``61xx``/``6Cxx``; ``adapters.apdu.transmit_t0`` does.
"""

from __future__ import annotations

import time
from contextlib import suppress

from smartcard import scard
from smartcard.CardConnection import CardConnection
from smartcard.Exceptions import CardConnectionException, NoCardException, SmartcardException
from smartcard.pcsc.PCSCCardConnection import PCSCCardConnection
from smartcard.pcsc.PCSCExceptions import EstablishContextException
from smartcard.pcsc.PCSCReader import PCSCReader

from adapters.apdu import transmit_t0
from domain.hardware import CardReaderUnavailable, CardRemoved, CardUnreadable, EntryMode

POLL_S = 0.05  # between connection attempts while waiting; pcscd itself notices a card every 400 ms
# A card that is there but cannot be powered or does not answer, for this long (across calls), is reported
# as unreadable. Shorter spells are a card being pulled or still settling, which pcscd sorts out in a poll.
MUTE_S = 1.5

# Status codes that mean the reader or the service is gone, not the card.
_UNAVAILABLE = frozenset({scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED, scard.SCARD_E_UNKNOWN_READER,
                          scard.SCARD_E_READER_UNAVAILABLE, scard.SCARD_E_NO_READERS_AVAILABLE})


def list_readers() -> list[str]:
    """The names of the readers pcscd knows. CardReaderUnavailable when pcscd does not answer."""
    try:
        return [str(reader) for reader in PCSCReader.readers()]
    except EstablishContextException as exc:
        raise CardReaderUnavailable("the PC/SC service (pcscd) is not running") from exc
    except SmartcardException as exc:
        raise CardReaderUnavailable(f"the PC/SC service cannot list its readers: {exc}") from exc


def _dispose(connection: PCSCCardConnection) -> None:
    """Disconnect and release, whatever state the card and pcscd are in."""
    with suppress(SmartcardException):
        connection.disconnect()
    with suppress(SmartcardException):
        connection.release()
    # When pcscd is gone the release fails and the context handle is already dead; forget it so
    # pyscard's __del__ does not try again and raise where nobody can catch it.
    connection.hcontext = None


class PcscCardReader:
    """One PC/SC reader slot, by its pcscd name (e.g. "Virtual PCD 00 00")."""

    def __init__(self, reader_name: str, entry_mode: EntryMode = "chip", *, poll_s: float = POLL_S) -> None:
        self.name = reader_name
        self.entry_mode: EntryMode = entry_mode
        self._poll_s = poll_s
        self._mute_since: float | None = None

    def __repr__(self) -> str:
        return f"PcscCardReader({self.name!r}, {self.entry_mode!r})"

    def present(self) -> bool:
        try:
            return self.name in list_readers()
        except CardReaderUnavailable:
            return False

    def wait_for_card(self, timeout_s: float) -> PcscCardChannel | None:
        """Connect (T=0 or T=1) to the card once one is in the reader; None after ``timeout_s`` without one.
        A card in the reader that cannot be connected to for ``MUTE_S`` is CardUnreadable (once per spell)."""
        if self.name not in list_readers():
            raise CardReaderUnavailable(f"no PC/SC reader named {self.name!r}")
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            try:
                connection = PCSCCardConnection(self.name)
            except CardConnectionException as exc:  # it establishes its own context first
                raise CardReaderUnavailable("the PC/SC service (pcscd) is not running") from exc
            try:
                connection.connect(CardConnection.T0_protocol | CardConnection.T1_protocol)
                self._mute_since = None
                return PcscCardChannel(connection, self.name)
            except NoCardException:
                _dispose(connection)
                self._mute_since = None
            except CardConnectionException as exc:
                _dispose(connection)
                if exc.hresult in _UNAVAILABLE:
                    raise CardReaderUnavailable(f"reader {self.name!r} is gone: {exc}") from exc
                now = time.monotonic()
                if self._mute_since is None:
                    self._mute_since = now
                elif now - self._mute_since >= MUTE_S:
                    self._mute_since = None
                    raise CardUnreadable(f"the card in {self.name!r} does not answer: {exc}") from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(self._poll_s, remaining))


class PcscCardChannel:
    """An open PC/SC connection to one card; closing it powers the card down."""

    def __init__(self, connection: PCSCCardConnection, reader_name: str) -> None:
        self._connection: PCSCCardConnection | None = connection
        self._reader_name = reader_name

    @property
    def protocol(self) -> str:
        """"T=0" or "T=1", as negotiated."""
        if self._connection is None:
            return ""
        return "T=0" if self._connection.getProtocol() == CardConnection.T0_protocol else "T=1"

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        return transmit_t0(self._raw, apdu)

    def _raw(self, apdu: bytes) -> tuple[bytes, int, int]:
        if self._connection is None:
            raise CardRemoved("the channel to the card is closed")
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))
        except NoCardException as exc:
            raise CardRemoved(f"the card was removed from {self._reader_name!r}") from exc
        except CardConnectionException as exc:
            if exc.hresult == scard.SCARD_S_SUCCESS:  # pyscard's "no valid response": fewer than 2 bytes
                raise CardUnreadable(f"the card in {self._reader_name!r} gave no status word") from exc
            raise CardRemoved(f"the card in {self._reader_name!r} stopped answering: {exc}") from exc
        return bytes(data), sw1, sw2

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            _dispose(connection)
