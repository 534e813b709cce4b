"""The ISO 8583 dialect the acquirer host speaks: a China UnionPay-style POS terminal interface.

On the wire each message is a 2-byte big-endian length and then the body::

    TPDU (5 bytes: 60 0003 0000)  header (6 bytes: 60 31 00 00 00 00)  MTI (2 bytes BCD)
    bitmap (8 bytes binary, and a secondary one when field 90 is present)  fields

Encodings follow CUP: numeric fields are packed BCD (fixed ones right-aligned with a 0 pad nibble on
the left, variable ones left-aligned with a 0 pad nibble on the right, lengths BCD); alphanumeric
fields are ASCII; field 55 is binary with a BCD length. pyiso8583 4.0.1 does all of it: BCD is its
binary encoding with ``len_count="nibbles"`` and a pad digit. No MAC (field 64): no keys are held.

======== =====  =========================================================================
field    type   use
======== =====  =========================================================================
2        n..19  PAN (financial requests only; never in a reversal)
3        n6     000000 sale, 200000 void and refund
4        n12    amount in minor units
11       n6     STAN; a reversal carries the ORIGINAL's STAN
12 / 13  n6/n4  local time hhmmss / date MMDD (the host's in replies)
14       n4     expiry YYMM (optional)
15       n4     settlement date MMDD (0510)
22       n3     entry mode: 051 chip, 071 contactless, 021 swipe, 801 fallback swipe
25       n2     00
32       n..11  acquiring institution (replies)
37 / 38  an12/6 RRN / auth code (replies; the original's in a void or refund)
39       an2    response code; 98 in a reversal request (reversed because no reply came)
41 / 42  ans    terminal no (8) / merchant no (15)
44       ans..25 issuer id (11) + acquirer id (11), space-padded (0210/0230)
48       n...322 settlement totals: debit amount 12 + count 3 + credit amount 12 + count 3 + flag 1
                (0 in the request; 1 balanced, 2 not balanced in the reply)
49       an3    ISO 4217 numeric currency
55       b...255 ICC data, BER-TLV (adapters.emv_tlv; never a tag of FORBIDDEN_TAGS)
60       n...17 type code 2 + batch 6 + network code 3: 00/003 sign-on, 22 sale, 23 void, 25 refund
                (a reversal repeats its original's code), 00/201 settlement
61       n...29 original batch 6 + STAN 6 (void), + original date MMDD (refund)
63       ans...63 private: operator no (0800, 0500); the reversal reason code, e.g. 4021 (0400)
90       n42    original MTI 4 + original STAN 6 + zeros (0400)
======== =====  =========================================================================

The mapping between these messages and the port's dataclasses is ``adapters.iso8583_messages``.
Errors never carry a field's value: a message may hold a card number. pyiso8583's own errors keep
the whole message as attributes, so they are replaced by ``MessageError``, neither chained nor
left as its context.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import iso8583

Message = dict[str, str]  # pyiso8583's decoded form: field number (or h, t, p) -> text

MAX_FRAME = 8 * 1024
TPDU_REQUEST = "6000030000"
TPDU_REPLY = "6000000003"  # destination and source swapped
HEADER = "603100000000"


class MessageError(ValueError):
    """A message or frame that cannot be encoded or decoded. The text names the field, never its value."""


def _bcd(digits: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "b", "len_enc": "bcd", "len_type": 0, "max_len": digits, "len_count": "nibbles",
            "left_pad": "0", "desc": desc}


def _bcd_var(length_bytes: int, max_digits: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "b", "len_enc": "bcd", "len_type": length_bytes, "max_len": max_digits,
            "len_count": "nibbles", "right_pad": "0", "desc": desc}


def _text(length: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": length, "desc": desc}


def _text_var(length_bytes: int, max_len: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "ascii", "len_enc": "bcd", "len_type": length_bytes, "max_len": max_len, "desc": desc}


def _binary(length: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": length, "desc": desc}


SPEC: dict[str, dict[str, Any]] = {
    "h": _binary(11, "TPDU and message header"),
    "t": _binary(2, "Message type (BCD)"),
    "p": _binary(8, "Primary bitmap"),
    "1": _binary(8, "Secondary bitmap"),
    "2": _bcd_var(1, 19, "Primary account number"),
    "3": _bcd(6, "Processing code"),
    "4": _bcd(12, "Amount, transaction"),
    "11": _bcd(6, "System trace audit number"),
    "12": _bcd(6, "Time, local transaction"),
    "13": _bcd(4, "Date, local transaction"),
    "14": _bcd(4, "Date, expiration"),
    "15": _bcd(4, "Date, settlement"),
    "22": _bcd(3, "POS entry mode"),
    "25": _bcd(2, "POS condition code"),
    "32": _bcd_var(1, 11, "Acquiring institution id"),
    "37": _text(12, "Retrieval reference number"),
    "38": _text(6, "Authorization id response"),
    "39": _text(2, "Response code"),
    "41": _text(8, "Card acceptor terminal id"),
    "42": _text(15, "Card acceptor id"),
    "44": _text_var(1, 25, "Additional response data"),
    "48": _bcd_var(2, 322, "Additional data (settlement totals)"),
    "49": _text(3, "Currency code, transaction"),
    "55": {"data_enc": "b", "len_enc": "bcd", "len_type": 2, "max_len": 255, "desc": "ICC data"},
    "60": _bcd_var(2, 17, "Reserved private (type, batch, network code)"),
    "61": _bcd_var(2, 29, "Original message"),
    "63": _text_var(2, 63, "Reserved private (operator / reversal reason)"),
    "90": _bcd(42, "Original data elements"),
}


# --- bytes -----------------------------------------------------------------------------------------

def pack(message: Mapping[str, str]) -> bytes:
    """The message body (without the length header)."""
    try:
        body, _ = iso8583.encode(dict(message), SPEC)
    except iso8583.EncodeError as exc:
        problem = f"cannot encode the message: {exc.msg} (field {exc.field})"
    except KeyError as exc:
        problem = f"cannot encode the message: field {exc.args[0]} is not in the spec"
    else:
        if len(body) > MAX_FRAME:
            raise MessageError(f"the message is {len(body)} bytes, more than {MAX_FRAME}")
        return bytes(body)
    # Raised out here, so the pyiso8583 error (which holds the whole message) is not even its context.
    raise MessageError(problem)


def unpack(body: bytes) -> Message:
    try:
        message, _ = iso8583.decode(body, SPEC)
    except iso8583.DecodeError as exc:
        problem = f"undecodable message: {exc.msg} (field {exc.field})"
    except KeyError as exc:  # a bitmap bit for a field this dialect does not define
        problem = f"undecodable message: field {exc.args[0]} is not in the spec"
    else:
        return dict(message)
    raise MessageError(problem)  # out of the except block: see pack


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next body, or None when the peer closed between frames. Oversized or cut frames: MessageError."""
    try:
        header = await reader.readexactly(2)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise MessageError("the connection closed inside a length header") from None
    length = int.from_bytes(header, "big")
    if not 0 < length <= MAX_FRAME:
        # Refused before reading: a bogus length must not make us buffer 64 KiB of garbage.
        raise MessageError(f"a frame of {length} bytes (the limit is {MAX_FRAME})")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise MessageError("the connection closed inside a frame") from None


async def write_frame(writer: asyncio.StreamWriter, body: bytes) -> None:
    if not 0 < len(body) <= MAX_FRAME:
        raise MessageError(f"a frame of {len(body)} bytes (the limit is {MAX_FRAME})")
    writer.write(len(body).to_bytes(2, "big") + body)
    await writer.drain()
