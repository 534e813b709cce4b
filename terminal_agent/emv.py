"""The EMV kernel: reading a chip card's application, choosing the cardholder verification, asking for the
cryptogram. Pure logic over a ``domain.hardware.CardChannel`` (T=0 already handled); no pyscard here.

    read_application   SELECT PPSE (or the terminal's AIDs one by one) -> pick an AID by the terminal's
                       priority, then the card's -> SELECT AID -> GET PROCESSING OPTIONS with the PDOL
                       data -> READ RECORD over the AFL -> CardApplication
    select_cvm         the no-CVM limit (contactless), else the card's CVM list (tag 8E) -> CvmChoice
    generate_ac        first GENERATE AC (ARQC) with the CDOL1 data -> Cryptogram
    chip_fields        what the ledger's CardPresented event takes: masked PAN and keyed token, never the PAN

The PAN and track 2 only live in ``CardSecret`` objects, which mask themselves wherever they could be
shown (repr, str, f-strings) and refuse to be pickled. Errors name tags and status words, never values.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from adapters import apdu
from domain.acquirer import FORBIDDEN_TAGS
from domain.card_data import luhn_valid
from domain.hardware import CardChannel, CardUnreadable, EntryMode, PinResult, UnsupportedCard
from domain.money import check_minor, minor_digits

PPSE = b"2PAY.SYS.DDF01"
SW_OK = 0x9000
MAX_RECORDS = 64  # an AFL can name thousands of records; a real card has a handful
MAX_TLV_DEPTH = 8
MAX_CANDIDATES = 16

BRANDS = {"A000000333": "unionpay", "A000000003": "visa", "A000000004": "mastercard"}

# ISO 4217 alpha -> numeric, for 5F2A (transaction currency) and comparing with the card's 9F42.
CURRENCY_NUMERIC = {
    "CNY": "0156", "HKD": "0344", "MOP": "0446", "TWD": "0901", "USD": "0840", "EUR": "0978", "GBP": "0826",
    "JPY": "0392", "KRW": "0410", "SGD": "0702", "AUD": "0036", "CAD": "0124", "CHF": "0756", "THB": "0764",
    "MYR": "0458", "NZD": "0554", "SEK": "0752", "NOK": "0578", "DKK": "0208", "INR": "0356", "IDR": "0360",
    "PHP": "0608", "VND": "0704", "AED": "0784", "SAR": "0682", "RUB": "0643",
}

# Data objects of format n (BCD): padded and truncated on the left when a DOL asks for another length.
_NUMERIC_TAGS = frozenset({"9F02", "9F03", "9F1A", "5F2A", "5F36", "9A", "9C", "9F21", "9F41", "9F15", "9F35"})


def currency_numeric(currency: str) -> str:
    """``"CNY"`` -> ``"0156"`` (ISO 4217 numeric, as 4 BCD digits)."""
    try:
        return CURRENCY_NUMERIC[currency]
    except KeyError:
        raise ValueError(f"no ISO 4217 numeric code known for currency {currency!r}") from None


def mask_pan(pan: str) -> str:
    """First 6 and last 4 digits with '*' between (the ledger's masked form)."""
    if len(pan) < 13:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


class CardSecret:
    """The PAN (and track 2, when there is one) in memory only. Shown anywhere, it is masked; it cannot be
    pickled, so it never reaches a file by accident; ``dataclasses.asdict`` keeps this object, not a string."""

    __slots__ = ("pan", "track2")

    def __init__(self, pan: str, track2: str = "") -> None:
        self.pan = pan
        self.track2 = track2

    def __repr__(self) -> str:
        return f"CardSecret(pan={mask_pan(self.pan)!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CardSecret) and (self.pan, self.track2) == (other.pan, other.track2)

    def __hash__(self) -> int:
        return hash((self.pan, self.track2))

    def __deepcopy__(self, memo: dict[int, Any]) -> CardSecret:
        return self  # immutable by convention; keeps dataclasses.asdict from failing

    def __reduce__(self) -> Any:
        raise TypeError("card data is never pickled")


# ---- BER-TLV ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, repr=False)
class Tlv:
    """One BER-TLV data object; ``children`` are parsed for constructed tags (bit 6 of the first byte)."""

    tag: str  # upper-case hex, e.g. "9F38"
    value: bytes
    children: tuple[Tlv, ...] = ()

    def __repr__(self) -> str:
        if self.tag in FORBIDDEN_TAGS:
            return f"Tlv({self.tag}, <{len(self.value)} bytes of card data>)"
        if self.children:
            return f"Tlv({self.tag}, {list(self.children)!r})"
        return f"Tlv({self.tag}, {self.value.hex().upper()})"

    def find(self, tag: str) -> Tlv | None:
        """The first descendant with ``tag``, depth first."""
        return find(self.children, tag)


def find(nodes: Iterable[Tlv], tag: str) -> Tlv | None:
    for node in nodes:
        if node.tag == tag:
            return node
        found = find(node.children, tag)
        if found is not None:
            return found
    return None


def _read_tag(data: bytes, i: int) -> tuple[str, int]:
    start = i
    i += 1
    if data[start] & 0x1F == 0x1F:  # more tag bytes follow while bit 8 is set
        while True:
            if i >= len(data):
                raise CardUnreadable("the card's response ends inside a tag")
            more = data[i] & 0x80
            i += 1
            if not more:
                break
            if i - start >= 3:
                raise CardUnreadable("the card's response has a tag longer than 3 bytes")
    return data[start:i].hex().upper(), i


def parse_tlv(data: bytes, *, _depth: int = 0) -> tuple[Tlv, ...]:
    """The data objects in ``data``, constructed ones parsed recursively. Padding bytes 00 and FF between
    objects are skipped (EMV allows them). Malformed input is CardUnreadable, naming the tag only."""
    if _depth > MAX_TLV_DEPTH:
        raise CardUnreadable("the card's response nests templates too deep")
    out: list[Tlv] = []
    i = 0
    while i < len(data):
        if data[i] in (0x00, 0xFF):
            i += 1
            continue
        first = data[i]
        tag, i = _read_tag(data, i)
        if i >= len(data):
            raise CardUnreadable(f"tag {tag} in the card's response has no length")
        length = data[i]
        i += 1
        if length & 0x80:
            size = length & 0x7F
            if not 1 <= size <= 3 or i + size > len(data):
                raise CardUnreadable(f"tag {tag} in the card's response has a malformed length")
            length = int.from_bytes(data[i:i + size], "big")
            i += size
        if i + length > len(data):
            raise CardUnreadable(f"tag {tag} in the card's response is truncated: it claims {length} bytes, "
                                 f"{len(data) - i} follow")
        value = bytes(data[i:i + length])
        i += length
        children = parse_tlv(value, _depth=_depth + 1) if first & 0x20 else ()
        out.append(Tlv(tag, value, children))
    return tuple(out)


def _flatten(nodes: Iterable[Tlv], into: dict[str, bytes]) -> dict[str, bytes]:
    """tag -> value of every object (the first one wins), templates included."""
    for node in nodes:
        into.setdefault(node.tag, node.value)
        _flatten(node.children, into)
    return into


# ---- DOLs (PDOL, CDOL1): a list of tag + length the card wants filled -------------------------------
def parse_dol(data: bytes) -> tuple[tuple[str, int], ...]:
    entries: list[tuple[str, int]] = []
    i = 0
    while i < len(data):
        tag, i = _read_tag(data, i)
        if i >= len(data):
            raise CardUnreadable(f"the card's data object list ends after tag {tag} without a length")
        entries.append((tag, data[i]))
        i += 1
    return tuple(entries)


def build_dol_data(dol: Iterable[tuple[str, int]], values: Mapping[str, bytes]) -> bytes:
    """The concatenated values a DOL asks for; tags the terminal does not know are zeros of the requested
    length. A value of another length is fitted as EMV Book 3 §5.4 says: numbers on the left, the rest on
    the right."""
    out = bytearray()
    for tag, length in dol:
        value = values.get(tag)
        if value is None:
            out += bytes(length)
        elif tag in _NUMERIC_TAGS:
            out += value[-length:].rjust(length, b"\x00") if length else b""
        else:
            out += value[:length].ljust(length, b"\x00")
    return bytes(out)


# ---- configuration and results ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TerminalConfig:
    """This terminal's EMV parameters. ``aid_priority`` lists accepted AIDs (or RIDs: matched as prefixes),
    most preferred first. Capabilities (9F33) say what the terminal can do, per interface: offline plaintext
    PIN, signature and no CVM over contact; signature and no CVM when tapped (no VERIFY over the air). No
    online PIN: this terminal has no PIN encryption."""

    aid_priority: tuple[str, ...] = ("A000000333", "A000000003", "A000000004")
    terminal_country: str = "0156"
    terminal_type: str = "22"  # attended, merchant-operated, online with offline capability
    capabilities: str = "60A800"  # magstripe + IC; plaintext PIN (ICC), signature, no CVM; no offline auth
    contactless_capabilities: str = "602800"  # signature, no CVM
    additional_capabilities: str = "6000F0A001"  # 9F40: goods and services; numeric and command keys
    ttq: str = "32004000"  # 9F66: EMV mode, contact chip, signature; consumer device CVM

    def __post_init__(self) -> None:
        for name, size in (("terminal_country", 2), ("terminal_type", 1), ("capabilities", 3),
                           ("contactless_capabilities", 3), ("additional_capabilities", 5), ("ttq", 4)):
            value = getattr(self, name)
            try:
                ok = len(bytes.fromhex(value)) == size
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"TerminalConfig.{name} must be {size} bytes of hex")
        for aid in self.aid_priority:
            try:
                ok = 5 <= len(bytes.fromhex(aid)) <= 16
            except ValueError:
                ok = False
            if not ok:
                raise ValueError("each AID in aid_priority is 5 to 16 bytes of hex")

    def capabilities_for(self, entry_mode: EntryMode) -> bytes:
        return bytes.fromhex(self.contactless_capabilities if entry_mode == "contactless" else self.capabilities)

    def rank(self, aid: str) -> int | None:
        """Where ``aid`` stands in the terminal's priority (0 first), None when it is not accepted."""
        for i, prefix in enumerate(self.aid_priority):
            if aid.upper().startswith(prefix.upper()):
                return i
        return None


