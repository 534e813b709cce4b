"""The EMV kernel against virtual cards in an in-process reader: selection, PDOL, T=0, CVM, PIN, cryptogram,
and that the PAN never shows. (The same kernel over a real pcscd is in tests/hardware.)"""

from __future__ import annotations

import dataclasses
import json
import pickle
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.apdu import transmit_t0
from adapters.offline_pin_pad import OfflinePinPad
from adapters.virtual_card import PROFILES, CardApp, VirtualCard
from adapters.virtual_reader import VirtualCardChannel, VirtualCardReader
from domain.card_data import check_hex64, check_masked_pan, guard_fields
from domain.hardware import CardReaderUnavailable, CardRemoved, CardUnreadable, PinResult, UnsupportedCard
from terminal_agent.emv import (
    CardApplication,
    TerminalConfig,
    chip_fields,
    generate_ac,
    pan_token,
    parse_dol,
    parse_tlv,
    parse_verify,
    pin_try_counter,
    read_application,
    select_cvm,
    verify_pin_apdu,
)
from terminal_agent.magstripe import parse_track2

SHANGHAI = timezone(timedelta(hours=8))
WHEN = datetime(2026, 11, 24, 10, 30, 5, tzinfo=SHANGHAI)
UN = bytes.fromhex("1A2B3C4D")
CONFIG = TerminalConfig()
UNIONPAY_CREDIT = "A000000333010102"


def channel_to(card: VirtualCard, reader: VirtualCardReader | None = None) -> VirtualCardChannel:
    reader = reader or VirtualCardReader()
    reader.insert(card)
    channel = reader.wait_for_card(0.1)
    assert channel is not None
    return channel


def read(channel: VirtualCardChannel, *, amount_minor: int = 12_345, currency: str = "CNY",
         config: TerminalConfig = CONFIG, entry_mode: str = "chip") -> CardApplication:
    return read_application(channel, config, amount_minor=amount_minor, currency=currency, when=WHEN,
                            unpredictable_number=UN, entry_mode=entry_mode)  # type: ignore[arg-type]


def card_of(brand: str = "unionpay", **changes: object) -> VirtualCard:
    options = {k: changes.pop(k) for k in list(changes) if k in ("t0", "pin", "pin_tries", "cvm_list", "ppse",
                                                                  "gpo_format", "corrupt_records", "stuck_t0")}
    return VirtualCard(dataclasses.replace(PROFILES[brand], **changes), **options)  # type: ignore[arg-type]


def pins(*entries: str | None) -> tuple[OfflinePinPad, list[int | None]]:
    """A PIN pad fed from a script; the list records the tries-left hints it was shown."""
    hints: list[int | None] = []
    queue: Iterator[str | None] = iter(entries)

    def read_pin(tries_left: int | None) -> str | None:
        hints.append(tries_left)
        return next(queue)

    return OfflinePinPad(read_pin), hints


# ---- T=0 ---------------------------------------------------------------------------------------------
def test_a_t0_card_is_read_exactly_like_a_t1_card_through_get_response_and_6cxx() -> None:
    t0_card, t1_card = VirtualCard("visa", t0=True), VirtualCard("visa", t0=False)
    over_t0, over_t1 = read(channel_to(t0_card)), read(channel_to(t1_card))
    assert over_t0.public_fields() == over_t1.public_fields()
    assert over_t0.pan == over_t1.pan
    t0_status_words = {sw >> 8 for _, sw in t0_card.exchanges}
    assert {0x61, 0x6C} <= t0_status_words
    assert any(header.startswith("00C0") for header, _ in t0_card.exchanges)
    assert not {0x61, 0x6C} & {sw >> 8 for _, sw in t1_card.exchanges}


