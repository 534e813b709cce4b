"""EMV chip data as BER-TLV, the content of ISO 8583 field 55.

A tag that carries card data (FORBIDDEN_TAGS: PAN, track 2 equivalent, track data, PIN data) is refused
when encoding, so it can never leave through us. Errors name the tag, never a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from domain.acquirer import FORBIDDEN_TAGS

_TAG = re.compile(r"(?:[0-9A-F]{2}){1,3}")
_VALUE = re.compile(r"(?:[0-9A-F]{2}){0,255}")


def encode_tlv(chip_data: Mapping[str, str]) -> str:
    """BER-TLV (hex) of tag -> hex value, in the mapping's order."""
    out = []
    for raw_tag, raw_value in chip_data.items():
        tag, value = raw_tag.upper(), raw_value.upper()
        if tag in FORBIDDEN_TAGS:
            raise ValueError(f"EMV tag {tag} carries card data and is never sent")
        if not _TAG.fullmatch(tag):
            raise ValueError("an EMV tag must be 1 to 3 bytes of hex")
        if not _VALUE.fullmatch(value):
            raise ValueError(f"the value of EMV tag {tag} must be hex, at most 255 bytes")
        length = len(value) // 2
        out.append(tag + (f"{length:02X}" if length < 0x80 else f"81{length:02X}") + value)
    return "".join(out)


def decode_tlv(data: str) -> dict[str, str]:
    """Tag -> value (upper-case hex) of a BER-TLV string; a truncated one is a ValueError."""
    raw = bytes.fromhex(data)
    tags: dict[str, str] = {}
    i = 0
    try:
        while i < len(raw):
            start = i
            i += 1
            if raw[start] & 0x1F == 0x1F:  # a multi-byte tag: more bytes follow while bit 8 is set
                while raw[i] & 0x80:
                    i += 1
                i += 1
            tag = raw[start:i].hex().upper()
            length = raw[i]
            i += 1
            if length & 0x80:
                size = length & 0x7F
                length = int.from_bytes(raw[i:i + size], "big")
                i += size
            if i + length > len(raw):
                raise IndexError(i + length)
            tags[tag] = raw[i:i + length].hex().upper()
            i += length
    except IndexError:
        raise ValueError("field 55 holds a truncated TLV") from None
    return tags
