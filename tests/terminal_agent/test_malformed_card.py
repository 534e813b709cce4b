"""A chip card that answers with malformed APDU responses: a response without a status word, lengths that
do not add up, bad status words, truncated TLV, a record that is not TLV, an endless 61xx chain.

The EMV kernel raises the card-unreadable error for each (never an IndexError, ValueError or KeyError,
and never a loop); at the counter the sale records CardReadFailed with the reason, asks for the card
again, and after three chip failures offers the fallback swipe; every sale ends in bounded time.

Kernel-level cases the kernel's own tests already pin (tests/terminal_agent/test_emv.py): truncated
records, an endless 61xx chain, a missing record, an unexpected VERIFY status word, any bytes through
``parse_tlv``. Here: the same misbehaviour and more, through the whole read (application, CVM, PIN,
cryptogram) and through the sale flow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from adapters.apdu import Command, parse_command
from adapters.offline_pin_pad import OfflinePinPad
from adapters.virtual_card import VirtualCard, tlv
from adapters.virtual_reader import VirtualCardReader
from domain.hardware import CardUnreadable
from terminal_agent.emv import TerminalConfig, generate_ac, read_application, select_cvm
from terminal_agent.scripted_cashier import Customer
from terminal_agent.virtual_hands import track2_line
from tests.terminal_agent.virtual_counter import VirtualCounter, virtual_counter

WHEN = datetime(2026, 11, 24, 10, 30, 5, tzinfo=timezone(timedelta(hours=8)))
PIN = "1234"
OK = b"\x90\x00"
SELECT, GPO, READ_RECORD, GENERATE_AC = 0xA4, 0xA8, 0xB2, 0xAE

Mangle = Callable[[Command, bytes], bytes]


class HostileCard(VirtualCard):
    """A virtual UnionPay card whose responses pass through ``mangle(command, response)`` on their way out."""

    def __init__(self, mangle: Mangle, **options: bool) -> None:
        super().__init__("unionpay", pin=PIN, **options)  # type: ignore[arg-type]
        self.mangle = mangle

    def process(self, apdu: bytes) -> bytes:
        return self.mangle(parse_command(apdu), super().process(apdu))


def on(ins: int, replacement: bytes, *, aid_select_only: bool = False) -> Mangle:
    """Answer every command ``ins`` with ``replacement`` (only the SELECT of an AID, not of the PPSE, if asked)."""
    def mangle(command: Command, response: bytes) -> bytes:
        if command.ins != ins or (aid_select_only and command.data.startswith(b"2PAY")):
            return response
        return replacement
    return mangle


def unchanged(command: Command, response: bytes) -> bytes:
    return response


# A T=1 card unless said otherwise: the response data comes with the command, not through GET RESPONSE.
MALFORMED: dict[str, Callable[[], VirtualCard]] = {
    "no status word": lambda: HostileCard(on(SELECT, b"\x90", aid_select_only=True), t0=False),
    "empty response": lambda: HostileCard(on(READ_RECORD, b""), t0=False),
    "file locator not a multiple of 4": lambda: HostileCard(on(GPO, tlv(0x77, tlv(0x82, b"\x1c\x00")
                                                                       + tlv(0x94, b"\x08\x01\x02")) + OK), t0=False),
    "cryptogram too short": lambda: HostileCard(on(GENERATE_AC, tlv(0x80, b"\x80\x00\x01") + OK), t0=False),
    "6F00 to READ RECORD": lambda: HostileCard(on(READ_RECORD, b"\x6f\x00"), t0=False),
    "6A80 to GET PROCESSING OPTIONS": lambda: HostileCard(on(GPO, b"\x6a\x80"), t0=False),
    "6F00 to GENERATE AC": lambda: HostileCard(on(GENERATE_AC, b"\x6f\x00"), t0=False),
    "truncated TLV": lambda: VirtualCard("unionpay", pin=PIN, corrupt_records=True),
    "a record that is not TLV": lambda: HostileCard(on(READ_RECORD, b"NOT A RECORD, JUST TEXT" + OK), t0=False),
    "a record that is not a template": lambda: HostileCard(on(READ_RECORD, tlv(0x5A, b"\x62\x22\x02") + OK),
                                                           t0=False),
    "endless 61xx": lambda: VirtualCard("unionpay", pin=PIN, stuck_t0=True),
}


def read_whole_card(card: VirtualCard) -> str:
    """What the counter does with a chip: read the application, choose the CVM, verify the PIN offline,
    ask for the cryptogram. The cryptogram's kind, if the card got that far."""
    reader = VirtualCardReader()
    reader.insert(card)
    channel = reader.wait_for_card(0.1)
    assert channel is not None
    config = TerminalConfig()
    app = read_application(channel, config, amount_minor=12_345, currency="CNY", when=WHEN,
                           unpredictable_number=b"\x1a\x2b\x3c\x4d")
    choice = select_cvm(app, amount_minor=12_345, entry_mode="chip", no_cvm_limit_minor=0, config=config)
    if choice.method == "pin_offline":
        OfflinePinPad(lambda tries_left: PIN).verify_offline(channel)
    return generate_ac(channel, app, amount_minor=12_345, currency="CNY", when=WHEN,
                       unpredictable_number=b"\x1a\x2b\x3c\x4d", cvm_results=choice.results_after(True),
                       tvr="0000000000").kind


