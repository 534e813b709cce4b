"""The ISO 8583 client against the acquirer simulator, over real TCP on 127.0.0.1.

The simulator runs on its own loop in a thread; each test drives the client with ``asyncio.run``.
Every wait is bounded: the client's reply timeout is short, and so are the rules' delays.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from adapters.acquirer_client import Iso8583AcquirerHost
from adapters.acquirer_simulator import AcquirerSimulator, SimulatorThread
from adapters.iso8583_messages import encode_financial
from adapters.iso8583_spec import pack
from domain.acquirer import (
    REVERSAL_TIMEOUT,
    AcquirerNoReply,
    AcquirerUnavailable,
    BatchTotals,
    CardData,
    FinancialRequest,
    HostReply,
    OriginalRef,
    ReversalRequest,
    SettlementRequest,
    SignOnRequest,
    TerminalRef,
)
from projections.settlement_file import parse_settlement_csv

T = TypeVar("T")
PAN = "6222021234567890128"
OTHER_PAN = "6228480012345678903"
TERMINAL = TerminalRef(merchant_no="898310048990001", terminal_no="30000001")
NOW = datetime(2026, 11, 24, 10, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
SHORT = 0.3  # the client's reply timeout where a test waits for it to run out


class Till:
    """A test's view of one terminal: builds requests, talks to the simulator, reads its journal."""

    def __init__(self, simulator: AcquirerSimulator, port: int, journal_path: Path, settlement_dir: Path) -> None:
        self.simulator = simulator
        self.port = port
        self.journal_path = journal_path
        self.settlement_dir = settlement_dir

    def host(self, timeout_s: float = 2.0) -> Iso8583AcquirerHost:
        return Iso8583AcquirerHost("127.0.0.1", self.port, timeout_s=timeout_s, connect_timeout_s=1.0)

    @staticmethod
    def run(exchange: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(exchange)

    def sale(self, stan: str, amount_minor: int = 10_000, *, pan: str = PAN, batch_no: str = "000001",
             timeout_s: float = 2.0, currency: str = "CNY") -> HostReply:
        request = FinancialRequest(kind="sale", terminal=TERMINAL, batch_no=batch_no, stan=stan,
                                   amount_minor=amount_minor, currency=currency, card=CardData(pan, "2812"),
                                   entry_mode="chip", chip_data={"9F26": "0102030405060708", "95": "0000000000"},
                                   local_time=NOW)
        return self.run(self.host(timeout_s).authorize(request))

    def follow_up(self, kind: str, stan: str, sale: HostReply, sale_stan: str, amount_minor: int) -> HostReply:
        original = OriginalRef(rrn=sale.rrn, auth_code=sale.auth_code, batch_no="000001", stan=sale_stan,
                               date_mmdd="1124")
        request = FinancialRequest(kind=kind, terminal=TERMINAL, batch_no="000001", stan=stan,
                                   amount_minor=amount_minor, currency="CNY", card=CardData(PAN), entry_mode="swipe",
                                   chip_data={}, local_time=NOW, original=original)
        return self.run(self.host().authorize(request))

    def reverse(self, stan: str, amount_minor: int = 10_000, kind: str = "sale", timeout_s: float = 2.0) -> str:
        request = ReversalRequest(kind=kind, terminal=TERMINAL, batch_no="000001", stan=stan,
                                  amount_minor=amount_minor, currency="CNY", reason_code=REVERSAL_TIMEOUT,
                                  local_time=NOW)
        return self.run(self.host(timeout_s).reverse(request)).response_code

    def sign_on(self, batch_no: str) -> str:
        reply = self.run(self.host().sign_on(SignOnRequest(TERMINAL, batch_no, "01", NOW)))
        assert reply.response_code == "00"
        return reply.batch_no

    def settle(self, totals: BatchTotals, batch_no: str = "000001") -> Any:
        return self.run(self.host().settle(SettlementRequest(TERMINAL, batch_no, "CNY", totals, "01", NOW)))

    def state(self, stan: str) -> str:
        entry = self.simulator.journal.entry(TERMINAL.terminal_no, "000001", stan)
        assert entry is not None
        return entry.state


@pytest.fixture
def till(tmp_path: Path) -> Iterator[Till]:
    journal_path = tmp_path / "acquirer.sqlite"
    simulator = AcquirerSimulator(journal_path, settlement_dir=tmp_path, fee_ppm=3800, now=lambda: NOW)
    try:
        with SimulatorThread(simulator) as port:
            yield Till(simulator, port, journal_path, tmp_path)
    finally:
        simulator.close()


def test_an_approved_sale_returns_an_auth_code_and_rrn_and_the_journal_holds_only_the_masked_pan(till: Till) -> None:
    reply = till.sale("000001", 12_345)

    assert reply.approved and len(reply.auth_code) == 6 and len(reply.rrn) == 12 and reply.rrn.isdigit()
    assert (reply.acquirer_id, reply.issuer_id) == ("48020000", "01020000")
    [entry] = till.simulator.journal.entries()
    assert (entry.kind, entry.state, entry.amount_minor, entry.rrn, entry.auth_code, entry.masked_pan) == \
        ("sale", "approved", 12_345, reply.rrn, reply.auth_code, "622202*********0128")
    for path in till.journal_path.parent.glob("acquirer.sqlite*"):
        assert PAN.encode() not in path.read_bytes()


@pytest.mark.parametrize("code", ["05", "51", "54", "55"])
def test_a_declining_rule_declines_with_its_response_code_and_the_journal_says_declined(till: Till,
                                                                                        code: str) -> None:
    till.simulator.set_rules([{"pan_suffix": "8903", "action": "decline", "response_code": code}])

    declined = till.sale("000001", pan=OTHER_PAN)
    approved = till.sale("000002")

    assert (declined.response_code, declined.approved, declined.auth_code) == (code, False, "")
    assert approved.approved
    assert (till.state("000001"), till.state("000002")) == ("declined", "approved")


def test_a_reply_slower_than_the_timeout_leaves_the_outcome_unknown_though_the_host_approved(till: Till) -> None:
    till.simulator.set_rules([{"amount_minor": 777, "action": "slow", "delay_ms": 1500}])

    with pytest.raises(AcquirerNoReply):
        till.sale("000001", 777, timeout_s=SHORT)

    assert till.state("000001") == "approved"


def test_a_slow_reply_within_the_timeout_is_an_answer(till: Till) -> None:
    till.simulator.set_rules([{"action": "slow", "delay_ms": 100}])

    assert till.sale("000001").approved


def test_a_dropped_reply_leaves_the_outcome_unknown(till: Till) -> None:
    till.simulator.set_rules([{"kinds": ["sale"], "action": "drop"}])

    with pytest.raises(AcquirerNoReply):
        till.sale("000001", timeout_s=SHORT)

    assert till.state("000001") == "approved"


def test_a_host_that_hangs_up_without_replying_leaves_the_outcome_unknown(till: Till) -> None:
    till.simulator.set_rules([{"action": "disconnect"}])

    with pytest.raises(AcquirerNoReply):
        till.sale("000001")

    assert till.state("000001") == "approved"


def test_a_duplicated_reply_is_used_once_and_the_next_request_gets_its_own_answer(till: Till) -> None:
    till.simulator.set_rules([{"times": 1, "action": "duplicate"}])

    first = till.sale("000001", 100)
    second = till.sale("000002", 200)

    assert first.approved and second.approved and first.rrn != second.rrn
    assert [entry.rrn for entry in till.simulator.journal.entries()] == [first.rrn, second.rrn]


def test_a_stale_reply_for_another_stan_is_ignored(till: Till) -> None:
    till.simulator.set_rules([{"action": "stale_reply_first"}])

    reply = till.sale("000001")

    assert reply.approved and reply.rrn == till.simulator.journal.entries()[0].rrn


def test_nothing_listening_makes_the_acquirer_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    host = Iso8583AcquirerHost("127.0.0.1", free_port, timeout_s=1.0, connect_timeout_s=1.0)
    request = SignOnRequest(TERMINAL, "000001", "01", NOW)

    with pytest.raises(AcquirerUnavailable):
        asyncio.run(host.sign_on(request))


def test_an_unknown_currency_is_refused_before_anything_is_sent(till: Till) -> None:
    with pytest.raises(ValueError, match="XAU"):
        till.sale("000001", currency="XAU")

    assert till.simulator.journal.entries() == []


def test_reversing_an_approved_sale_is_acknowledged_and_again_still_acknowledged(till: Till) -> None:
    till.sale("000001")

    assert till.reverse("000001") == "00"
    assert till.state("000001") == "reversed"
    assert till.reverse("000001") == "00"
    assert till.simulator.journal.approved_outstanding() == []


def test_reversing_a_stan_the_host_never_saw_answers_25(till: Till) -> None:
    assert till.reverse("000099") == "25"


def test_a_times_rule_drops_the_first_reversal_and_acknowledges_the_second(till: Till) -> None:
    till.sale("000001")
    till.simulator.set_rules([{"kinds": ["reversal"], "times": 1, "action": "drop"}])

    with pytest.raises(AcquirerNoReply):
        till.reverse("000001", timeout_s=SHORT)
    assert till.reverse("000001") == "00"

    assert till.state("000001") == "reversed"


def test_a_repeated_stan_is_a_duplicate_94_and_journals_nothing_new(till: Till) -> None:
    till.sale("000001")

    assert till.sale("000001").response_code == "94"
    assert len(till.simulator.journal.entries()) == 1


def test_a_void_cancels_its_sale_and_reversing_the_void_revives_the_sale(till: Till) -> None:
    sale = till.sale("000001", 5_000)

    void = till.follow_up("void", "000002", sale, "000001", 5_000)
    assert void.approved and till.state("000001") == "voided"
    assert till.follow_up("void", "000003", sale, "000001", 5_000).response_code == "12"  # already voided

    assert till.reverse("000002", 5_000, kind="void") == "00"
    assert (till.state("000002"), till.state("000001")) == ("reversed", "approved")


def test_a_void_of_an_unknown_rrn_is_not_found(till: Till) -> None:
    ghost = HostReply("00", rrn="999999999999", auth_code="ABCDEF")

    assert till.follow_up("void", "000002", ghost, "000001", 5_000).response_code == "25"


def test_a_partial_refund_is_approved_and_one_beyond_what_remains_is_declined(till: Till) -> None:
    sale = till.sale("000001", 10_000)

    assert till.follow_up("refund", "000002", sale, "000001", 6_000).approved
    assert till.follow_up("refund", "000003", sale, "000001", 5_000).response_code == "61"
    assert till.follow_up("refund", "000004", sale, "000001", 4_000).approved

    assert till.reverse("000004", 4_000, kind="refund") == "00"  # a reversed refund frees its amount
    assert till.follow_up("refund", "000005", sale, "000001", 4_000).approved


def test_sign_on_opens_the_terminals_batch_and_after_its_settlement_the_next_one(till: Till) -> None:
    assert till.sign_on("000001") == "000001"

    till.settle(BatchTotals())

    assert till.sign_on("000001") == "000002"
    assert till.sign_on("000005") == "000005"


def test_a_settlement_that_agrees_with_the_host_is_balanced(till: Till) -> None:
    sale = till.sale("000001", 10_000)
    till.sale("000002", 2_500)
    till.follow_up("refund", "000003", sale, "000001", 1_000)

    reply = till.settle(BatchTotals(debit_count=2, debit_minor=12_500, credit_count=1, credit_minor=1_000))

    assert (reply.response_code, reply.balanced, reply.settlement_date) == ("00", True, "1124")
    assert reply.host_totals == BatchTotals(2, 12_500, 1, 1_000)


def test_a_settlement_that_disagrees_is_not_balanced_and_returns_the_hosts_totals(till: Till) -> None:
    till.sale("000001", 10_000)
    till.sale("000002", 2_500)
    till.reverse("000002", 2_500)

    reply = till.settle(BatchTotals(debit_count=2, debit_minor=12_500))

    assert (reply.response_code, reply.balanced) == ("00", False)
    assert reply.host_totals == BatchTotals(debit_count=1, debit_minor=10_000)
    assert all(entry.settled for entry in till.simulator.journal.entries())


def test_the_settlement_file_lists_sales_and_refunds_but_no_voids_and_parses(till: Till) -> None:
    kept = till.sale("000001", 10_000)
    voided = till.sale("000002", 2_500)
    till.follow_up("void", "000003", voided, "000002", 2_500)
    refund = till.follow_up("refund", "000004", kept, "000001", 1_000)
    till.sale("000005", 999, pan=OTHER_PAN)
    till.reverse("000005", 999)

    till.settle(BatchTotals(debit_count=1, debit_minor=10_000, credit_count=1, credit_minor=1_000))
    data = (till.settlement_dir / "settlement-20261124.csv").read_bytes()
    lines = parse_settlement_csv(data)

    assert PAN.encode() not in data
    assert [(line["type"], line["trace_no"], line["rrn"], line["amount_minor"], line["fee_minor"], line["net_minor"])
            for line in lines] == [("sale", "000001", kept.rrn, 10_000, 38, 9_962),
                                   ("refund", "000004", refund.rrn, 1_000, 3, 997)]
    assert {(line["settlement_date"], line["masked_pan"], line["batch_no"], line["currency"]) for line in lines} == \
        {("2026-11-24", "622202*********0128", "000001", "CNY")}


def test_the_simulator_survives_garbage_and_a_client_that_vanishes(till: Till) -> None:
    sale = pack(encode_financial(FinancialRequest(
        kind="sale", terminal=TERMINAL, batch_no="000001", stan="000009", amount_minor=100, currency="CNY",
        card=CardData(PAN), entry_mode="chip", chip_data={}, local_time=NOW)))
    for junk in (b"\x00\x05hello", b"\xff\xff" + b"x" * 100, (len(sale) + 5).to_bytes(2, "big") + sale[:20]):
        with socket.create_connection(("127.0.0.1", till.port), timeout=2) as raw:
            raw.sendall(junk)
            raw.shutdown(socket.SHUT_WR)
            assert raw.recv(100) == b""  # the simulator closes the connection without answering
    with socket.create_connection(("127.0.0.1", till.port), timeout=2) as raw:
        raw.sendall(len(sale).to_bytes(2, "big") + sale)  # and hangs up before the answer

    assert till.sale("000001").approved
    assert {entry.stan for entry in till.simulator.journal.entries()} == {"000009", "000001"}


def test_the_logs_name_mti_stan_terminal_and_response_but_never_the_card(till: Till,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    till.simulator.set_rules([{"times": 1, "action": "stale_reply_first"},
                              {"pan_prefix": "622848", "action": "decline", "response_code": "51"}])

    till.sale("000001")
    till.sale("000002", pan=OTHER_PAN)

    assert "mti=0200 stan=000001 terminal=30000001 response=00" in caplog.text
    assert "ignored a reply that is not for this request: mti=0210 stan=000002" in caplog.text
    assert "response=51" in caplog.text
    assert PAN not in caplog.text and OTHER_PAN not in caplog.text


def test_a_connection_that_stays_idle_is_closed() -> None:
    simulator = AcquirerSimulator(":memory:", idle_timeout_s=0.2)
    try:
        with SimulatorThread(simulator) as port, socket.create_connection(("127.0.0.1", port), timeout=2) as idle:
            assert idle.recv(100) == b""  # closed by the simulator well before the 2 s timeout
    finally:
        simulator.close()