def test_get_response_is_repeated_while_the_card_answers_61xx_and_the_data_is_joined() -> None:
    script = iter([(b"", 0x61, 0x04), (b"\x01\x02\x03\x04", 0x61, 0x02), (b"\x05\x06", 0x90, 0x00)])
    sent: list[str] = []

    def raw(command: bytes) -> tuple[bytes, int, int]:
        sent.append(command.hex().upper())
        return next(script)

    assert transmit_t0(raw, bytes.fromhex("80A8000002830000")) == (bytes.fromhex("010203040506"), 0x9000)
    assert sent == ["80A8000002830000", "00C0000004", "00C0000002"]


def test_a_6cxx_answer_resends_the_same_command_with_the_length_the_card_gave() -> None:
    script = iter([(b"", 0x6C, 0x1D), (bytes(0x1D), 0x90, 0x00)])
    sent: list[str] = []

    def raw(command: bytes) -> tuple[bytes, int, int]:
        sent.append(command.hex().upper())
        return next(script)

    assert transmit_t0(raw, bytes.fromhex("00B2010C00")) == (bytes(0x1D), 0x9000)
    assert sent == ["00B2010C00", "00B2010C1D"]


def test_a_card_that_never_stops_answering_61xx_is_unreadable_instead_of_looping() -> None:
    channel = channel_to(VirtualCard("unionpay", stuck_t0=True))
    with pytest.raises(CardUnreadable, match="61xx"):
        read(channel)


# ---- application selection ----------------------------------------------------------------------------
def test_the_terminal_prefers_unionpay_on_a_card_that_also_offers_visa_first() -> None:
    card = card_of("visa", priority=1, more_apps=(CardApp("A000000333010101", "UnionPay Debit", 2),))
    app = read(channel_to(card))
    assert (app.brand, app.aid, app.app_label) == ("unionpay", "A000000333010101", "UnionPay Debit")


def test_a_terminal_configured_for_visa_first_picks_visa_on_the_same_card() -> None:
    card = card_of("visa", priority=1, more_apps=(CardApp("A000000333010101", "UnionPay Debit", 2),))
    app = read(channel_to(card), config=TerminalConfig(aid_priority=("A000000003", "A000000333")))
    assert (app.brand, app.aid) == ("visa", "A0000000031010")


def test_the_cards_own_priority_decides_between_two_applications_of_one_scheme() -> None:
    card = card_of("unionpay", priority=2, more_apps=(CardApp(UNIONPAY_CREDIT, "UnionPay Credit", 1),))
    app = read(channel_to(card))
    assert (app.aid, app.app_label, app.priority) == (UNIONPAY_CREDIT, "UnionPay Credit", 1)


def test_a_card_without_a_ppse_is_found_by_asking_for_each_accepted_aid() -> None:
    card = card_of("mastercard", ppse=False)
    app = read(channel_to(card))
    assert (app.brand, app.aid) == ("mastercard", "A0000000041010")


def test_a_card_with_no_application_the_terminal_accepts_is_an_unsupported_card() -> None:
    amex = card_of("visa", aid="A00000002501", label="AMEX")
    with pytest.raises(UnsupportedCard) as raised:
        read(channel_to(amex))
    assert isinstance(raised.value, CardUnreadable)
    assert "no supported application" in raised.value.detail
    assert "A00000002501" in raised.value.detail


# ---- PDOL --------------------------------------------------------------------------------------------
def test_the_pdol_data_carries_the_amount_currency_country_date_and_unpredictable_number() -> None:
    card = VirtualCard("unionpay")
    read(channel_to(card), amount_minor=12_345)
    assert card.last_pdol_data is not None
    sent, i = {}, 0
    for tag, length in card.profile.pdol:
        sent[f"{tag:X}"] = card.last_pdol_data[i:i + length].hex().upper()
        i += length
    assert sent == {"9F66": "32004000", "9F02": "000000012345", "9F03": "000000000000", "9F1A": "0156",
                    "95": "0000000000", "5F2A": "0156", "9A": "261124", "9C": "00", "9F37": "1A2B3C4D"}