@dataclass(frozen=True, slots=True)
class CvmRule:
    """One CVM rule: ``code`` as on the card (bit 0x40: apply the next rule if this one fails)."""

    code: int
    condition: int

    @property
    def method(self) -> int:
        return self.code & 0x3F

    @property
    def next_if_fails(self) -> bool:
        return bool(self.code & 0x40)


@dataclass(frozen=True, slots=True)
class CvmList:
    """Tag 8E: amounts X and Y (binary, in the application currency's minor units) and the rules in order."""

    x: int
    y: int
    rules: tuple[CvmRule, ...]


def parse_cvm_list(value: bytes) -> CvmList:
    if len(value) < 8 or len(value) % 2:
        raise CardUnreadable("the card's CVM list (8E) is malformed")
    rules = tuple(CvmRule(value[i], value[i + 1]) for i in range(8, len(value), 2))
    return CvmList(int.from_bytes(value[0:4], "big"), int.from_bytes(value[4:8], "big"), rules)


Brand = Literal["unionpay", "visa", "mastercard", "other"]


@dataclass(frozen=True, slots=True, repr=False)
class CardApplication:
    """The application read from a chip card. ``pan`` and ``track2`` are held by ``card`` (a CardSecret):
    masked in every repr, absent from ``public_fields``. ``transaction_currency`` (numeric) is the one the
    card was read for, compared with the card's ``application_currency`` (9F42) by CVM conditions."""

    card: CardSecret
    expiry: str  # YYMM
    masked_pan: str
    brand: Brand
    aid: str  # upper-case hex
    app_label: str
    aip: str  # 2 bytes, hex
    cvm_list: CvmList | None
    cdol1: tuple[tuple[str, int], ...]
    pan_sequence: str = ""
    application_currency: str = ""
    issuer_country: str = ""
    transaction_currency: str = ""
    priority: int = 0
    config: TerminalConfig = TerminalConfig()  # what it was read with: generate_ac fills the CDOL1 from it
    entry_mode: EntryMode = "chip"

    @property
    def pan(self) -> str:
        return self.card.pan

    @property
    def track2(self) -> str:
        """Track 2 equivalent data (hex, tag 57), memory only; "" when the card has none."""
        return self.card.track2

    @property
    def cardholder_verification_supported(self) -> bool:
        return bool(bytes.fromhex(self.aip)[0] & 0x10)

    def public_fields(self) -> dict[str, Any]:
        """Everything but the PAN and track 2."""
        return {"masked_pan": self.masked_pan, "brand": self.brand, "aid": self.aid, "app_label": self.app_label,
                "expiry": self.expiry, "aip": self.aip, "pan_sequence": self.pan_sequence,
                "application_currency": self.application_currency, "issuer_country": self.issuer_country}

    def __repr__(self) -> str:
        return (f"CardApplication(masked_pan={self.masked_pan!r}, brand={self.brand!r}, aid={self.aid!r}, "
                f"app_label={self.app_label!r})")


