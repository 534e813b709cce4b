"""Malformed ISO 8583 replies from the acquirer host: the service never answers the terminal with a 500 and
never hangs. It records the outcome as unknown, tells the terminal so (``outcome: unknown``,
``reversal_pending``, the reason), and the reversal worker sends the reversal (冲正) and records Reversed.

Between the service and the host simulator sits a small host on 127.0.0.1 that passes every exchange
through, except that it spoils the simulator's reply to the sale: bytes that do not decode, the wrong
MTI, no field 39, another STAN, a length prefix cut short or past the frame limit, a frame cut short, an
approval without its auth code. The simulator did approve the sale, so its journal shows whether the
reversal reached it. Timeouts and dropped replies are in tests/api/test_acquirer_host.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from adapters.acquirer_simulator import AcquirerSimulator, SimulatorThread
from adapters.iso8583_spec import Message, pack, unpack
from adapters.settings import Settings
from api.app import build_services
from api.services import Services
from tests.conftest import SteppingClock, fast_hasher
from tests.host_counter import REPLY_TIMEOUT_S, HostTill, host_settings, test_pan



def frame(body: bytes) -> bytes:
    return len(body).to_bytes(2, "big") + body


def changed(**fields: str | None) -> Callable[[bytes], bytes]:
    """The reply re-encoded with these fields changed (None: left out)."""
    def spoil(reply: bytes) -> bytes:
        message: Message = unpack(reply)
        for key, value in fields.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        return frame(pack(message))
    return spoil


# What the sale's reply becomes on the wire (the host hangs up after a cut, else it says nothing more),
# and what the OutcomeUnknown reason says about it.
SPOILED: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "undecodable bytes": (lambda reply: frame(b"\x60\x00\x00\x00\x03" + b"\xde\xad\xbe\xef" * 5),
                          "broke off (MessageError)"),
    "wrong MTI": (changed(t="0230"), f"within {REPLY_TIMEOUT_S}"),
    "no field 39": (changed(**{"39": None}), "broke off (MessageError)"),
    "another STAN": (changed(**{"11": "999999"}), f"within {REPLY_TIMEOUT_S}"),
    "length prefix cut short": (lambda reply: frame(reply)[:1], "broke off (MessageError)"),
    "length prefix past the limit": (lambda reply: b"\xff\xff" + reply, "broke off (MessageError)"),
    "frame cut short": (lambda reply: frame(reply)[:-7], "broke off (MessageError)"),
    "approval without its auth code": (changed(**{"38": None}), "no valid auth code or RRN"),
}
CUTS = ("length prefix cut short", "frame cut short")


class SpoilingHost:
    """A host on 127.0.0.1 in front of the simulator: each exchange is passed through, but the reply to
    the next sale (MTI 0200) is replaced by ``spoil(reply body)`` (raw bytes, length prefix included),
    after which it hangs up if ``hang_up``, else stays silent until the service hangs up."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.spoil: Callable[[bytes], bytes] | None = None
        self.hang_up = False
        self.spoiled = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> SpoilingHost:
        self._start(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name="spoiling-host", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._start(self._serve, connection)

    def _serve(self, connection: socket.socket) -> None:
        with connection, suppress(OSError):  # the service hung up, or a test ended: nothing to answer
            connection.settimeout(5)
            request = _read_frame(connection)
            if request is None:
                return
            with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5) as upstream:
                upstream.sendall(frame(request))
                reply = _read_frame(upstream)
            if reply is None:
                return
            spoil = None
            if unpack(request)["t"] == "0200":
                spoil, self.spoil = self.spoil, None
            if spoil is None:
                connection.sendall(frame(reply))
                return
            self.spoiled += 1
            spoiled = spoil(reply)
            connection.sendall(spoiled)
            if not self.hang_up:  # say nothing more until the service gives up
                self._wait_for_hang_up(connection)

    def _wait_for_hang_up(self, connection: socket.socket) -> None:
        connection.settimeout(0.2)
        while not self._stop.is_set():
            try:
                if not connection.recv(1024):
                    return
            except TimeoutError:
                continue


def _read_frame(sock: socket.socket) -> bytes | None:
    header = _read_exactly(sock, 2)
    return None if header is None else _read_exactly(sock, int.from_bytes(header, "big"))


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[tuple[AcquirerSimulator, int]]:
    (tmp_path / "host-files").mkdir()
    sim = AcquirerSimulator(tmp_path / "host-journal.sqlite", settlement_dir=tmp_path / "host-files")
    with SimulatorThread(sim) as port:
        yield sim, port
    sim.close()


@pytest.fixture
def host(simulator: tuple[AcquirerSimulator, int]) -> Iterator[SpoilingHost]:
    with SpoilingHost(simulator[1]) as spoiling:
        yield spoiling


@pytest.fixture
def services(settings: Settings, host: SpoilingHost, clock: SteppingClock) -> Iterator[Services]:
    built = build_services(host_settings(settings, host.port), clock=clock, hasher=fast_hasher())
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def till(client: TestClient, admin_token: str) -> HostTill:
    till = HostTill(client, admin_token).register().open()
    till.sign_on()
    return till


@pytest.mark.parametrize("case", list(SPOILED))
def test_a_malformed_reply_makes_the_outcome_unknown_and_the_sale_is_reversed(
        till: HostTill, host: SpoilingHost, simulator: tuple[AcquirerSimulator, int], case: str) -> None:
    spoil, why = SPOILED[case]
    txn = till.ready(8_800, test_pan(31))
    host.spoil, host.hang_up = spoil, case in CUTS

    started = time.monotonic()
    response = till.authorize_request(txn, test_pan(31))
    took = time.monotonic() - started

    assert host.spoiled == 1
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["outcome"] in ("unknown", "reversed"), answer  # the worker may have been quicker than the read
    assert answer["auth_code"] is None and answer["rrn"] is None
    assert took < REPLY_TIMEOUT_S + 2.0
    state = till.wait_for_outcome(txn, "reversed")
    assert state["outcome"] == "reversed", state
    events = till.history(txn)["events"]
    types = [e["type"] for e in events]
    assert types[-3:] == ["AuthorizationRequested", "OutcomeUnknown", "Reversed"], types
    unknown = events[-2]["data"]["reason"]
    assert unknown.startswith("no reply from the host: ") and why in unknown, unknown
    stan = events[-3]["data"]["stan"]
    assert [(entry.stan, entry.state) for entry in simulator[0].journal.entries()] == [(stan, "reversed")]


def test_after_a_malformed_reply_is_reversed_the_till_takes_card_sales_again(
        till: HostTill, host: SpoilingHost) -> None:
    txn = till.ready(2_000, test_pan(32))
    host.spoil = SPOILED["undecodable bytes"][0]
    assert till.authorize_card(txn, test_pan(32))["outcome"] in ("unknown", "reversed")
    till.wait_for_outcome(txn, "reversed")
    till.append(txn, {"type": "TransactionCompleted"})

    _, answer = till.sale_through_host(2_000, test_pan(32))

    assert answer["outcome"] == "authorized"