def test_pdol_tags_the_terminal_does_not_know_are_sent_as_zeros_of_the_asked_length() -> None:
    card = card_of("mastercard", pdol=((0xDF8117, 3), (0x9F02, 6), (0x9F7C, 5)))
    read(channel_to(card), amount_minor=500)
    assert card.last_pdol_data == bytes(3) + bytes.fromhex("000000000500") + bytes(5)


def test_a_gpo_answer_in_format_1_is_read_like_format_2() -> None:
    app = read(channel_to(VirtualCard("visa", gpo_format=1)))
    assert (app.aip, app.expiry, app.masked_pan) == ("1800", "2912", "476173******0010")


# ---- unreadable and removed cards -----------------------------------------------------------------------
def test_a_card_with_truncated_records_is_unreadable_and_the_error_names_no_card_data() -> None:
    card = VirtualCard("unionpay", corrupt_records=True)
    with pytest.raises(CardUnreadable) as raised:
        read(channel_to(card))
    assert "truncated" in raised.value.detail
    assert PROFILES["unionpay"].pan not in str(raised.value)


def test_a_file_locator_naming_a_missing_record_makes_the_card_unreadable() -> None:
    card = card_of("visa", afl="08010300")
    with pytest.raises(CardUnreadable, match="READ RECORD 3 of SFI 1 with status 6A83"):
        read(channel_to(card))


def test_a_card_pulled_in_the_middle_of_the_read_raises_card_removed_and_the_slot_is_then_empty() -> None:
    reader = VirtualCardReader()
    channel = channel_to(VirtualCard("unionpay"), reader)
    reader.remove_after(3)
    with pytest.raises(CardRemoved):
        read(channel)
    started = time.monotonic()
    assert reader.wait_for_card(0.05) is None
    assert time.monotonic() - started < 1.0


def test_a_reinserted_card_is_read_on_a_new_channel_while_the_old_one_stays_dead() -> None:
    reader, card = VirtualCardReader(), VirtualCard("visa")
    old = channel_to(card, reader)
    reader.remove()
    new = channel_to(card, reader)
    with pytest.raises(CardRemoved):
        old.transmit(bytes.fromhex("00A404000E325041592E5359532E444446303100"))
    assert read(new).brand == "visa"


# ---- cardholder verification ------------------------------------------------------------------------------
@pytest.mark.parametrize(("brand", "method", "results"), [
    ("unionpay", "pin_offline", "410300"), ("visa", "pin_offline", "410300"), ("mastercard", "signature", "5E0300")])
def test_each_scheme_s_cvm_list_gives_its_verification_over_contact(brand: str, method: str, results: str) -> None:
    app = read(channel_to(VirtualCard(brand)))
    choice = select_cvm(app, amount_minor=12_345, entry_mode="chip", no_cvm_limit_minor=30_000, config=CONFIG)
    assert (choice.method, choice.cvm_results) == (method, results)


def test_a_tap_at_the_no_cvm_limit_needs_no_cvm_and_one_fen_more_needs_a_signature() -> None:
    app = read(channel_to(VirtualCard("unionpay")), entry_mode="contactless")
    at_limit = select_cvm(app, amount_minor=30_000, entry_mode="contactless", no_cvm_limit_minor=30_000, config=CONFIG)
    over = select_cvm(app, amount_minor=30_001, entry_mode="contactless", no_cvm_limit_minor=30_000, config=CONFIG)
    assert (at_limit.method, at_limit.cvm_results) == ("no_cvm", "1F0002")
    assert over.method == "signature"  # no offline PIN over the air: the card's list moves on to signature


def test_a_small_amount_over_contact_still_follows_the_card_s_cvm_list() -> None:
    app = read(channel_to(VirtualCard("unionpay")))
    assert select_cvm(app, amount_minor=100, entry_mode="chip", no_cvm_limit_minor=30_000,
                      config=CONFIG).method == "pin_offline"


