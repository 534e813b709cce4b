"""A pure-Python EMV chip card: what the virtual readers (in process, or vpcd behind a real pcscd) serve.

It answers SELECT (the PPSE "2PAY.SYS.DDF01" and AIDs, full or partial), GET PROCESSING OPTIONS,
READ RECORD, VERIFY (offline plaintext PIN), GET DATA (9F17, 9F36, 9F13) and GENERATE AC, with the
status words a real card uses. As a T=0 card it answers ``61xx`` and waits for GET RESPONSE, and asks
for the exact Le with ``6Cxx``. It can misbehave on purpose (truncated records, endless ``61xx``) so the
kernel's error paths are exercised. No I/O: ``process`` maps a command APDU to a response APDU.

The test PANs below are Luhn-valid test numbers; the card never puts them in a repr.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
from collections import deque
from dataclasses import dataclass, field

from adapters.apdu import Command, parse_command

PPSE = b"2PAY.SYS.DDF01"

# A standard CDOL1: amount, other amount, country, TVR, currency, date, type, UN, terminal type, CVM results.
DEFAULT_CDOL1: tuple[tuple[int, int], ...] = (
    (0x9F02, 6), (0x9F03, 6), (0x9F1A, 2), (0x95, 5), (0x5F2A, 2), (0x9A, 3), (0x9C, 1), (0x9F37, 4),
    (0x9F35, 1), (0x9F34, 3))
# The PDOL a qVSDC / QuickPass card asks for: TTQ, amounts, country, TVR, currency, date, type, UN.
CONTACTLESS_PDOL: tuple[tuple[int, int], ...] = (
    (0x9F66, 4), (0x9F02, 6), (0x9F03, 6), (0x9F1A, 2), (0x95, 5), (0x5F2A, 2), (0x9A, 3), (0x9C, 1),
    (0x9F37, 4))

SW_OK = 0x9000


def _mask(pan: str) -> str:
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:] if len(pan) >= 13 else "*" * len(pan)


@dataclass(frozen=True, slots=True)
class CardApp:
    """A further application on a co-badged card (it shares the card's records)."""

    aid: str
    label: str
    priority: int = 1


@dataclass(frozen=True, slots=True, repr=False)
class CardProfile:
    """What a test card of one brand carries. ``cvm_list`` is the hex of tag 8E (X, Y, then rules);
    ``afl`` names the records the card serves (SFI 1 records 1-2, SFI 2 record 1)."""

    brand: str
    aid: str
    label: str
    pan: str
    expiry: str  # YYMM
    service_code: str
    pdol: tuple[tuple[int, int], ...]
    cvm_list: str
    aip: str
    afl: str = "0801020010010100"
    priority: int = 1
    cdol1: tuple[tuple[int, int], ...] = DEFAULT_CDOL1
    cardholder_name: str = "TEST/CARDHOLDER"
    issuer_country: str = "0156"
    application_currency: str = "0156"
    pan_sequence: str = "01"
    iad: str = "06010A03A00000"
    more_apps: tuple[CardApp, ...] = field(default=())

    def __repr__(self) -> str:
        return (f"CardProfile(brand={self.brand!r}, aid={self.aid!r}, label={self.label!r}, "
                f"pan={_mask(self.pan)!r}, more_apps={self.more_apps!r})")

    @property
    def apps(self) -> tuple[CardApp, ...]:
        return (CardApp(self.aid, self.label, self.priority), *self.more_apps)


PROFILES: dict[str, CardProfile] = {
    "unionpay": CardProfile(
        brand="unionpay", aid="A000000333010101", label="UnionPay Debit", pan="6222020000031234",
        expiry="3012", service_code="201", pdol=CONTACTLESS_PDOL, aip="1C00",
        # offline plaintext PIN (next rule if it fails), signature (next if it fails), no CVM
        cvm_list="00000000" "00000000" "4103" "5E03" "1F03"),
    "visa": CardProfile(
        brand="visa", aid="A0000000031010", label="VISA CREDIT", pan="4761739001010010",
        expiry="2912", service_code="201", pdol=CONTACTLESS_PDOL, aip="1800",
        cvm_list="00000000" "00000000" "4103" "1E03"),
    "mastercard": CardProfile(
        brand="mastercard", aid="A0000000041010", label="MASTERCARD", pan="5454545454545454",
        expiry="2812", service_code="201",
        pdol=((0x9F02, 6), (0x5F2A, 2), (0x9F1A, 2), (0x9A, 3), (0x9F37, 4), (0x9F35, 1)), aip="1800",
        cvm_list="00000000" "00000000" "5E03" "1F03", iad="0110A00001220000000000000000000000FF"),
}


def tlv(tag: int, value: bytes) -> bytes:
    """One BER-TLV data object (definite length, short or long form)."""
    tag_bytes = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n <= 0xFF:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82]) + n.to_bytes(2, "big")
    return tag_bytes + length + value