CvmMethod = Literal["pin_offline", "signature", "no_cvm", "fail"]


@dataclass(frozen=True, slots=True)
class CvmChoice:
    """The verification to perform and the CVM Results (9F34, 6 hex) to put in the cryptogram's data.
    ``next_rule``: where to resume ``select_cvm(start_at=...)`` if this method fails and the card's rule
    allows the next one (e.g. PIN blocked -> signature), else None."""

    method: CvmMethod
    cvm_results: str
    next_rule: int | None = None

    def results_after(self, succeeded: bool) -> str:
        """The CVM Results once the method was performed: byte 3 = 02 successful, 01 failed."""
        if self.method in ("no_cvm", "fail") or self.cvm_results.startswith("3F"):
            return self.cvm_results
        return self.cvm_results[:4] + ("02" if succeeded else "01")


@dataclass(frozen=True, slots=True)
class Cryptogram:
    """What the first GENERATE AC returned: CID (9F27), ATC (9F36), AC (9F26), IAD (9F10); upper-case hex."""

    cid: str
    atc: str
    ac: str
    iad: str

    @property
    def kind(self) -> Literal["AAC", "TC", "ARQC", "RFU"]:
        return {0x00: "AAC", 0x40: "TC", 0x80: "ARQC"}.get(int(self.cid, 16) & 0xC0, "RFU")  # type: ignore[return-value]