def test_amount_conditions_compare_with_x_in_the_application_currency_only() -> None:
    # X = 100.00: no CVM under X, PIN over X, otherwise (another currency) signature.
    cvm_list = "00002710" "00000000" "1F06" "4107" "1E03"
    app = read(channel_to(VirtualCard("visa", cvm_list=cvm_list)))
    chosen = {amount: select_cvm(app, amount_minor=amount, entry_mode="chip", no_cvm_limit_minor=0,
                                 config=CONFIG).method for amount in (5_000, 20_000)}
    assert chosen == {5_000: "no_cvm", 20_000: "pin_offline"}
    in_dollars = read(channel_to(VirtualCard("visa", cvm_list=cvm_list)), currency="USD")
    assert select_cvm(in_dollars, amount_minor=5_000, entry_mode="chip", no_cvm_limit_minor=0,
                      config=CONFIG).method == "signature"


def test_online_pin_is_passed_over_when_the_card_allows_the_next_rule_and_fails_otherwise() -> None:
    lenient = read(channel_to(VirtualCard("visa", cvm_list="00000000" "00000000" "4200" "1E00")))
    strict = read(channel_to(VirtualCard("visa", cvm_list="00000000" "00000000" "0200" "1E00")))
    assert select_cvm(lenient, amount_minor=1, entry_mode="chip", no_cvm_limit_minor=0, config=CONFIG).method == \
        "signature"
    failed = select_cvm(strict, amount_minor=1, entry_mode="chip", no_cvm_limit_minor=0, config=CONFIG)
    assert (failed.method, failed.cvm_results) == ("fail", "020001")


def test_when_the_pin_fails_a_rule_with_apply_next_leads_on_to_a_signature() -> None:
    app = read(channel_to(VirtualCard("unionpay")))
    pin = select_cvm(app, amount_minor=12_345, entry_mode="chip", no_cvm_limit_minor=0, config=CONFIG)
    assert pin.next_rule is not None
    after = select_cvm(app, amount_minor=12_345, entry_mode="chip", no_cvm_limit_minor=0, config=CONFIG,
                       start_at=pin.next_rule)
    assert (after.method, pin.results_after(False), pin.results_after(True)) == ("signature", "410301", "410302")


# ---- PIN ---------------------------------------------------------------------------------------------
def test_a_wrong_pin_then_the_right_one_is_verified_and_the_try_counter_is_restored() -> None:
    channel = channel_to(VirtualCard("unionpay", pin="2468"))
    read(channel)
    pad, hints = pins("1357", "2468")
    assert pad.verify_offline(channel) == PinResult("wrong", tries_left=2)
    assert pad.verify_offline(channel) == PinResult("verified")
    assert hints == [3, 2]
    assert pin_try_counter(channel) == 3


def test_three_wrong_pins_block_the_card_and_it_stays_blocked_in_the_next_transaction() -> None:
    reader, card = VirtualCardReader(), VirtualCard("visa", pin="2468")
    channel = channel_to(card, reader)
    read(channel)
    pad, _ = pins("0000", "1111", "2222")
    outcomes = [pad.verify_offline(channel) for _ in range(3)]
    assert outcomes == [PinResult("wrong", 2), PinResult("wrong", 1), PinResult("wrong", 0)]
    reader.remove()
    later = channel_to(card, reader)
    read(later)
    right, asked = pins("2468")
    assert right.verify_offline(later) == PinResult("blocked", tries_left=0)
    assert asked == []  # a blocked card is not even asked for the PIN


def test_a_cancelled_pin_entry_costs_no_try() -> None:
    channel = channel_to(VirtualCard("unionpay"))
    read(channel)
    pad, _ = pins(None)
    assert pad.verify_offline(channel) == PinResult("cancelled", tries_left=3)
    assert pin_try_counter(channel) == 3


def test_a_malformed_pin_entry_is_asked_again_without_costing_a_try() -> None:
    channel = channel_to(VirtualCard("unionpay", pin="1234"))
    read(channel)
    pad, hints = pins("12", "12ab", "1234")
    assert pad.verify_offline(channel) == PinResult("verified")
    assert hints == [3, 3, 3]