def test_the_unmangled_card_reads_to_an_arqc() -> None:
    assert read_whole_card(HostileCard(unchanged, t0=False)) == "ARQC"
    assert read_whole_card(HostileCard(unchanged, t0=True)) == "ARQC"


@pytest.mark.parametrize("case", list(MALFORMED))
def test_each_malformed_response_is_the_card_unreadable_error_in_bounded_time(case: str) -> None:
    started = time.monotonic()

    with pytest.raises(CardUnreadable) as raised:
        read_whole_card(MALFORMED[case]())

    assert raised.value.detail and raised.value.code
    assert time.monotonic() - started < 1.0


@st.composite
def mangles(draw: st.DrawFn) -> Mangle:
    """Spoil the n-th response: cut it short, change its status word, replace or corrupt its data."""
    target = draw(st.integers(0, 15))  # a read takes 9 exchanges over T=1, about twice as many over T=0
    how = draw(st.sampled_from(["cut", "status word", "data", "flip"]))
    sw = draw(st.binary(min_size=2, max_size=2))
    data = draw(st.binary(max_size=40))
    cut = draw(st.integers(0, 300))
    flip = draw(st.integers(0, 300))
    seen = [0]

    def mangle(command: Command, response: bytes) -> bytes:
        seen[0] += 1
        if seen[0] - 1 != target:
            return response
        if how == "cut":
            return response[:cut % (len(response) + 1)]
        if how == "status word":
            return response[:-2] + sw
        if how == "data":
            return data + response[-2:]
        if len(response) <= 2:
            return response
        i = flip % (len(response) - 2)
        return response[:i] + bytes([response[i] ^ 0xFF]) + response[i + 1:]

    return mangle


@settings(max_examples=400, derandomize=True, database=None, deadline=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=[HealthCheck.too_slow])
@given(mangle=mangles(), t0=st.booleans())
def test_any_spoiled_response_either_reads_or_is_the_card_unreadable_error_never_a_crash(
        mangle: Mangle, t0: bool) -> None:
    try:
        read_whole_card(HostileCard(mangle, t0=t0))
    except CardUnreadable:
        pass  # anything else (IndexError, ValueError, KeyError, ...) fails the test


# ---- at the counter ---------------------------------------------------------------------------------------
class HostileHands:
    """Inserts, at each prompt, the card the customer's plan names: a malformed one (MALFORMED), the
    customer's good card ("chip"), or swipes the good card's stripe ("swipe")."""

    def __init__(self, contact: VirtualCardReader, contactless: VirtualCardReader) -> None:
        self.contact = contact

    def present(self, customer: Customer, how: str) -> str | None:
        self.take_back()
        if how == "swipe":
            return track2_line(customer.card)
        self.contact.insert(customer.card if how == "chip" else MALFORMED[how]())
        return None

    def take_back(self) -> None:
        self.contact.remove()


def sale(counter: VirtualCounter, *presentations: str) -> tuple[str, str | None, float]:
    counter.cashier.next_customer(Customer(amount_minor=12_345, card=VirtualCard("unionpay", pin=PIN),
                                           presentations=list(presentations), pins=[PIN] * 4))
    started = time.monotonic()
    result = counter.agent.card.run("sale")
    return result.outcome, result.transaction_id, time.monotonic() - started


def read_failures(counter: VirtualCounter, transaction_id: str) -> list[tuple[str, str]]:
    return [(e["data"]["entry_mode"], e["data"]["reason"]) for e in counter.events(transaction_id)
            if e["type"] == "CardReadFailed"]


def test_each_malformed_card_records_card_read_failed_and_the_card_is_asked_for_again(tmp_path: Path) -> None:
    with virtual_counter(tmp_path, printer_url="dummy:", hands_for=HostileHands) as counter:
        answers = {}
        for case in MALFORMED:
            said = len(counter.cashier.said)
            outcome, transaction_id, took = sale(counter, case, "chip")
            assert transaction_id is not None
            codes = counter.cashier.codes()[said:]
            answers[case] = (outcome, [mode for mode, _ in read_failures(counter, transaction_id)],
                             codes.index("card_unreadable") < codes.index("present_card", codes.index("card_unreadable")),
                             took < 10)
            assert "CardPresented" in counter.types(transaction_id)[3:], case

    assert answers == {case: ("approved", ["chip"], True, True) for case in MALFORMED}


def test_three_malformed_reads_offer_the_fallback_swipe_and_the_reasons_are_recorded(tmp_path: Path) -> None:
    with virtual_counter(tmp_path, printer_url="dummy:", hands_for=HostileHands) as counter:
        outcome, transaction_id, took = sale(counter, "endless 61xx", "a record that is not TLV", "6F00 to GENERATE AC",
                                             "swipe")

        assert outcome == "approved", counter.cashier.codes()
        assert transaction_id is not None
        assert [reason for _, reason in read_failures(counter, transaction_id)] == [
            "the card kept answering 61xx/6Cxx: no final status after 16 exchanges for one command",
            "tag 4E in the card's response is truncated: it claims 79 bytes, 21 follow",
            "the card answered GENERATE AC with status 6F00"]
        assert "fallback_swipe" in counter.cashier.codes()
        presented = next(e["data"] for e in counter.events(transaction_id) if e["type"] == "CardPresented")
        assert presented["entry_mode"] == "fallback_swipe"
        assert took < 15