# ---- reading the card --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Candidate:
    aid: str
    label: str
    priority: int  # 1 highest .. 15; 0 = none given
    order: int


def _check(sw: int, what: str) -> None:
    if sw != SW_OK:
        raise CardUnreadable(f"the card answered {what} with status {sw:04X}")


def _terminal_values(config: TerminalConfig, *, amount_minor: int, currency: str, when: datetime,
                     unpredictable_number: bytes, entry_mode: EntryMode, transaction_type: int) -> dict[str, bytes]:
    """What this terminal puts in a PDOL or CDOL, by tag."""
    check_minor(amount_minor)
    if not 0 <= amount_minor < 10**12:
        raise ValueError("amount_minor must be 0 to 999999999999 (12 BCD digits)")
    if len(unpredictable_number) != 4:
        raise ValueError("the unpredictable number (9F37) is 4 bytes")
    if not 0 <= transaction_type <= 0x99:
        raise ValueError("transaction_type is one BCD byte")
    return {
        "9F02": bytes.fromhex(f"{amount_minor:012d}"),
        "9F03": bytes(6),
        "9F1A": bytes.fromhex(config.terminal_country),
        "5F2A": bytes.fromhex(currency_numeric(currency)),
        "5F36": bytes([minor_digits(currency)]),
        "95": bytes(5),
        "9A": bytes.fromhex(when.strftime("%y%m%d")),
        "9F21": bytes.fromhex(when.strftime("%H%M%S")),
        "9C": bytes([transaction_type]),
        "9F37": bytes(unpredictable_number),
        "9F35": bytes.fromhex(config.terminal_type),
        "9F33": config.capabilities_for(entry_mode),
        "9F40": bytes.fromhex(config.additional_capabilities),
        "9F66": bytes.fromhex(config.ttq),
    }


