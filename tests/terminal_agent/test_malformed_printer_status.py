"""A receipt printer that answers its status queries (DLE EOT n) with rubbish, too little or nothing: the
receipt desk records PrintFailed with the reason, says so to the cashier, and the counter goes on (the sale
completes, a reprint comes out once the printer is well, the next sale prints). Bounded in time.

The printer is the TCP printer sink (its ``malformed_status`` switch) or, for a reply cut short, a
printer here that hangs up instead of answering. The agent talks to it through python-escpos' real
network backend; the sale is a cash sale, so no card is involved.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from adapters.escpos_decoder import decode_escpos
from adapters.printer_sink import PrinterSink
from terminal_agent.counter import State
from terminal_agent.recorder import StreamRef
from terminal_agent.scripted_cashier import Customer
from terminal_agent.virtual_hands import InProcessHands
from tests.terminal_agent.virtual_counter import PRINTER_TIMEOUT_S, VirtualCounter, virtual_counter

DLE_EOT = b"\x10\x04"
ONLINE_QUERY, PAPER_QUERY = DLE_EOT + b"\x01", DLE_EOT + b"\x04"
STATUS_OK = b"\x12"  # bits 1 and 4 set, nothing wrong


class HangsUpOnStatus:
    """A network printer whose status answers are cut short: ``answers`` queries get a proper byte, then it
    hangs up on the next one instead of answering (python-escpos reads nothing: no status byte at all)."""

    def __init__(self, answers: int) -> None:
        self.answers = answers
        self.queries = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hangs-up-printer", daemon=True)

    def __enter__(self) -> HangsUpOnStatus:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with connection:
                self._talk(connection)

    def _talk(self, connection: socket.socket) -> None:
        connection.settimeout(0.2)
        answered = 0
        while not self._stop.is_set():
            try:
                data = connection.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            for _ in range(data.count(DLE_EOT)):
                self.queries += 1
                if answered >= self.answers:
                    return  # the reply is cut short: the printer hangs up
                answered += 1
                with suppress(OSError):
                    connection.sendall(STATUS_OK)


@contextmanager
def counter_with(printer_url: str, tmp_path: Path) -> Iterator[VirtualCounter]:
    with virtual_counter(tmp_path, printer_url=printer_url,
                         hands_for=lambda chip, tap: InProcessHands(chip, tap)) as counter:
        yield counter


def cash_sale(counter: VirtualCounter, amount_minor: int = 1_250) -> tuple[Any, float]:
    counter.cashier.next_customer(Customer(amount_minor=amount_minor, tendered_minor=2_000))
    started = time.monotonic()
    result = counter.agent.cash.run(amount_minor, 2_000)
    return result, time.monotonic() - started


def prints(counter: VirtualCounter, transaction_id: str) -> list[tuple[str, str, str]]:
    """(type, copy, reason) of each ReceiptPrinted / PrintFailed the service recorded."""
    return [(e["type"], e["data"]["copy"], e["data"].get("reason", "")) for e in counter.events(transaction_id)
            if e["type"] in ("ReceiptPrinted", "PrintFailed")]


@pytest.fixture
def sink() -> Iterator[PrinterSink]:
    with PrinterSink() as running:
        yield running


@pytest.mark.parametrize(("mode", "reason"), [
    ("garbage", "answered its status query with ff a5 00, which is not an ESC/POS status byte"),
    ("silent", f"did not answer within {PRINTER_TIMEOUT_S:g} s"),
], ids=["garbage", "silent"])
def test_a_status_answer_that_is_rubbish_or_missing_records_print_failed_and_the_counter_goes_on(
        sink: PrinterSink, tmp_path: Path, mode: str, reason: str) -> None:
    with counter_with(f"tcp://127.0.0.1:{sink.port}", tmp_path) as counter:
        sink.malformed_status = mode  # type: ignore[assignment]

        result, took = cash_sale(counter)

        assert (result.outcome, result.printed) == ("approved", False)
        failed = prints(counter, result.transaction_id)
        assert [(kind, copy) for kind, copy, _ in failed] == [("PrintFailed", "merchant"), ("PrintFailed", "customer")]
        assert all(why.startswith("printer_unavailable: ") and reason in why for _, _, why in failed), failed
        assert counter.types(result.transaction_id)[-1] == "TransactionCompleted"
        assert counter.cashier.codes().count("printer_unavailable") == 2
        assert counter.agent.counter.state is State.IDLE
        assert sink.jobs == [] and sink.status_queries >= 2
        assert took < 10 * PRINTER_TIMEOUT_S + 5

        # The printer is well again: the reprint comes out, and so do the next sale's slips.
        sink.malformed_status = None
        sale = counter.agent.counter.journal.sale(result.transaction_id)
        assert sale is not None
        assert counter.agent.receipts.print_copy(StreamRef("transaction", result.transaction_id, sale["version"]),
                                                 "merchant")
        assert prints(counter, result.transaction_id)[-1][:2] == ("ReceiptPrinted", "merchant")
        following, _ = cash_sale(counter, 800)
        assert (following.outcome, following.printed) == ("approved", True)
        assert sink.wait_for_jobs(3, timeout_s=5)
        assert "商户存根" in decode_escpos(sink.jobs[0]).text


@pytest.mark.parametrize("answers", [0, 1], ids=["no byte to the first query", "no byte to the paper query"])
def test_a_status_reply_cut_short_by_a_hang_up_records_print_failed_and_the_counter_goes_on(
        tmp_path: Path, answers: int) -> None:
    with HangsUpOnStatus(answers=10**6) as printer, counter_with(f"tcp://127.0.0.1:{printer.port}", tmp_path) as counter:
        printer.answers = answers  # well through the start of day; from now on each reply is cut short

        result, took = cash_sale(counter)

        assert (result.outcome, result.printed) == ("approved", False)
        failed = prints(counter, result.transaction_id)
        assert [(kind, copy) for kind, copy, _ in failed] == [("PrintFailed", "merchant"), ("PrintFailed", "customer")]
        assert all(why.startswith("printer_unavailable: ") and "closed the connection" in why
                   for _, _, why in failed), failed
        assert counter.types(result.transaction_id)[-1] == "TransactionCompleted"
        assert counter.agent.counter.state is State.IDLE
        assert took < 10


def test_the_journal_keeps_print_failed_with_its_reason_when_the_service_has_it_too(
        sink: PrinterSink, tmp_path: Path) -> None:
    with counter_with(f"tcp://127.0.0.1:{sink.port}", tmp_path) as counter:
        sink.malformed_status = "garbage"

        result, _ = cash_sale(counter)

        journaled = [(e["event"]["type"], e["event"].get("reason", ""), e["state"])
                     for e in counter.agent.counter.journal.events(result.transaction_id)
                     if e["event"]["type"] == "PrintFailed"]
        assert [(kind, state) for kind, _, state in journaled] == [("PrintFailed", "forwarded")] * 2
        assert all("not an ESC/POS status byte" in why for _, why, _ in journaled)

