"""The PCI guard: no full card number or track data ever enters an event, and no error echoes one."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from adapters.group_commit import run_alone
from domain.card_data import gs1_valid, guard_fields, looks_like_card_data, luhn_valid
from domain.errors import CardDataRejected, InvalidInput, LedgerError
from domain.ledger import Ledger
from tests.domain.world import SELF_CHECK, Counter, card, refused


def check_digit(body: str) -> str:
    return next(d for d in "0123456789" if luhn_valid(body + d))


@st.composite
def pans(draw: st.DrawFn, min_len: int = 13, max_len: int = 19) -> str:
    """A Luhn-valid card number of 13-19 digits."""
    length = draw(st.integers(min_len, max_len))
    body = draw(st.text("0123456789", min_size=length - 1, max_size=length - 1))
    return body + check_digit(body)


@st.composite
def written(draw: st.DrawFn, pan: str) -> str:
    """The number as people type it: plain, or in groups of four split by spaces or dashes."""
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(pan[i:i + 4] for i in range(0, len(pan), 4))


# Free text around the number: anything storable but digits (so the run stays the card number itself).
words = st.text(st.characters(blacklist_categories=("Cs", "Nd"), blacklist_characters="\x00"), max_size=60)


def assert_not_echoed(error: LedgerError, pan: str) -> None:
    for text in (str(error), error.detail, repr(error.extra), repr(error.args)):
        assert pan not in text.replace(" ", "").replace("-", "")


# ---- rejected ----------------------------------------------------------------------------------

@given(pans().flatmap(lambda pan: st.tuples(st.just(pan), written(pan))), words, words,
       st.sampled_from(["CardReadFailed", "TransactionCancelled", "PinBypassed"]))
def test_a_card_number_in_free_text_is_rejected_naming_the_field_but_not_the_digits(
        numbers: tuple[str, str], before: str, after: str, event_type: str) -> None:
    pan, typed = numbers
    counter = Counter.at_open_till()
    sale = counter.begin()
    if event_type == "PinBypassed":
        counter.txn_event(sale, "CardPresented", **card())
    fields: dict[str, Any] = {"reason": f"{before} {typed} {after}"}
    if event_type == "CardReadFailed":
        fields["entry_mode"] = "chip"
    with refused(counter.ledger, CardDataRejected) as error:
        counter.txn_event(sale, event_type, **fields)
    assert error.value.extra["field"] == "reason"
    assert_not_echoed(error.value, pan)


@given(pans(), st.integers(0, 9999).map(str), st.sampled_from([" ", "-"]), st.booleans())
@example(pan="4111111111111111", other="2", sep=" ", other_first=False)
def test_a_card_number_beside_another_number_is_still_rejected(pan: str, other: str, sep: str,
                                                                 other_first: bool) -> None:
    # e.g. "card 4111111111111111 2 tries": a neighbouring number must not hide the card number.
    text = f"{other}{sep}{pan}" if other_first else f"{pan}{sep}{other}"
    with pytest.raises(CardDataRejected):
        guard_fields({"reason": f"card {text} tries"})


@pytest.mark.parametrize("track", [
    ";6222021234567894=25121010000012300000?",          # track 2
    "6222021234567894D25121010000012300000F",            # EMV tag 57 (track 2 equivalent)
    "%B6222021234567894^ZHANG/SAN^2512101000001230000?",  # track 1
    "6222021234567890D25121010000012300000F",            # tag 57 with a number failing the Luhn check
])
def test_track_data_is_rejected_whatever_its_card_number(counter: Counter, track: str) -> None:
    sale = counter.begin()
    with refused(counter.ledger, CardDataRejected) as error:
        counter.txn_event(sale, "CardReadFailed", entry_mode="swipe", reason=f"reader said {track}")
    assert error.value.extra["field"] == "reason"
    assert "6222021234567" not in str(error.value)


@given(pans())
def test_a_card_number_nested_in_an_object_is_rejected_with_its_path(pan: str) -> None:
    counter = Counter.register()
    counter.till_id = uuid4()
    with refused(counter.ledger, CardDataRejected) as error:
        counter.till_event("TillOpened", operator=None, float_minor=0, currency="CNY",
                           self_check={**SELF_CHECK, "software_version": f"v1 {pan}"})
    assert error.value.extra["field"] == "self_check.software_version"
    assert_not_echoed(error.value, pan)


@pytest.mark.parametrize("key", ["4111111111111111", "4111 1111 1111 1111"])
def test_a_card_number_offered_as_a_parameter_name_is_rejected_without_echoing_it(
        counter: Counter, key: str) -> None:
    with refused(counter.ledger, CardDataRejected) as error:
        run_alone(counter.ledger, Ledger.change_terminal_parameters(counter.stamp(None), counter.terminal_id,
                                                                    {key: True}))
    assert_not_echoed(error.value, "4111111111111111")


def test_a_card_number_offered_as_a_self_check_key_is_refused_without_echoing_it() -> None:
    counter = Counter.register()
    counter.till_id = uuid4()
    with refused(counter.ledger, InvalidInput) as error:
        counter.till_event("TillOpened", operator=None, float_minor=0, currency="CNY",
                           self_check={**SELF_CHECK, "4111111111111111": True})
    assert_not_echoed(error.value, "4111111111111111")


def test_a_card_number_in_the_operator_number_of_the_envelope_is_never_stored(counter: Counter) -> None:
    sale = counter.begin()
    with refused(counter.ledger, InvalidInput):
        counter.txn_event(sale, "AmountEntered", operator="4111111111111111", amount_minor=100, currency="CNY")


@pytest.mark.parametrize("text", ["paper\x00out", "lone \ud800 surrogate"])
def test_text_that_cannot_be_stored_is_refused(counter: Counter, text: str) -> None:
    sale = counter.begin()
    with refused(counter.ledger, InvalidInput) as error:
        counter.txn_event(sale, "TransactionCancelled", reason=text)
    assert error.value.extra["field"] == "reason"


# ---- let through -------------------------------------------------------------------------------

@given(st.integers(13, 19).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)), words)
def test_a_digit_run_that_fails_the_luhn_check_passes(digits: str, text: str) -> None:
    assume(not luhn_valid(digits))
    assert not looks_like_card_data(f"{text} {digits} {text}")
    guard_fields({"reason": f"{text} {digits} {text}"})


def test_a_twelve_digit_reference_number_passes(counter: Counter) -> None:
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000)
    counter.txn_event(sale, "Authorized", auth_code="A1B2C3", rrn="411111111111", response_code="00")
    counter.txn_event(sale, "PrintFailed", copy="merchant", printer="p1", reprint_no=0,
                      reason="RRN 411111111111 STAN 000123 paper out")
    assert counter.events(sale)[-2:] == ["Authorized", "PrintFailed"]


def test_a_hex_digest_with_a_card_shaped_run_passes_in_digest_fields_only(counter: Counter) -> None:
    digest = ("6222021234567894d2512" + "0" * 64)[:64]
    with pytest.raises(CardDataRejected):
        guard_fields({"image_ref": digest})
    sale = counter.begin()
    counter.txn_event(sale, "CardPresented", **{**card(), "pan_token": digest})
    assert counter.txn(sale).card["pan_token"] == digest  # type: ignore[index]


def gs1_and_luhn_valid(prefix: str) -> str | None:
    """An EAN-13 starting with ``prefix`` (11 digits) that also passes the Luhn check, if one exists."""
    for a in "0123456789":
        body = prefix + a
        barcode = body + next(d for d in "0123456789" if gs1_valid(body + d))
        if luhn_valid(barcode):
            return barcode
    return None


@given(st.text("0123456789", min_size=11, max_size=11).map(gs1_and_luhn_valid).filter(bool))
def test_a_product_barcode_with_a_valid_gs1_check_digit_passes_even_when_luhn_valid(barcode: str) -> None:
    assert gs1_valid(barcode) and luhn_valid(barcode)
    counter = Counter.at_open_till()
    sale = counter.begin()
    counter.txn_event(sale, "ItemScanned", barcode=barcode, name="可口可乐 330ml", quantity=1, unit_price_minor=350)
    assert counter.txn(sale).items[0]["barcode"] == barcode


@given(st.text("0123456789", min_size=12, max_size=12))
def test_a_luhn_valid_thirteen_digit_barcode_without_a_gs1_check_digit_is_rejected(body: str) -> None:
    barcode = body + check_digit(body)
    assume(not gs1_valid(barcode))
    counter = Counter.at_open_till()
    sale = counter.begin()
    with refused(counter.ledger, CardDataRejected) as error:
        counter.txn_event(sale, "ItemScanned", barcode=barcode, name="item", quantity=1, unit_price_minor=350)
    assert error.value.extra["field"] == "barcode"


@given(st.text("0123456789", min_size=20, max_size=20), st.text("0123456789abcdef", min_size=12, max_size=12))
@example("12345678123412341234", "123412341234")
def test_a_uuid_is_never_taken_for_a_card_number_even_when_its_groups_are_all_digits(digits: str, tail: str) -> None:
    # 8-4-4-4 digits join into Luhn-valid runs about one time in ten: ids must not be refused at random.
    uuid_text = f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{tail}"
    assert not looks_like_card_data(uuid_text)
    guard_fields({"original_transaction_id": uuid_text})