def read_application(channel: CardChannel, config: TerminalConfig, *, amount_minor: int, currency: str,
                     when: datetime, unpredictable_number: bytes, entry_mode: EntryMode = "chip",
                     transaction_type: int = 0x00) -> CardApplication:
    """Select the best application this terminal and the card share and read it. Raises UnsupportedCard
    (a CardUnreadable) when the card offers no application the terminal accepts, CardUnreadable on a bad
    status word or bad TLV; the channel's CardRemoved passes through."""
    values = _terminal_values(config, amount_minor=amount_minor, currency=currency, when=when,
                              unpredictable_number=unpredictable_number, entry_mode=entry_mode,
                              transaction_type=transaction_type)
    candidates = _candidates(channel, config)
    refused: list[str] = []
    for candidate in candidates:
        response, sw = channel.transmit(apdu.select_by_name(bytes.fromhex(candidate.aid)))
        if sw != SW_OK:
            refused.append(f"{candidate.aid} ({sw:04X})")  # e.g. 6283: blocked; try the next one
            continue
        fci = _flatten(parse_tlv(response), {})
        pdol = parse_dol(fci.get("9F38", b""))
        response, sw = channel.transmit(apdu.get_processing_options(build_dol_data(pdol, values)))
        if sw == 0x6985:
            refused.append(f"{candidate.aid} (6985)")  # conditions of use not satisfied: EMV says try the next
            continue
        _check(sw, "GET PROCESSING OPTIONS")
        aip, afl = _parse_gpo(response)
        records = _read_records(channel, afl)
        return _application(candidate, fci, aip, records, values["5F2A"].hex().upper(), config, entry_mode)
    raise CardUnreadable("none of the card's applications could be started: " + ", ".join(refused))


def _candidates(channel: CardChannel, config: TerminalConfig) -> list[_Candidate]:
    response, sw = channel.transmit(apdu.select_by_name(PPSE))
    offered = _ppse_entries(response) if sw == SW_OK else []
    if not offered:
        # No PPSE (many contact-only cards): the "list of AIDs" method, asking for each accepted AID.
        offered = _list_of_aids(channel, config)
    supported = [c for c in offered if config.rank(c.aid) is not None]
    if not supported:
        names = ", ".join(c.aid for c in offered) or "none"
        raise UnsupportedCard(f"no supported application on the card (it offers: {names})")
    return sorted(supported, key=lambda c: (config.rank(c.aid), c.priority or 16, c.order))


def _ppse_entries(response: bytes) -> list[_Candidate]:
    fci = parse_tlv(response)
    directory = find(fci, "BF0C")
    if directory is None:
        return []
    entries: list[_Candidate] = []
    for entry in directory.children:
        if entry.tag != "61":
            continue
        fields = _flatten(entry.children, {})
        if "4F" not in fields:
            continue
        priority = fields.get("87", b"\x00")
        entries.append(_Candidate(fields["4F"].hex().upper(), _label(fields.get("50", b"")),
                                  priority[0] & 0x0F if priority else 0, len(entries)))
    return entries[:MAX_CANDIDATES]


def _list_of_aids(channel: CardChannel, config: TerminalConfig) -> list[_Candidate]:
    found: list[_Candidate] = []
    for prefix in config.aid_priority:
        name = bytes.fromhex(prefix)
        next_occurrence = False
        for _ in range(MAX_CANDIDATES):  # a card repeating itself must not keep us here
            response, sw = channel.transmit(apdu.select_by_name(name, next_occurrence=next_occurrence))
            if sw != SW_OK:
                break
            next_occurrence = True
            fci = _flatten(parse_tlv(response), {})
            aid = fci.get("84", b"").hex().upper()
            if aid.startswith(prefix.upper()) and all(c.aid != aid for c in found):
                priority = fci.get("87", b"\x00")
                found.append(_Candidate(aid, _label(fci.get("50", b"")), priority[0] & 0x0F if priority else 0,
                                        len(found)))
    return found


def _label(raw: bytes) -> str:
    # Labels are "ans" 1-16; keep printable ASCII only, so a card cannot put control characters in events.
    return "".join(chr(b) if 0x20 <= b < 0x7F else "?" for b in raw[:32]).strip()