def test_the_verify_command_carries_a_format_2_plaintext_pin_block() -> None:
    assert verify_pin_apdu("1234") == bytes.fromhex("0020008008241234FFFFFFFFFF")
    assert verify_pin_apdu("123456789012") == bytes.fromhex("00200080082C123456789012FF")
    with pytest.raises(ValueError) as raised:
        verify_pin_apdu("987")
    assert "987" not in str(raised.value)


@pytest.mark.parametrize(("sw", "result"), [
    (0x9000, PinResult("verified")), (0x63C2, PinResult("wrong", 2)), (0x63C0, PinResult("wrong", 0)),
    (0x6983, PinResult("blocked", 0)), (0x6984, PinResult("blocked", 0))])
def test_verify_status_words_map_to_pin_results(sw: int, result: PinResult) -> None:
    assert parse_verify(sw) == result


def test_an_unexpected_verify_status_word_is_unreadable() -> None:
    with pytest.raises(CardUnreadable, match="6A80"):
        parse_verify(0x6A80)


# ---- the cryptogram and the ledger's fields -------------------------------------------------------------
def test_generate_ac_returns_an_arqc_over_the_cdol1_data_and_the_atc_counts_each_one() -> None:
    card = VirtualCard("unionpay")
    cryptograms = []
    for _ in range(2):
        channel = channel_to(card)
        app = read(channel)
        cryptograms.append(generate_ac(channel, app, amount_minor=12_345, currency="CNY", when=WHEN,
                                       unpredictable_number=UN, cvm_results="410302", tvr="0000000000"))
    first, second = cryptograms
    assert (first.kind, first.atc, second.atc) == ("ARQC", "0001", "0002")
    assert len(first.ac) == 16 and first.ac != second.ac
    assert card.last_cdol1_data is not None
    assert card.last_cdol1_data.hex().upper().endswith("1A2B3C4D" "22" "410302")


def test_chip_fields_are_exactly_what_card_presented_takes_and_carry_no_pan() -> None:
    channel = channel_to(VirtualCard("mastercard"))
    app = read(channel)
    cryptogram = generate_ac(channel, app, amount_minor=9_900, currency="CNY", when=WHEN, unpredictable_number=UN,
                             cvm_results="5E0300", tvr="0000000000")
    fields = chip_fields(app, cryptogram, tvr="0000000000", tsi="e800", cvm_results="5e0300",
                         pan_token=pan_token(app.pan, b"terminal key"))
    assert set(fields) == {"masked_pan", "pan_token", "brand", "aid", "app_label", "tvr", "tsi", "atc", "cryptogram",
                           "cvm_results"}
    assert (fields["masked_pan"], fields["brand"], fields["tsi"], fields["cvm_results"]) == \
        ("545454******5454", "mastercard", "E800", "5E0300")
    assert app.pan not in json.dumps(fields)
    guard_fields(fields)
    check_masked_pan(fields["masked_pan"])
    check_hex64(fields["pan_token"], "pan_token")


def test_the_pan_token_is_a_keyed_hash_the_same_card_always_gets() -> None:
    pan = PROFILES["visa"].pan
    assert pan_token(pan, b"key one") == pan_token(pan, b"key one") != pan_token(pan, b"key two")
    assert len(pan_token(pan, b"key one")) == 64


def test_no_repr_str_or_dict_of_card_data_shows_the_pan_or_track_2() -> None:
    card = VirtualCard("unionpay")
    app = read(channel_to(card))
    pan, track2 = app.pan, app.track2
    assert track2.startswith(pan + "D")
    shown = [repr(app), str(app), repr(app.card), f"{app.card}", repr(card), repr(card.profile),
             repr(PROFILES), repr(parse_tlv(card._records[(1, 1)])), repr(dataclasses.asdict(app)),
             json.dumps(app.public_fields()), repr(parse_track2(f";{pan}=30122010000000000000?"))]
    for text in shown:
        assert pan not in text and track2 not in text
    with pytest.raises(TypeError):
        pickle.dumps(app)


