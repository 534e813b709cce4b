"""Puts a ``VirtualCard`` into a vpcd virtual reader: the card side of vsmartcard's socket protocol.

pcscd's vpcd driver listens on TCP (35963 for "Virtual PCD 00 00", 35964 for "Virtual PCD 00 01"). A card
"is inserted" while a client is connected. Every message is a 2-byte big-endian length and a payload; a
1-byte payload is control (0 power off, 1 power on, 2 reset, 4 "send your ATR"), a longer one a command
APDU to answer. pcscd polls for the card every 400 ms, so it notices an insertion or removal that late.

A card cannot come back faster than pcscd polls: if the slot is not seen empty once after a pull, pcscd
misses the removal and then never notices the new card. ``insert`` therefore waits until ``REINSERT_GAP_S``
have passed since the last card left that port (any link's), as a cardholder's hand would anyway.

A daemon thread serves the card; every blocking call has a timeout, and ``close`` joins the thread.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from types import TracebackType
from typing import Self

from adapters.virtual_card import VirtualCard
from domain.hardware import CardReaderUnavailable

RECV_SLICE_S = 0.1  # how often the serving thread looks at its stop flag
JOIN_S = 2.0
REINSERT_GAP_S = 0.5  # pcscd polls every 400 ms

_pulled_at: dict[tuple[str, int], float] = {}  # (host, port) -> when the last card left that slot
_pulled_lock = threading.Lock()


def _mark_pulled(host: str, port: int) -> None:
    with _pulled_lock:
        _pulled_at[(host, port)] = time.monotonic()


def _wait_for_gap(host: str, port: int) -> None:
    with _pulled_lock:
        pulled = _pulled_at.get((host, port))
    if pulled is not None:
        time.sleep(max(0.0, pulled + REINSERT_GAP_S - time.monotonic()))

_POWER_OFF, _POWER_ON, _RESET, _ATR = 0, 1, 2, 4


class VpcdCardLink:
    """A virtual card in a vpcd reader slot: ``insert``, ``remove``, ``remove_after(n)``, ``close``."""

    def __init__(self, card: VirtualCard, port: int = 35963, host: str = "127.0.0.1", *,
                 connect_timeout_s: float = 2.0) -> None:
        self.card = card
        self.port = port
        self.host = host
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._apdus_left: int | None = None
        self.apdus_served = 0
        self.failure: BaseException | None = None  # a bug in the card, kept for close() to report

    def __repr__(self) -> str:
        return f"VpcdCardLink({self.card!r}, {self.host}:{self.port}, inserted={self.inserted})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def inserted(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def insert(self) -> None:
        """Connect to vpcd: the card appears in the reader at pcscd's next poll (~0.4 s)."""
        if self.inserted:
            raise RuntimeError("the card is already inserted")
        self._join()
        _wait_for_gap(self.host, self.port)
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self._connect_timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise CardReaderUnavailable(
                f"no vpcd reader listens on {self.host}:{self.port} (is pcscd with vsmartcard-vpcd running?)"
            ) from exc
        sock.settimeout(RECV_SLICE_S)
        with self._lock:
            self._apdus_left = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(sock, self._stop),
                                        name=f"vpcd-card-{self.port}", daemon=True)
        self._thread.start()

    def remove(self) -> None:
        """Pull the card: close the socket (pcscd notices at its next poll)."""
        self._stop.set()
        self._join()

    def remove_after(self, n_apdus: int) -> None:
        """Pull the card right after answering the ``n_apdus``-th APDU from now (GET RESPONSEs count)."""
        if n_apdus < 1:
            raise ValueError("remove_after counts at least one APDU")
        with self._lock:
            self._apdus_left = n_apdus

    def close(self) -> None:
        self.remove()
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise RuntimeError("the virtual card failed while answering a command") from failure

    def _join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(JOIN_S)
            if thread.is_alive():  # cannot happen with the recv timeout; never leave it silently
                raise RuntimeError(f"the vpcd card thread for port {self.port} did not stop")

    # ---- the serving thread ------------------------------------------------------------------------------
    def _serve(self, sock: socket.socket, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                header = self._receive(sock, 2, stop)
                if header is None:
                    return
                (length,) = struct.unpack(">H", header)
                payload = self._receive(sock, length, stop) if length else b""
                if payload is None:
                    return
                reply, pull = self._answer(payload)
                if reply is not None:
                    sock.sendall(struct.pack(">H", len(reply)) + reply)
                if pull:
                    return
        except OSError:
            return  # pcscd went away, or the socket was reset: the card is out either way
        finally:
            sock.close()
            _mark_pulled(self.host, self.port)

    @staticmethod
    def _receive(sock: socket.socket, n: int, stop: threading.Event) -> bytes | None:
        """Exactly ``n`` bytes; None on EOF or when asked to stop."""
        buf = bytearray()
        while len(buf) < n:
            if stop.is_set():
                return None
            try:
                # vpcd writes a message's length and its body in two sends; its Nagle waits for our ACK
                # of the first, which Linux delays by ~40 ms unless asked (QUICKACK resets after use).
                if hasattr(socket, "TCP_QUICKACK"):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                chunk = sock.recv(n - len(buf))
            except TimeoutError:
                continue
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _answer(self, payload: bytes) -> tuple[bytes | None, bool]:
        """The reply to one message (None: no reply) and whether to pull the card right after it."""
        if len(payload) == 1:
            if payload[0] == _ATR:
                return self.card.atr(), False
            if payload[0] in (_POWER_ON, _RESET, _POWER_OFF):
                self.card.reset()
            return None, False
        try:
            response = self.card.process(payload)
        except Exception as exc:  # noqa: BLE001 - a bug in the card must not kill the thread silently
            self.failure = self.failure or exc
            response = b"\x6F\x00"
        with self._lock:
            self.apdus_served += 1
            pull = False
            if self._apdus_left is not None:
                self._apdus_left -= 1
                pull = self._apdus_left == 0
                if pull:
                    self._apdus_left = None
        return response, pull