def _parse_gpo(response: bytes) -> tuple[bytes, bytes]:
    nodes = parse_tlv(response)
    if len(nodes) != 1 or nodes[0].tag not in ("80", "77"):
        raise CardUnreadable("the card's GET PROCESSING OPTIONS response is neither format 1 (80) nor 2 (77)")
    if nodes[0].tag == "80":
        aip, afl = nodes[0].value[:2], nodes[0].value[2:]
    else:
        fields = _flatten(nodes[0].children, {})
        aip, afl = fields.get("82", b""), fields.get("94", b"")
    if len(aip) != 2:
        raise CardUnreadable("the card gave no application interchange profile (82)")
    if not afl or len(afl) % 4:
        raise CardUnreadable("the card's application file locator (94) is malformed")
    return aip, afl


def _read_records(channel: CardChannel, afl: bytes) -> dict[str, bytes]:
    data: dict[str, bytes] = {}
    count = 0
    for i in range(0, len(afl), 4):
        sfi, first, last = afl[i] >> 3, afl[i + 1], afl[i + 2]
        if not 1 <= sfi <= 30 or first == 0 or last < first or afl[i + 3] > last - first + 1:
            raise CardUnreadable("the card's application file locator (94) names impossible records")
        for record in range(first, last + 1):
            count += 1
            if count > MAX_RECORDS:
                raise CardUnreadable(f"the card's file locator names more than {MAX_RECORDS} records")
            response, sw = channel.transmit(apdu.read_record(sfi, record))
            _check(sw, f"READ RECORD {record} of SFI {sfi}")
            nodes = parse_tlv(response)
            if sfi <= 10 and (len(nodes) != 1 or nodes[0].tag != "70"):
                raise CardUnreadable(f"record {record} of SFI {sfi} is not a record template (70)")
            _flatten(nodes, data)
    return data


def _application(candidate: _Candidate, fci: dict[str, bytes], aip: bytes, records: dict[str, bytes],
                 transaction_currency: str, config: TerminalConfig, entry_mode: EntryMode) -> CardApplication:
    track2 = records.get("57", b"").hex().upper().rstrip("F")
    pan = records.get("5A", b"").hex().upper().rstrip("F") or track2.split("D")[0]
    if not (pan.isdigit() and 13 <= len(pan) <= 19 and luhn_valid(pan)):
        raise CardUnreadable("the card's PAN (5A) is missing or not a valid card number")
    if track2 and track2.split("D")[0] != pan:
        raise CardUnreadable("the card's PAN (5A) and its track 2 equivalent (57) disagree")
    expiry = records.get("5F24", b"").hex()[:4] or (track2.split("D")[1][:4] if "D" in track2 else "")
    if not (len(expiry) == 4 and expiry.isdigit() and 1 <= int(expiry[2:]) <= 12):
        raise CardUnreadable("the card's expiry date (5F24) is missing or malformed")
    aid = (fci.get("84") or bytes.fromhex(candidate.aid)).hex().upper()
    priority = fci.get("87", b"\x00")
    return CardApplication(
        card=CardSecret(pan, track2),
        expiry=expiry,
        masked_pan=mask_pan(pan),
        brand=brand_of_aid(aid),
        aid=aid,
        app_label=_label(fci["50"]) if "50" in fci else candidate.label,
        aip=aip.hex().upper(),
        cvm_list=parse_cvm_list(records["8E"]) if "8E" in records else None,
        cdol1=parse_dol(records.get("8C", b"")),
        pan_sequence=records.get("5F34", b"").hex().upper(),
        application_currency=records.get("9F42", b"").hex().upper(),
        issuer_country=records.get("5F28", b"").hex().upper(),
        transaction_currency=transaction_currency,
        priority=priority[0] & 0x0F if priority else 0,
        config=config,
        entry_mode=entry_mode,
    )


def brand_of_aid(aid: str) -> Brand:
    return BRANDS.get(aid.upper()[:10], "other")  # type: ignore[return-value]


