"""Command APDUs (ISO 7816-4 short form): building and parsing them, and the T=0 exchange every reader shares.

A T=0 card does not return response data with a command that also sends data: it answers ``61xx``
("xx bytes wait for you") and the reader fetches them with GET RESPONSE. A case-2 command sent with the
wrong Le is answered ``6Cxx`` ("ask again with Le=xx"). pyscard leaves both to the application, so
``transmit_t0`` handles them once, for the PC/SC reader and the in-process virtual reader alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from domain.hardware import CardUnreadable

# Sends one command APDU and returns (response data, SW1, SW2); raises the domain's hardware errors.
RawTransmit = Callable[[bytes], tuple[bytes, int, int]]

# A sane card needs one GET RESPONSE, or one resend after 6Cxx, maybe both; a long response a few
# GET RESPONSEs. Far more means the card is looping, and we must not spin at the counter forever.
MAX_EXCHANGES = 16

SW_OK = 0x9000


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed short-form command APDU. ``le`` is None when the command expects no response data;
    0 stands for 256, as on the wire."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def __repr__(self) -> str:
        # The data of a VERIFY is a PIN block, of a PPSE entry maybe more: never show command data.
        return (f"Command(cla={self.cla:02X}, ins={self.ins:02X}, p1={self.p1:02X}, p2={self.p2:02X}, "
                f"lc={len(self.data)}, le={self.le})")


def parse_command(apdu: bytes) -> Command:
    """The four ISO 7816-4 cases of a short APDU; ValueError when the lengths do not add up."""
    if len(apdu) < 4:
        raise ValueError(f"an APDU has at least 4 header bytes, got {len(apdu)}")
    cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
    body = apdu[4:]
    if not body:
        return Command(cla, ins, p1, p2)  # case 1
    if len(body) == 1:
        return Command(cla, ins, p1, p2, le=body[0])  # case 2
    lc = body[0]
    if lc == 0:
        raise ValueError("extended-length APDUs are not supported")
    if len(body) == 1 + lc:
        return Command(cla, ins, p1, p2, data=bytes(body[1:]))  # case 3
    if len(body) == 2 + lc:
        return Command(cla, ins, p1, p2, data=bytes(body[1:-1]), le=body[-1])  # case 4
    raise ValueError(f"Lc says {lc} data bytes but the APDU carries {len(body) - 1}")


def build(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    """A short-form command APDU."""
    if len(data) > 255:
        raise ValueError("short APDUs carry at most 255 data bytes")
    apdu = bytes([cla, ins, p1, p2])
    if data:
        apdu += bytes([len(data)]) + data
    if le is not None:
        apdu += bytes([le & 0xFF])
    return apdu


def with_le(apdu: bytes, le: int) -> bytes:
    """The same command asking for ``le`` bytes (what a ``6Cxx`` answer wants)."""
    command = parse_command(apdu)
    return build(command.cla, command.ins, command.p1, command.p2, command.data, le)


def select_by_name(name: bytes, *, next_occurrence: bool = False) -> bytes:
    """SELECT by DF name (an AID or "2PAY.SYS.DDF01"); ``next_occurrence`` walks partial-AID matches."""
    return build(0x00, 0xA4, 0x04, 0x02 if next_occurrence else 0x00, name, 0x00)


def read_record(sfi: int, record: int) -> bytes:
    if not 1 <= sfi <= 30 or not 1 <= record <= 255:
        raise ValueError("SFI is 1..30 and the record number 1..255")
    return build(0x00, 0xB2, record, (sfi << 3) | 0x04, le=0x00)


def get_processing_options(pdol_data: bytes) -> bytes:
    """GPO with the PDOL data wrapped in its command template (tag 83)."""
    if len(pdol_data) > 253:
        raise ValueError("the PDOL data does not fit one short APDU")
    return build(0x80, 0xA8, 0x00, 0x00, bytes([0x83, len(pdol_data)]) + pdol_data, 0x00)


def get_data(tag: int) -> bytes:
    """GET DATA of a two-byte tag such as 9F17 (PIN try counter) or 9F36 (ATC)."""
    return build(0x80, 0xCA, tag >> 8, tag & 0xFF, le=0x00)


def generate_ac(reference_control: int, cdol_data: bytes) -> bytes:
    """GENERATE AC; ``reference_control`` 0x80 asks for an ARQC, 0x40 a TC, 0x00 an AAC."""
    return build(0x80, 0xAE, reference_control, 0x00, cdol_data, 0x00)


def get_response(length: int) -> bytes:
    return build(0x00, 0xC0, 0x00, 0x00, le=length)


def transmit_t0(raw: RawTransmit, apdu: bytes, *, max_exchanges: int = MAX_EXCHANGES) -> tuple[bytes, int]:
    """Send ``apdu`` and return (all response data, final status word), following ``61xx`` with
    GET RESPONSE (concatenating the data) and ``6Cxx`` by resending with Le=xx. A card still asking
    after ``max_exchanges`` exchanges is CardUnreadable. Errors of ``raw`` pass through."""
    data = bytearray()
    command = apdu
    for _ in range(max_exchanges):
        body, sw1, sw2 = raw(command)
        if not (0 <= sw1 <= 0xFF and 0 <= sw2 <= 0xFF):
            raise CardUnreadable("the reader returned a status word that is not two bytes")
        if sw1 == 0x6C:
            # Wrong Le: the card tells the right one; what it sent along is not the answer.
            try:
                command = with_le(command, sw2)
            except ValueError as exc:
                raise CardUnreadable("the card asked to resend a command that cannot carry Le") from exc
            continue
        data += body
        if sw1 == 0x61:
            command = get_response(sw2)
            continue
        return bytes(data), (sw1 << 8) | sw2
    raise CardUnreadable(
        f"the card kept answering 61xx/6Cxx: no final status after {max_exchanges} exchanges for one command")
