"""The PC/SC reader adapter through a real pcscd: a virtual card served over vpcd's socket, read by pyscard.

Nothing is mocked between the kernel and the card: PcscCardReader -> pyscard -> pcscd -> vpcd driver ->
TCP -> VpcdCardLink -> VirtualCard. pcscd polls every 400 ms, so insertions take that long to show.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from adapters.offline_pin_pad import OfflinePinPad
from adapters.pcsc_reader import PcscCardChannel, PcscCardReader, list_readers
from adapters.virtual_card import VirtualCard
from adapters.vpcd_link import VpcdCardLink
from domain.card_data import guard_fields
from domain.hardware import CardReaderUnavailable, CardRemoved, PinResult
from terminal_agent.emv import (
    CardApplication,
    TerminalConfig,
    chip_fields,
    generate_ac,
    pan_token,
    pin_try_counter,
    read_application,
    select_cvm,
)
from tests.hardware.pcscd import PcscDaemon

CHIP_READER, CHIP_PORT = "Virtual PCD 00 00", 35963
TAP_READER, TAP_PORT = "Virtual PCD 00 01", 35964
WHEN = datetime(2026, 11, 24, 10, 30, tzinfo=timezone(timedelta(hours=8)))
UN = bytes.fromhex("0BADCAFE")
CONFIG = TerminalConfig()
INSERT_TIMEOUT_S = 3.0  # pcscd sees a card within ~0.5 s; generous for a loaded CI machine
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("pcscd")


@pytest.fixture
def insert() -> Iterator[Callable[..., VpcdCardLink]]:
    """Insert a virtual card in a vpcd slot; every card is pulled afterwards (and the next insertion on
    that port waits until pcscd has seen the slot empty: VpcdCardLink does that)."""
    links: list[VpcdCardLink] = []

    def put(card: VirtualCard, port: int = CHIP_PORT) -> VpcdCardLink:
        link = VpcdCardLink(card, port)
        link.insert()
        links.append(link)
        return link

    yield put
    for link in links:
        link.close()


def connect(reader: PcscCardReader) -> PcscCardChannel:
    channel = reader.wait_for_card(INSERT_TIMEOUT_S)
    assert channel is not None, f"no card showed up in {reader.name}"
    return channel


def read(channel: PcscCardChannel, amount_minor: int = 12_345, entry_mode: str = "chip") -> CardApplication:
    return read_application(channel, CONFIG, amount_minor=amount_minor, currency="CNY", when=WHEN,
                            unpredictable_number=UN, entry_mode=entry_mode)  # type: ignore[arg-type]


def test_both_vpcd_readers_are_listed_and_present() -> None:
    assert {CHIP_READER, TAP_READER} <= set(list_readers())
    assert PcscCardReader(CHIP_READER).present() and PcscCardReader(TAP_READER, "contactless").present()


def test_a_chip_card_inserted_in_the_reader_is_read_end_to_end_into_the_sale_s_chip_data(
        insert: Callable[..., VpcdCardLink]) -> None:
    card = VirtualCard("unionpay", t0=False, pin="8642")
    insert(card)
    reader = PcscCardReader(CHIP_READER, "chip")
    channel = connect(reader)
    try:
        assert channel.protocol == "T=1"
        app = read(channel)
        choice = select_cvm(app, amount_minor=12_345, entry_mode="chip", no_cvm_limit_minor=30_000, config=CONFIG)
        assert choice.method == "pin_offline"
        assert OfflinePinPad(lambda tries: "8642").verify_offline(channel) == PinResult("verified")
        cryptogram = generate_ac(channel, app, amount_minor=12_345, currency="CNY", when=WHEN,
                                 unpredictable_number=UN, cvm_results=choice.results_after(True), tvr="0000000000")
    finally:
        channel.close()
    fields = chip_fields(app, cryptogram, tvr="0000000000", tsi="E800", cvm_results=choice.results_after(True),
                         pan_token=pan_token(app.pan, b"store key"))
    assert fields["masked_pan"] == "622202******1234"
    assert (fields["brand"], fields["aid"], fields["app_label"]) == ("unionpay", "A000000333010101", "UnionPay Debit")
    assert (cryptogram.kind, fields["atc"], fields["cvm_results"], len(fields["cryptogram"])) == \
        ("ARQC", "0001", "410302", 16)
    guard_fields(fields)


def test_a_t0_card_is_read_through_get_response_and_6cxx_over_the_real_reader(
        insert: Callable[..., VpcdCardLink]) -> None:
    card = VirtualCard("visa", t0=True)
    insert(card)
    channel = connect(PcscCardReader(CHIP_READER))
    try:
        assert channel.protocol == "T=0"
        app = read(channel)
    finally:
        channel.close()
    assert (app.brand, app.masked_pan, app.expiry) == ("visa", "476173******0010", "2912")
    assert any(header.startswith("00C0") for header, _ in card.exchanges)
    assert any(sw >> 8 == 0x6C for _, sw in card.exchanges)


def test_a_card_tapped_on_the_contactless_slot_under_the_limit_needs_no_cvm(
        insert: Callable[..., VpcdCardLink]) -> None:
    insert(VirtualCard("mastercard", t0=False), TAP_PORT)
    reader = PcscCardReader(TAP_READER, "contactless")
    channel = connect(reader)
    try:
        app = read(channel, amount_minor=2_000, entry_mode=reader.entry_mode)
    finally:
        channel.close()
    choice = select_cvm(app, amount_minor=2_000, entry_mode=reader.entry_mode, no_cvm_limit_minor=30_000,
                        config=CONFIG)
    assert (app.brand, choice.method) == ("mastercard", "no_cvm")


def test_a_card_pulled_mid_transaction_raises_card_removed_and_reads_again_once_reinserted(
        insert: Callable[..., VpcdCardLink]) -> None:
    card = VirtualCard("unionpay", t0=False)
    link = insert(card)
    reader = PcscCardReader(CHIP_READER)
    channel = connect(reader)
    link.remove_after(3)  # PPSE, SELECT AID, GPO answered; pulled before the first READ RECORD
    try:
        with pytest.raises(CardRemoved):
            read(channel)
    finally:
        channel.close()
    link.insert()
    channel = connect(reader)
    try:
        assert read(channel).masked_pan == "622202******1234"
    finally:
        channel.close()


def test_a_closed_link_leaves_no_serving_thread_behind_and_a_link_without_vpcd_is_unavailable() -> None:
    link = VpcdCardLink(VirtualCard("visa"), TAP_PORT)
    link.insert()
    assert link.inserted
    link.close()
    assert not link.inserted
    assert not [t for t in threading.enumerate() if t.name.startswith("vpcd-card-")]
    with pytest.raises(CardReaderUnavailable, match="no vpcd reader listens"):
        VpcdCardLink(VirtualCard("visa"), port=1, connect_timeout_s=0.5).insert()


def test_waiting_without_a_card_returns_none_within_the_timeout() -> None:
    started = time.monotonic()
    assert PcscCardReader(CHIP_READER).wait_for_card(0.5) is None
    assert 0.5 <= time.monotonic() - started < 1.5


def test_a_wrong_pin_then_the_right_pin_through_the_pin_pad_over_the_real_reader(
        insert: Callable[..., VpcdCardLink]) -> None:
    insert(VirtualCard("visa", t0=True, pin="2580"))
    channel = connect(PcscCardReader(CHIP_READER))
    entries, hints = iter(["0000", "2580"]), []

    def read_pin(tries_left: int | None) -> str | None:
        hints.append(tries_left)
        return next(entries)

    pad = OfflinePinPad(read_pin)
    try:
        read(channel)
        assert pad.verify_offline(channel) == PinResult("wrong", tries_left=2)
        assert pad.verify_offline(channel) == PinResult("verified")
        assert pin_try_counter(channel) == 3
    finally:
        channel.close()
    assert hints == [3, 2]


def test_a_reader_pcscd_does_not_know_is_absent_and_waiting_on_it_is_unavailable() -> None:
    reader = PcscCardReader("No Such Reader 00 00")
    assert not reader.present()
    with pytest.raises(CardReaderUnavailable, match="No Such Reader"):
        reader.wait_for_card(0.1)


def test_without_a_pcscd_to_talk_to_the_reader_is_unavailable(pcscd: PcscDaemon) -> None:
    # libpcsclite reads PCSCLITE_CSOCK_NAME once per process: point a fresh one at a socket nobody serves.
    script = ("from adapters.pcsc_reader import PcscCardReader\n"
              "from domain.hardware import CardReaderUnavailable\n"
              "reader = PcscCardReader('Virtual PCD 00 00')\n"
              "print('present' if reader.present() else 'absent')\n"
              "try:\n    reader.wait_for_card(0.1)\nexcept CardReaderUnavailable as exc:\n    print(exc.code)\n")
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": "/nonexistent/pcscd.comm", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=30, check=True)
    assert done.stdout.split() == ["absent", "reader_unavailable"]
    assert PcscCardReader(CHIP_READER).present()  # while this process's pcscd is there all along