# ---- cardholder verification --------------------------------------------------------------------------
def select_cvm(app: CardApplication, *, amount_minor: int, entry_mode: EntryMode, no_cvm_limit_minor: int,
               config: TerminalConfig, start_at: int = 0) -> CvmChoice:
    """The CVM for this transaction. A tap at or under the no-CVM limit needs none; otherwise the card's
    CVM list decides (EMV Book 3 §10.5), limited to what this terminal supports for ``entry_mode``. A card
    without a CVM list (or not supporting cardholder verification) gets the terminal's default: signature
    over the no-CVM limit, none under it, with CVM Results 3F0000 (no CVM performed)."""
    check_minor(amount_minor)
    check_minor(no_cvm_limit_minor, "no_cvm_limit_minor")
    if entry_mode == "contactless" and amount_minor <= no_cvm_limit_minor:
        return CvmChoice("no_cvm", "1F0002")
    if app.cvm_list is None or not app.cvm_list.rules or not app.cardholder_verification_supported:
        return CvmChoice("signature" if amount_minor > no_cvm_limit_minor else "no_cvm", "3F0000")
    capability = config.capabilities_for(entry_mode)[1]
    cvm_list = app.cvm_list
    last_tried: CvmRule | None = None
    for index in range(start_at, len(cvm_list.rules)):
        rule = cvm_list.rules[index]
        method = _method_of(rule.method, capability)
        if not _condition_met(rule.condition, method is not None, app, amount_minor, cvm_list):
            continue
        last_tried = rule
        head = f"{rule.code:02X}{rule.condition:02X}"
        if method is not None and method != "fail":
            then = index + 1 if rule.next_if_fails and index + 1 < len(cvm_list.rules) else None
            return CvmChoice(method, head + ("02" if method == "no_cvm" else "00"), then)
        if not rule.next_if_fails:  # "fail CVM processing", or a method we cannot perform, with no way on
            return CvmChoice("fail", head + "01")
    if last_tried is None:
        return CvmChoice("fail", "3F0001")  # no rule applied to this transaction
    return CvmChoice("fail", f"{last_tried.code:02X}{last_tried.condition:02X}01")


def _method_of(method: int, capability: int) -> CvmMethod | None:
    """What the terminal does for a CVM code, None when it cannot (unsupported or unknown)."""
    if method == 0x00:
        return "fail"
    if method == 0x01 and capability & 0x80:
        return "pin_offline"
    if method == 0x03 and capability & 0x80 and capability & 0x20:
        return "pin_offline"  # plaintext PIN and signature: the PIN is verified; the slip is signed anyway
    if method == 0x1E and capability & 0x20:
        return "signature"
    if method == 0x1F and capability & 0x08:
        return "no_cvm"
    return None  # 02 online PIN and 04/05 enciphered offline PIN: no PIN encryption on this terminal


def _condition_met(condition: int, supported: bool, app: CardApplication, amount: int, cvm_list: CvmList) -> bool:
    in_app_currency = bool(app.application_currency) and app.application_currency == app.transaction_currency
    match condition:
        case 0x00 | 0x02:  # always; not cash, not cashback (we only sell)
            return True
        case 0x03:
            return supported
        case 0x06:
            return in_app_currency and amount < cvm_list.x
        case 0x07:
            return in_app_currency and amount > cvm_list.x
        case 0x08:
            return in_app_currency and amount < cvm_list.y
        case 0x09:
            return in_app_currency and amount > cvm_list.y
        case _:  # 01/04/05: unattended cash, manual cash, cashback; anything else is unknown to us
            return False


def verify_pin_apdu(pin: str) -> bytes:
    """VERIFY with the plaintext offline PIN block (format 2: 2|length, the digits, 'F' padding).
    The result holds the PIN: send it and drop it."""
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError("a PIN is 4 to 12 digits")
    block = bytes.fromhex(f"2{len(pin):X}" + pin.ljust(14, "F"))
    return apdu.build(0x00, 0x20, 0x00, 0x80, block)


def parse_verify(sw: int) -> PinResult:
    """The outcome of VERIFY: 9000 verified; 63Cx wrong with x tries left (63C0: that was the last try);
    6983/6984 blocked. Any other status is CardUnreadable."""
    if sw == SW_OK:
        return PinResult("verified")
    if sw & 0xFFF0 == 0x63C0:
        return PinResult("wrong", tries_left=sw & 0x0F)
    if sw in (0x6983, 0x6984):
        return PinResult("blocked", tries_left=0)
    raise CardUnreadable(f"the card answered VERIFY with status {sw:04X}")