# ---- magnetic stripe ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("line", [";6222020000031234=30122010000000000000?", "6222020000031234=3012201",
                                  "%B6222020000031234^TEST/CARDHOLDER^3012201?;6222020000031234=30122010000?\n"])
def test_a_swiped_track_2_is_read_with_or_without_sentinels(line: str) -> None:
    swipe = parse_track2(line)
    assert (swipe.pan, swipe.expiry, swipe.service_code, swipe.masked_pan, swipe.brand, swipe.is_chip_card) == \
        ("6222020000031234", "3012", "201", "622202******1234", "unionpay", True)


@pytest.mark.parametrize(("pan", "brand"), [("4761739001010010", "visa"), ("5454545454545454", "mastercard"),
                                            ("2223000048400011", "mastercard"), ("378282246310005", "other")])
def test_the_brand_of_a_swipe_comes_from_its_bin(pan: str, brand: str) -> None:
    assert parse_track2(f";{pan}=2812101?").brand == brand


def test_a_magstripe_only_card_is_not_a_chip_card() -> None:
    assert not parse_track2(";4761739001010010=2812101?").is_chip_card
    assert parse_track2(";4761739001010010=2812601?").is_chip_card


@pytest.mark.parametrize("line", [";4761739001010011=2812101?", ";4761739001010010=2813101?", "hello", "",
                                  ";4761739001010010?"])
def test_a_bad_swipe_is_unreadable_and_the_error_does_not_repeat_it(line: str) -> None:
    with pytest.raises(CardUnreadable) as raised:
        parse_track2(line)
    assert "476173900101001" not in str(raised.value)


# ---- TLV, the virtual card, the virtual reader -------------------------------------------------------------
def test_parse_tlv_reads_nested_templates_multi_byte_tags_and_long_lengths() -> None:
    long_value = bytes(200)
    inner = bytes.fromhex("8401AA" "A503870101" "00FF" "9F4E81C8") + long_value  # 00 FF: padding between objects
    data = bytes.fromhex("6F81") + bytes([len(inner)]) + inner
    (fci,) = parse_tlv(data)
    assert [child.tag for child in fci.children] == ["84", "A5", "9F4E"]
    assert fci.find("87") is not None and fci.find("87").value == b"\x01"  # type: ignore[union-attr]
    assert fci.find("9F4E").value == long_value  # type: ignore[union-attr]
    assert parse_dol(bytes.fromhex("9F0206" "DF811703" "9505")) == (("9F02", 6), ("DF8117", 3), ("95", 5))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_parse_tlv_of_any_bytes_either_parses_or_is_card_unreadable(data: bytes) -> None:
    try:
        parse_tlv(data)
    except CardUnreadable:
        pass


@pytest.mark.parametrize(("command", "status"), [
    ("00DD000000", "6D00"),  # unknown instruction
    ("80B2010C00", "6E00"),  # READ RECORD with a proprietary class
    ("00B2010800", "6A86"),  # READ RECORD with P2 not "SFI + 4"
    ("00A4040007A000000025010800", "6A82"),  # no such application
    ("00A4040005A0000003", "6700"),  # Lc says 5, 3 bytes follow
    ("00A4", "6700"),  # not even a header
])
def test_the_virtual_card_answers_bad_commands_with_iso_status_words(command: str, status: str) -> None:
    assert VirtualCard("visa", t0=False).process(bytes.fromhex(command)).hex().upper() == status


def test_an_unavailable_reader_raises_reader_unavailable_and_an_empty_one_times_out_with_none() -> None:
    reader = VirtualCardReader("slot", "contactless")
    started = time.monotonic()
    assert reader.wait_for_card(0.05) is None
    assert 0.04 <= time.monotonic() - started < 1.0
    reader.available = False
    assert not reader.present()
    with pytest.raises(CardReaderUnavailable):
        reader.wait_for_card(0.05)