def _dol(entries: tuple[tuple[int, int], ...]) -> bytes:
    return b"".join(tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big") + bytes([n]) for tag, n in entries)


def _bcd(digits: str) -> bytes:
    return bytes.fromhex(digits + "F" * (len(digits) % 2))


class VirtualCard:
    """An EMV card in memory. The PIN try counter and the ATC live on the object, so they persist across
    transactions (and readers) like on a real card; ``reset`` (power on) forgets only the session.

    ``exchanges`` keeps the last command headers (CLA INS P1 P2, never data) with their status words,
    for tests to see what went over the wire."""

    def __init__(self, profile: CardProfile | str = "unionpay", *, pin: str = "1234", pin_tries: int = 3,
                 t0: bool = True, pan: str | None = None, cvm_list: str | None = None, ppse: bool = True,
                 gpo_format: int = 2, corrupt_records: bool = False, stuck_t0: bool = False) -> None:
        self.profile = PROFILES[profile] if isinstance(profile, str) else profile
        if not (pin.isdigit() and 4 <= len(pin) <= 12):
            raise ValueError("a card PIN is 4 to 12 digits")
        if gpo_format not in (1, 2):
            raise ValueError("GPO response format is 1 or 2")
        self._pin = pin
        self.pin_tries_max = pin_tries
        self.pin_tries_left = pin_tries
        self.t0 = t0
        self.ppse = ppse
        self.gpo_format = gpo_format
        self.corrupt_records = corrupt_records
        self.stuck_t0 = stuck_t0
        self._pan = pan if pan is not None else self.profile.pan
        self._cvm_list = bytes.fromhex(cvm_list if cvm_list is not None else self.profile.cvm_list)
        self._key = hashlib.sha256(b"till-ledger virtual card key " + self._pan.encode()).digest()
        self.atc = 0
        self.exchanges: deque[tuple[str, int]] = deque(maxlen=512)
        self.last_pdol_data: bytes | None = None  # amounts, dates, UN: no card data
        self.last_cdol1_data: bytes | None = None
        self._records = self._build_records()
        self._handlers = {0xA4: (0x00, self._select), 0xA8: (0x80, self._gpo), 0xB2: (0x00, self._read_record),
                          0x20: (0x00, self._verify), 0xCA: (0x80, self._get_data),
                          0xAE: (0x80, self._generate_ac)}
        self.reset()

    def __repr__(self) -> str:
        return (f"VirtualCard(brand={self.profile.brand!r}, pan={_mask(self._pan)!r}, t0={self.t0}, "
                f"pin_tries_left={self.pin_tries_left}, atc={self.atc})")

    @property
    def pan(self) -> str:
        """The card's (test) PAN, e.g. for typing its magnetic stripe; never shown by repr."""
        return self._pan

    # ---- power ---------------------------------------------------------------------------------------
    def atr(self) -> bytes:
        if self.t0:
            # TS, T0 (TB1 TC1 present, 8 historical bytes), TB1, TC1, historical bytes: T=0 only.
            return bytes.fromhex("3B6800000073C84012009000")
        return bytes.fromhex("3B800181")  # TD1 offers T=1 only; TCK closes an ATR that names T=1

    def reset(self) -> None:
        """Power on or warm reset: no application selected, nothing pending."""
        self._selected: CardApp | None = None
        self._gpo_done = False
        self._pending = b""
        self._next_match: tuple[bytes, int] | None = None

    # ---- commands ------------------------------------------------------------------------------------
    def process(self, apdu: bytes) -> bytes:
        """The response APDU (data + SW1 SW2) to one command APDU."""
        try:
            command = parse_command(apdu)
        except ValueError:
            self.exchanges.append((bytes(apdu[:4]).hex().upper(), 0x6700))
            return b"\x67\x00"
        if command.ins == 0xC0 and self.t0 and command.cla == 0x00:
            response = self._get_response(command)
        else:
            self._pending = b""  # any other command drops data the terminal did not fetch
            data, sw = self._dispatch(command)
            response = self._t0(command, data, sw)
        self.exchanges.append((bytes(apdu[:4]).hex().upper(), int.from_bytes(response[-2:], "big")))
        return response

    def _dispatch(self, c: Command) -> tuple[bytes, int]:
        if c.ins not in self._handlers:
            return b"", 0x6D00
        cla, handler = self._handlers[c.ins]
        if c.cla != cla:
            return b"", 0x6E00
        return handler(c)

    def _t0(self, c: Command, data: bytes, sw: int) -> bytes:
        if not self.t0 or not data:
            return data + sw.to_bytes(2, "big")
        if c.data:
            # Case 4 under T=0: the data waits for GET RESPONSE.
            self._pending = data
            return bytes([0x61, len(data) & 0xFF])
        le = 256 if not c.le else c.le
        if le != len(data) and len(data) < 256:
            return bytes([0x6C, len(data)])  # case 2 with the wrong Le: say the right one
        return data[:le] + sw.to_bytes(2, "big")

    def _get_response(self, c: Command) -> bytes:
        if not self._pending:
            return b"\x69\x85"
        if self.stuck_t0:
            return b"\x61\x10"  # a broken card: always "more to come", never any data
        le = 256 if not c.le else c.le
        chunk, self._pending = self._pending[:le], self._pending[le:]
        if self._pending:
            return chunk + bytes([0x61, len(self._pending) & 0xFF])
        return chunk + b"\x90\x00"

    def _select(self, c: Command) -> tuple[bytes, int]:
        if c.p1 != 0x04 or c.p2 not in (0x00, 0x02):
            return b"", 0x6A86
        if not c.data:
            return b"", 0x6700
        if c.data in (PPSE, b"1PAY.SYS.DDF01"):
            self.reset()
            if not self.ppse or c.data != PPSE:
                return b"", 0x6A82
            return self._ppse_fci(), SW_OK
        matches = [app for app in self.profile.apps
                   if len(c.data) >= 5 and bytes.fromhex(app.aid).startswith(c.data)]
        start = 0
        if c.p2 == 0x02:  # next occurrence of the same partial name
            if self._next_match is None or self._next_match[0] != c.data:
                return b"", 0x6A82
            start = self._next_match[1]
        self.reset()
        if start >= len(matches):
            return b"", 0x6A82
        app = matches[start]
        self._selected, self._next_match = app, (c.data, start + 1)
        return self._app_fci(app), SW_OK

    def _ppse_fci(self) -> bytes:
        entries = b"".join(tlv(0x61, tlv(0x4F, bytes.fromhex(app.aid)) + tlv(0x50, app.label.encode("ascii"))
                               + tlv(0x87, bytes([app.priority])))
                           for app in self.profile.apps)
        return tlv(0x6F, tlv(0x84, PPSE) + tlv(0xA5, tlv(0xBF0C, entries)))

    def _app_fci(self, app: CardApp) -> bytes:
        proprietary = tlv(0x50, app.label.encode("ascii")) + tlv(0x87, bytes([app.priority]))
        if self.profile.pdol:
            proprietary += tlv(0x9F38, _dol(self.profile.pdol))
        proprietary += tlv(0x5F2D, b"zhen")
        return tlv(0x6F, tlv(0x84, bytes.fromhex(app.aid)) + tlv(0xA5, proprietary))

    def _gpo(self, c: Command) -> tuple[bytes, int]:
        if c.p1 != 0 or c.p2 != 0:
            return b"", 0x6A86
        if self._selected is None:
            return b"", 0x6985
        expected = sum(n for _, n in self.profile.pdol)
        if len(c.data) < 2 or c.data[0] != 0x83:
            return b"", 0x6A80
        if c.data[1] != len(c.data) - 2 or c.data[1] != expected:
            return b"", 0x6700
        self.last_pdol_data = c.data[2:]
        self._gpo_done = True
        aip, afl = bytes.fromhex(self.profile.aip), bytes.fromhex(self.profile.afl)
        if self.gpo_format == 1:
            return tlv(0x80, aip + afl), SW_OK
        return tlv(0x77, tlv(0x82, aip) + tlv(0x94, afl)), SW_OK

    def _read_record(self, c: Command) -> tuple[bytes, int]:
        if c.p1 == 0 or c.p2 & 0x07 != 0x04:
            return b"", 0x6A86
        if self._selected is None:
            return b"", 0x6985
        sfi = c.p2 >> 3
        if not any(s == sfi for s, _ in self._records):
            return b"", 0x6A82
        record = self._records.get((sfi, c.p1))
        if record is None:
            return b"", 0x6A83
        if self.corrupt_records:
            return record[:-3], SW_OK  # the outer template claims bytes that never come
        return record, SW_OK

    def _verify(self, c: Command) -> tuple[bytes, int]:
        if c.p1 != 0x00 or c.p2 != 0x80:
            return b"", 0x6A86  # only the plaintext offline PIN
        if self._selected is None:
            return b"", 0x6985
        if self.pin_tries_left == 0:
            return b"", 0x6983
        if not c.data:
            return b"", 0x63C0 | self.pin_tries_left  # how many tries are left, without trying
        if len(c.data) != 8:
            return b"", 0x6700
        digits = self._pin_block_digits(c.data)
        if digits is None:
            return b"", 0x6A80
        if hmac.compare_digest(digits.encode(), self._pin.encode()):
            self.pin_tries_left = self.pin_tries_max
            return b"", SW_OK
        self.pin_tries_left -= 1
        return b"", 0x63C0 | self.pin_tries_left

    @staticmethod
    def _pin_block_digits(block: bytes) -> str | None:
        # Format 2: control nibble 2, length nibble, the digits, 'F' padding.
        if block[0] >> 4 != 0x2 or not 4 <= block[0] & 0x0F <= 12:
            return None
        n = block[0] & 0x0F
        nibbles = block[1:].hex().upper()
        digits, padding = nibbles[:n], nibbles[n:]
        if not digits.isdigit() or padding != "F" * len(padding):
            return None
        return digits

    def _get_data(self, c: Command) -> tuple[bytes, int]:
        tag = (c.p1 << 8) | c.p2
        if tag == 0x9F17:
            return tlv(0x9F17, bytes([self.pin_tries_left])), SW_OK
        if tag == 0x9F36:
            return tlv(0x9F36, self.atc.to_bytes(2, "big")), SW_OK
        if tag == 0x9F13:
            return tlv(0x9F13, b"\x00\x00"), SW_OK
        return b"", 0x6A88

    def _generate_ac(self, c: Command) -> tuple[bytes, int]:
        if c.p1 & 0xC0 == 0xC0 or c.p2 != 0:
            return b"", 0x6A86
        if not self._gpo_done:
            return b"", 0x6985
        if len(c.data) != sum(n for _, n in self.profile.cdol1):
            return b"", 0x6700
        self.last_cdol1_data = c.data
        self.atc = (self.atc + 1) & 0xFFFF
        atc = self.atc.to_bytes(2, "big")
        # An AAC when asked for one; otherwise this card always wants to go online (ARQC).
        cid = 0x00 if c.p1 & 0xC0 == 0x00 else 0x80
        ac = hmac.new(self._key, bytes([cid]) + atc + c.data, hashlib.sha256).digest()[:8]
        return tlv(0x80, bytes([cid]) + atc + ac + bytes.fromhex(self.profile.iad)), SW_OK

    # ---- records -------------------------------------------------------------------------------------
    def _build_records(self) -> dict[tuple[int, int], bytes]:
        p, pan = self.profile, self._pan
        year, month = 2000 + int(p.expiry[:2]), int(p.expiry[2:])
        expiry_date = p.expiry + f"{calendar.monthrange(year, month)[1]:02d}"
        track2 = pan + "D" + p.expiry + p.service_code + "0000000000000"
        return {
            (1, 1): tlv(0x70, tlv(0x57, _bcd(track2)) + tlv(0x5F20, p.cardholder_name.encode("ascii"))),
            (1, 2): tlv(0x70, tlv(0x5A, _bcd(pan)) + tlv(0x5F24, bytes.fromhex(expiry_date))
                        + tlv(0x5F25, bytes.fromhex("200101")) + tlv(0x5F28, bytes.fromhex(p.issuer_country))
                        + tlv(0x5F34, bytes.fromhex(p.pan_sequence)) + tlv(0x9F07, bytes.fromhex("FF00"))
                        + tlv(0x8E, self._cvm_list) + tlv(0x8C, _dol(p.cdol1))
                        + tlv(0x8D, _dol(((0x8A, 2), (0x95, 5), (0x9F37, 4))))),
            (2, 1): tlv(0x70, tlv(0x9F08, b"\x00\x30") + tlv(0x5F30, bytes.fromhex("0" + p.service_code))
                        + tlv(0x9F42, bytes.fromhex(p.application_currency)) + tlv(0x9F44, b"\x02")),
        }
