"""The virtual ESC/POS network printer, over real TCP on 127.0.0.1, driven with raw sockets and python-escpos.

A status query is answered after everything sent before it was handled, so reading its answer is the
barrier that makes assertions on stored jobs exact without sleeping.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

import adapters.escpos_printer  # noqa: F401  (imports python-escpos without its side effects)
from adapters.escpos_decoder import jobs_text
from adapters.printer_sink import PrinterSink

CUT = b"\x1dV\x01"
TIMEOUT_S = 2.0


@pytest.fixture
def sink() -> Iterator[PrinterSink]:
    with PrinterSink() as running:
        yield running


def connect(sink: PrinterSink) -> socket.socket:
    return socket.create_connection(("127.0.0.1", sink.port), timeout=TIMEOUT_S)


def ask(client: socket.socket, n: int) -> bytes:
    client.sendall(b"\x10\x04" + bytes([n]))
    return client.recv(16)


def test_jobs_are_split_at_cuts(sink: PrinterSink) -> None:
    with connect(sink) as client:
        client.sendall(b"\x1b@first\n" + CUT + b"second\n" + b"\x1dVA\x03" + b"third\n")
        ask(client, 1)
    assert sink.wait_for_jobs(3, TIMEOUT_S)
    assert jobs_text(sink.jobs) == ["first\n", "second\n", "third\n"]  # the last one ended when the client left


def test_a_job_sent_byte_by_byte_is_stored_whole(sink: PrinterSink) -> None:
    job = b"\x1b@\x1c&" + "合计：￥12.50\n".encode("gb18030") + b"\x1d(k\x06\x001P0abc" + CUT
    with connect(sink) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in job:
            client.sendall(bytes([byte]))
        assert sink.wait_for_jobs(1, TIMEOUT_S)
    assert sink.jobs == [job]


def test_status_queries_are_answered_inline_and_never_stored(sink: PrinterSink) -> None:
    with connect(sink) as client:
        client.sendall(b"before\n")
        assert ask(client, 1) == b"\x12"
        client.sendall(b"after\n" + CUT)
        assert sink.wait_for_jobs(1, TIMEOUT_S)
    assert sink.jobs == [b"before\nafter\n" + CUT]
    assert sink.status_queries == 1


@pytest.mark.parametrize(("switches", "answers"), [
    ({}, {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x12}),
    ({"near_end": True}, {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x1E}),
    ({"paper_out": True}, {1: 0x12, 2: 0x32, 3: 0x12, 4: 0x7E}),
    ({"offline": True}, {1: 0x1A, 2: 0x16, 3: 0x12, 4: 0x12}),
], ids=["ready", "near_end", "paper_out", "offline"])
def test_each_switch_gives_the_standard_status_bytes(sink: PrinterSink, switches: dict[str, bool],
                                                     answers: dict[int, int]) -> None:
    for name, value in switches.items():
        setattr(sink, name, value)
    with connect(sink) as client:
        assert {n: ask(client, n)[0] for n in answers} == answers


@pytest.mark.parametrize(("switches", "online", "paper"), [
    ({}, True, 2), ({"near_end": True}, True, 1), ({"paper_out": True}, True, 0), ({"offline": True}, False, 2),
], ids=["ready", "near_end", "paper_out", "offline"])
def test_python_escpos_reads_the_status_bytes_as_meant(sink: PrinterSink, switches: dict[str, bool],
                                                       online: bool, paper: int) -> None:
    from escpos.printer import Network  # type: ignore[import-untyped]  # already imported, side effects undone

    for name, value in switches.items():
        setattr(sink, name, value)
    printer = Network("127.0.0.1", sink.port, timeout=TIMEOUT_S)
    try:
        assert printer.is_online() is online
        assert printer.paper_status() == paper
    finally:
        printer.close()


@pytest.mark.parametrize("switch", ["paper_out", "offline"])
def test_print_data_is_discarded_without_paper_or_offline(sink: PrinterSink, switch: str) -> None:
    setattr(sink, switch, True)
    with connect(sink) as client:
        client.sendall(b"lost\n" + CUT)
        ask(client, 4)
    assert sink.jobs == []
    assert sink.discarded == len(b"lost\n" + CUT)


def test_near_end_still_prints(sink: PrinterSink) -> None:
    sink.near_end = True
    with connect(sink) as client:
        client.sendall(b"kept\n" + CUT)
        assert sink.wait_for_jobs(1, TIMEOUT_S)
    assert sink.discarded == 0


@pytest.mark.parametrize(("mode", "answer"), [("garbage", b"\xff\xa5\x00"), ("silent", b"")])
def test_malformed_status_answers_rubbish_or_nothing(sink: PrinterSink, mode: str, answer: bytes) -> None:
    sink.malformed_status = mode  # type: ignore[assignment]
    with connect(sink) as client:
        client.settimeout(0.2)
        client.sendall(b"\x10\x04\x01")
        try:
            received = client.recv(16)
        except TimeoutError:
            received = b""
    assert received == answer


def test_power_off_refuses_connections_and_closes_open_ones(sink: PrinterSink) -> None:
    with connect(sink) as client:
        client.sendall(b"half a job\n")
        ask(client, 1)
        sink.power_off()
        assert client.recv(16) == b""  # the printer hung up
    with pytest.raises(ConnectionRefusedError):
        connect(sink)
    assert not sink.powered
    assert sink.jobs == []  # not cut before the power went: lost
    assert sink.discarded == len(b"half a job\n")


def test_power_on_listens_on_the_same_port(sink: PrinterSink) -> None:
    port = sink.port
    sink.power_off()
    sink.power_on()
    assert sink.port == port
    with connect(sink) as client:
        client.sendall(b"back\n" + CUT)
        assert sink.wait_for_jobs(1, TIMEOUT_S)
    assert jobs_text(sink.jobs) == ["back\n"]


def test_close_leaves_no_thread_and_nothing_listening() -> None:
    before = set(threading.enumerate())
    sink = PrinterSink().start()
    port = sink.port
    with connect(sink) as client:
        ask(client, 1)
        sink.close()
    assert set(threading.enumerate()) == before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    sink.close()  # twice is fine


def test_wait_for_jobs_gives_up_after_its_timeout(sink: PrinterSink) -> None:
    assert not sink.wait_for_jobs(1, 0.05)