def pin_try_counter(channel: CardChannel) -> int | None:
    """The card's PIN try counter (GET DATA 9F17), None when the card does not say."""
    response, sw = channel.transmit(apdu.get_data(0x9F17))
    if sw != SW_OK:
        return None
    try:
        value = _flatten(parse_tlv(response), {}).get("9F17")
    except CardUnreadable:
        return None
    return value[0] if value is not None and len(value) == 1 else None


# ---- the cryptogram and what the ledger records --------------------------------------------------------
def generate_ac(channel: CardChannel, app: CardApplication, *, amount_minor: int, currency: str, when: datetime,
                unpredictable_number: bytes, cvm_results: str, tvr: str, entry_mode: EntryMode | None = None,
                transaction_type: int = 0x00, config: TerminalConfig | None = None) -> Cryptogram:
    """The first GENERATE AC, asking for an ARQC (go online) with the CDOL1 data; the terminal data comes
    from the configuration and entry mode the application was read with unless given. The card may answer
    with an AAC (``kind == "AAC"``: it declines offline) — the caller decides what that means."""
    if not app.cdol1:
        raise CardUnreadable("the card gave no CDOL1 (8C): it cannot compute a cryptogram")
    values = _terminal_values(config or app.config, amount_minor=amount_minor, currency=currency, when=when,
                              unpredictable_number=unpredictable_number, entry_mode=entry_mode or app.entry_mode,
                              transaction_type=transaction_type)
    values["95"] = _hex_bytes(tvr, 5, "tvr")
    values["9F34"] = _hex_bytes(cvm_results, 3, "cvm_results")
    response, sw = channel.transmit(apdu.generate_ac(0x80, build_dol_data(app.cdol1, values)))
    _check(sw, "GENERATE AC")
    nodes = parse_tlv(response)
    if len(nodes) != 1 or nodes[0].tag not in ("80", "77"):
        raise CardUnreadable("the card's GENERATE AC response is neither format 1 (80) nor 2 (77)")
    if nodes[0].tag == "80":
        value = nodes[0].value
        if len(value) < 11:
            raise CardUnreadable("the card's GENERATE AC response (80) is too short")
        cid, atc, ac, iad = value[:1], value[1:3], value[3:11], value[11:]
    else:
        fields = _flatten(nodes[0].children, {})
        cid, atc, ac, iad = (fields.get("9F27", b""), fields.get("9F36", b""), fields.get("9F26", b""),
                             fields.get("9F10", b""))
        if (len(cid), len(atc), len(ac)) != (1, 2, 8):
            raise CardUnreadable("the card's GENERATE AC response lacks the CID, ATC or cryptogram")
    return Cryptogram(cid.hex().upper(), atc.hex().upper(), ac.hex().upper(), iad.hex().upper())


def _hex_bytes(value: str, size: int, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise ValueError(f"{name} must be {size * 2} hex characters")
    return raw


def chip_fields(app: CardApplication, cryptogram: Cryptogram, *, tvr: str, tsi: str, cvm_results: str,
                pan_token: str) -> dict[str, str]:
    """The chip fields of the ledger's CardPresented event (add ``type`` and ``entry_mode``): masked PAN and
    keyed token, never the PAN or track 2. Hex is upper case."""
    _hex_bytes(tvr, 5, "tvr")
    _hex_bytes(tsi, 2, "tsi")
    _hex_bytes(cvm_results, 3, "cvm_results")
    return {"masked_pan": app.masked_pan, "pan_token": pan_token, "brand": app.brand, "aid": app.aid,
            "app_label": app.app_label, "tvr": tvr.upper(), "tsi": tsi.upper(), "atc": cryptogram.atc,
            "cryptogram": cryptogram.ac, "cvm_results": cvm_results.upper()}


def pan_token(pan: str, key: bytes) -> str:
    """HMAC-SHA-256 of the PAN under the terminal's key (64 lower-case hex): the same card, the same token."""
    if not key:
        raise ValueError("pan_token needs a non-empty key")
    if not (pan.isascii() and pan.isdigit()):
        raise ValueError("pan_token takes the PAN's digits")
    return hmac.new(key, pan.encode("ascii"), hashlib.sha256).hexdigest()

