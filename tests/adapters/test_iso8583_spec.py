"""The ISO 8583 dialect: every message kind survives the wire, and card data stays where it belongs."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from adapters.emv_tlv import decode_tlv, encode_tlv
from adapters.iso8583_messages import (
    decode_financial,
    decode_host_reply,
    decode_reversal,
    decode_reversal_reply,
    decode_settlement,
    decode_settlement_reply,
    decode_sign_on,
    decode_sign_on_reply,
    encode_financial,
    encode_host_reply,
    encode_reversal,
    encode_reversal_reply,
    encode_settlement,
    encode_settlement_reply,
    encode_sign_on,
    encode_sign_on_reply,
)
from adapters.iso8583_spec import MAX_FRAME, MessageError, pack, read_frame, unpack, write_frame
from domain.acquirer import (
    FORBIDDEN_TAGS,
    BatchTotals,
    CardData,
    FinancialRequest,
    HostReply,
    OriginalRef,
    ReversalReply,
    ReversalRequest,
    SettlementReply,
    SettlementRequest,
    SignOnReply,
    SignOnRequest,
    TerminalRef,
)

PAN = "6222021234567890128"
TERMINAL = TerminalRef(merchant_no="898310048990001", terminal_no="30000001")
AT = datetime(2026, 11, 24, 10, 30, 5, tzinfo=ZoneInfo("Asia/Shanghai"))
CHIP = {"9F26": "0102030405060708", "95": "0000008000", "9F36": "0012", "4F": "A000000333010101"}
ORIGINAL = OriginalRef(rrn="000000000042", auth_code="A1B2C3", batch_no="000001", stan="000007", date_mmdd="1123")


def wire(message: dict[str, str]) -> dict[str, str]:
    return unpack(pack(message))


def financial(kind: str, **changes: object) -> FinancialRequest:
    fields: dict[str, object] = dict(
        kind=kind, terminal=TERMINAL, batch_no="000001", stan="000008", amount_minor=12_345, currency="CNY",
        card=CardData(PAN, "2812"), entry_mode="chip", chip_data=CHIP, local_time=AT,
        original=None if kind == "sale" else ORIGINAL)
    fields.update(changes)
    return FinancialRequest(**fields)  # type: ignore[arg-type]


def test_a_sale_goes_out_as_a_framed_cup_message_with_bcd_numbers() -> None:
    body = pack(encode_financial(financial("sale")))

    assert body[:11] == bytes.fromhex("6000030000" "603100000000")  # TPDU + header
    assert body[11:13] == b"\x02\x00"  # MTI in BCD
    assert bytes.fromhex("000000012345") in body  # field 4, 12 digits packed in 6 bytes
    assert b"30000001898310048990001" in body  # fields 41 and 42 in ASCII


@pytest.mark.parametrize("kind", ["sale", "void", "refund"])
def test_every_financial_request_round_trips(kind: str) -> None:
    request = financial(kind, entry_mode={"sale": "chip", "void": "swipe", "refund": "contactless"}[kind])
    if kind == "void":  # a void's field 61 holds batch and STAN only, no original date
        request = financial(kind, entry_mode="swipe",
                            original=OriginalRef(ORIGINAL.rrn, ORIGINAL.auth_code, "000001", "000007", ""))

    assert decode_financial(wire(encode_financial(request)), AT) == request


def test_a_fallback_swipe_without_expiry_or_chip_data_round_trips() -> None:
    request = financial("sale", card=CardData(PAN), entry_mode="fallback_swipe", chip_data={}, currency="JPY",
                        amount_minor=500)
    message = encode_financial(request)

    assert "14" not in message and "55" not in message
    assert decode_financial(wire(message), AT) == request


def test_sign_on_and_its_reply_round_trip() -> None:
    request = SignOnRequest(terminal=TERMINAL, batch_no="000003", operator_no="01", local_time=AT)
    message = wire(encode_sign_on(request, "000101"))
    reply = SignOnReply("00", batch_no="000004", host_time=AT)

    assert decode_sign_on(message, AT) == request
    assert message["60"] == "00000003003"
    assert decode_sign_on_reply(wire(encode_sign_on_reply(message, reply, AT)), AT) == reply


def test_a_host_reply_round_trips_and_echoes_the_requests_stan_and_terminal() -> None:
    request = wire(encode_financial(financial("sale")))
    reply = HostReply("00", rrn="000000000043", auth_code="Z9Y8X7", acquirer_id="48020000", issuer_id="01020000")
    message = wire(encode_host_reply(request, reply, AT))

    assert decode_host_reply(message) == reply
    assert (message["t"], message["11"], message["41"]) == ("0210", "000008", "30000001")


@pytest.mark.parametrize("kind", ["sale", "void", "refund"])
def test_a_reversal_and_its_reply_round_trip(kind: str) -> None:
    request = ReversalRequest(kind=kind, terminal=TERMINAL, batch_no="000001", stan="000007", amount_minor=12_345,
                              currency="USD", reason_code="4021", local_time=AT)
    message = wire(encode_reversal(request))

    assert decode_reversal(message, AT) == request
    assert (message["t"], message["11"], message["39"]) == ("0400", "000007", "98")
    assert message["90"][:10] == ("0220" if kind == "refund" else "0200") + "000007"
    assert decode_reversal_reply(wire(encode_reversal_reply(message, ReversalReply("25"), AT))) == \
        ReversalReply("25")


def test_a_reversal_carries_no_card_data() -> None:
    request = ReversalRequest(kind="sale", terminal=TERMINAL, batch_no="000001", stan="000007",
                              amount_minor=12_345, currency="CNY", reason_code="4021", local_time=AT)
    message = wire(encode_reversal(request))

    assert not {"2", "14", "35", "55"} & set(message)
    assert "22" not in message  # the entry mode is not known for a reversal


@pytest.mark.parametrize("balanced", [True, False])
def test_a_settlement_and_its_reply_round_trip(balanced: bool) -> None:
    request = SettlementRequest(terminal=TERMINAL, batch_no="000001", currency="CNY",
                                totals=BatchTotals(debit_count=3, debit_minor=45_600, credit_count=1, credit_minor=700),
                                operator_no="01", local_time=AT)
    message = wire(encode_settlement(request, "000202"))
    reply = SettlementReply("00", balanced, BatchTotals(2, 30_000, 0, 0), settlement_date="1124")

    assert decode_settlement(message, AT) == request
    assert message["48"] == "000000045600" "003" "000000000700" "001" "0"
    assert decode_settlement_reply(wire(encode_settlement_reply(message, reply, AT))) == reply


@pytest.mark.parametrize("tag", sorted(FORBIDDEN_TAGS))
def test_a_forbidden_emv_tag_is_refused_without_echoing_its_value(tag: str) -> None:
    with pytest.raises(ValueError) as refused:
        encode_financial(financial("sale", chip_data={**CHIP, tag: PAN + "D2812"}))

    assert PAN not in str(refused.value)


def test_emv_data_round_trips_through_ber_tlv_with_long_values_and_two_byte_tags() -> None:
    chip = {"9F10": "07" * 200, "82": "5C00", "DF01": ""}

    assert decode_tlv(encode_tlv(chip)) == chip


def test_an_unknown_currency_is_refused_before_anything_is_encoded() -> None:
    with pytest.raises(ValueError, match="currency 'XAU'"):
        encode_financial(financial("sale", currency="XAU"))


def test_a_field_that_does_not_fit_is_refused_without_the_message_attached() -> None:
    with pytest.raises(MessageError) as refused:
        pack(encode_financial(financial("sale", terminal=TerminalRef("898310048990001", "300000012"))))

    assert "field 41" in str(refused.value) and PAN not in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__context__ is None


def test_card_data_shows_only_the_masked_number() -> None:
    card = CardData(PAN, "2812")

    assert repr(card) == str(card) == "CardData(pan='622202*********0128')"
    assert PAN not in repr(financial("sale"))


def test_garbage_does_not_decode() -> None:
    with pytest.raises(MessageError):
        unpack(b"\x60\x00\x03\x00\x00" + b"nonsense")


async def _reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def test_framing_refuses_an_oversized_frame_on_read_and_on_write() -> None:
    async def scenario() -> None:
        with pytest.raises(MessageError, match="8193 bytes"):
            await read_frame(await _reader_of((MAX_FRAME + 1).to_bytes(2, "big") + b"x" * 10))
        with pytest.raises(MessageError):
            await write_frame(None, b"x" * (MAX_FRAME + 1))  # type: ignore[arg-type]  # refused before writing

    asyncio.run(scenario())


def test_framing_reads_frames_until_a_clean_end_and_refuses_a_cut_one() -> None:
    async def scenario() -> None:
        reader = await _reader_of(b"\x00\x03abc\x00\x01z")
        assert [await read_frame(reader), await read_frame(reader), await read_frame(reader)] == [b"abc", b"z", None]
        with pytest.raises(MessageError, match="inside a frame"):
            await read_frame(await _reader_of(b"\x00\x05ab"))

    asyncio.run(scenario())
