"""A virtual ESC/POS network printer, for tests, demos and the load simulator.

``PrinterSink`` listens on 127.0.0.1 (a free port unless given) in a daemon thread, like a receipt
printer's port 9100: it keeps what it is sent, one job per cut, and answers the real-time status
queries (DLE EOT n) at once, inline in the byte stream, as printers do. Switches make it run out of
paper, near its end, go offline, lose power, or answer status queries with rubbish.

    with PrinterSink() as sink:
        printer = EscposPrinter(f"tcp://127.0.0.1:{sink.port}")
        ...
        assert sink.wait_for_jobs(1, timeout_s=2)
        jobs_text(sink.jobs)
"""

from __future__ import annotations

import queue
import selectors
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

from adapters.escpos_decoder import CUT_COMMANDS, STATUS_QUERY, next_command

MalformedStatus = Literal["garbage", "silent"]

# Status bytes (ESC/POS DLE EOT n): bits 1 and 4 are always 1, bits 0 and 7 always 0.
_FIXED_BITS = 0x12
_OFFLINE = 0x08  # n=1: offline
_COVER_OPEN = 0x04  # n=2: why offline
_STOPPED_NO_PAPER = 0x20  # n=2: printing stopped at paper end
_NEAR_END = 0x0C  # n=4: roll paper near-end sensor
_PAPER_END = 0x60  # n=4: roll paper end sensor
_GARBAGE = b"\xff\xa5\x00"  # breaks the fixed bits, and more than the one byte asked for
_CONTROL_TIMEOUT_S = 5.0  # a control call waits this long for the sink's thread; it answers in microseconds


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    unread: bytearray = field(default_factory=bytearray)  # received, not yet a whole command
    job: bytearray = field(default_factory=bytearray)  # printed since the last cut


class PrinterSink:
    """A virtual ESC/POS network printer on 127.0.0.1 that stores its jobs and answers status queries.

    A job ends at a cut (GS V, ESC i, ESC m), or when its connection closes with data after the last
    cut. Status queries are answered and never stored. Switches, settable at any time:

    * ``paper_out``: status reports the roll empty; print data is discarded (counted in ``discarded``).
    * ``near_end``: status reports the roll near its end; printing goes on.
    * ``offline``: status reports offline (cover open); print data is discarded.
    * ``malformed_status``: "garbage" answers status queries with bytes no printer sends, "silent" does
      not answer them; None (default) answers properly.

    ``power_off()`` closes the listening socket and every connection (data not yet cut is lost), so a
    new connection is refused; ``power_on()`` listens again on the same port.
    """

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", paper_out: bool = False, near_end: bool = False,
                 offline: bool = False, malformed_status: MalformedStatus | None = None) -> None:
        self.host = host
        self.port = port
        self.paper_out = paper_out
        self.near_end = near_end
        self.offline = offline
        self.malformed_status = malformed_status
        self._lock = threading.Lock()
        self._jobs_changed = threading.Condition(self._lock)
        self._jobs: list[bytes] = []
        self._discarded = 0
        self._status_queries = 0
        self._thread: threading.Thread | None = None
        self._selector: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._connections: dict[socket.socket, _Connection] = {}
        self._control: queue.SimpleQueue[tuple[Callable[[], None], Future[None]]] = queue.SimpleQueue()
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._stopping = False

    # ---- life cycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen (on ``port``; 0 picks a free one, then ``port`` tells which) and serve in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("the printer sink is already started")
        self._stopping = False
        self._selector = selectors.DefaultSelector()
        self._wake = socket.socketpair()
        self._wake[0].setblocking(False)
        self._selector.register(self._wake[0], selectors.EVENT_READ, self._on_wake)
        try:
            self._listen()
        except OSError:
            self._release()
            raise
        self._thread = threading.Thread(target=self._serve, name=f"printer-sink-{self.port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving: close every socket and end the thread. Idempotent."""
        thread = self._thread
        if thread is None:
            self._release()
            return
        if thread.is_alive():
            self._call(self._stop)
            thread.join(_CONTROL_TIMEOUT_S)
        self._thread = None
        self._release()

    def __enter__(self) -> Self:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def power_off(self) -> None:
        """Nothing listens any more and every connection is closed; data not yet cut is lost."""
        self._call(self._power_off)

    def power_on(self) -> None:
        """Listen again on the same port (no-op when already on)."""
        self._call(self._power_on)

    @property
    def powered(self) -> bool:
        return self._listener is not None

    # ---- what it received -------------------------------------------------------------------------

    @property
    def jobs(self) -> list[bytes]:
        """The jobs received so far (a copy), oldest first."""
        with self._lock:
            return list(self._jobs)

    @property
    def discarded(self) -> int:
        """Bytes of print data thrown away while out of paper, offline or losing power."""
        with self._lock:
            return self._discarded

    @property
    def status_queries(self) -> int:
        """How many DLE EOT queries arrived (answered or not)."""
        with self._lock:
            return self._status_queries

    def wait_for_jobs(self, n: int, timeout_s: float) -> bool:
        """True once at least ``n`` jobs arrived; False after ``timeout_s`` without them."""
        with self._jobs_changed:
            return self._jobs_changed.wait_for(lambda: len(self._jobs) >= n, timeout=timeout_s)

    def status_byte(self, n: int) -> int | None:
        """The answer to DLE EOT ``n`` under the current switches (None: n is not a status kind).

        1 printer (bit 3 offline), 2 offline cause (bit 2 cover open, bit 5 stopped at paper end),
        3 error cause (none here), 4 roll paper (bits 2-3 near end, bits 5-6 end): the bit layout that
        python-escpos' ``is_online()`` and ``paper_status()`` read.
        """
        if n == 1:
            return _FIXED_BITS | (_OFFLINE if self.offline else 0)
        if n == 2:
            return _FIXED_BITS | (_COVER_OPEN if self.offline else 0) | (_STOPPED_NO_PAPER if self.paper_out else 0)
        if n == 3:
            return _FIXED_BITS
        if n == 4:
            return (_FIXED_BITS | (_NEAR_END if self.near_end or self.paper_out else 0)
                    | (_PAPER_END if self.paper_out else 0))
        return None

    # ---- the sink's thread ------------------------------------------------------------------------

    def _call(self, action: Callable[[], None]) -> None:
        # Sockets belong to the sink's thread: other threads hand it the work and wait for it to be done.
        if self._thread is None or self._wake is None:
            raise RuntimeError("the printer sink is not started")
        done: Future[None] = Future()
        self._control.put((action, done))
        self._wake[1].send(b"\0")
        done.result(_CONTROL_TIMEOUT_S)

    def _serve(self) -> None:
        assert self._selector is not None
        try:
            while not self._stopping:
                for key, _ in self._selector.select():
                    key.data(key.fileobj)
        finally:
            self._power_off()

    def _on_wake(self, wake: socket.socket) -> None:
        try:
            wake.recv(4096)
        except BlockingIOError:
            pass
        while True:
            try:
                action, done = self._control.get_nowait()
            except queue.Empty:
                return
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - handed to the caller, which raises it
                done.set_exception(exc)
            else:
                done.set_result(None)

    def _stop(self) -> None:
        self._stopping = True

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Closed connections linger in TIME_WAIT; without this power_on could not take the port back.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(8)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        assert self._selector is not None
        self._selector.register(listener, selectors.EVENT_READ, self._on_accept)
        self._listener = listener

    def _power_on(self) -> None:
        if self._listener is None:
            self._listen()

    def _power_off(self) -> None:
        if self._listener is not None and self._selector is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None
        for connection in list(self._connections.values()):
            with self._lock:
                self._discarded += len(connection.job) + len(connection.unread)
            connection.job.clear()
            connection.unread.clear()
            self._drop(connection)

    def _release(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if self._wake is not None:
            for end in self._wake:
                end.close()
            self._wake = None
        if self._listener is not None:  # only when the thread never ran
            self._listener.close()
            self._listener = None

    def _on_accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except OSError:  # the client gave up already
            return
        sock.setblocking(False)
        connection = _Connection(sock)
        self._connections[sock] = connection
        assert self._selector is not None
        self._selector.register(sock, selectors.EVENT_READ, self._on_readable)

    def _on_readable(self, sock: socket.socket) -> None:
        connection = self._connections[sock]
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            # The client hung up: a printer prints what it got, cut or not (a command cut short too).
            if self.paper_out or self.offline:
                with self._lock:
                    self._discarded += len(connection.unread)
            else:
                connection.job += connection.unread
            connection.unread.clear()
            self._end_job(connection)
            self._drop(connection)
            return
        connection.unread += chunk
        self._consume(connection)

    def _consume(self, connection: _Connection) -> None:
        data, pos = connection.unread, 0
        while pos < len(data):
            command = next_command(data, pos)
            if command is None:  # the rest of this command is still on its way
                break
            if command.name == STATUS_QUERY:
                self._answer(connection, data[pos + 2])
            elif self.paper_out or self.offline:
                with self._lock:
                    self._discarded += command.end - pos
            else:
                connection.job += data[pos:command.end]
                if command.name in CUT_COMMANDS:
                    self._end_job(connection)
            pos = command.end
        del data[:pos]

    def _answer(self, connection: _Connection, n: int) -> None:
        with self._lock:
            self._status_queries += 1
        mode = self.malformed_status
        if mode == "silent":
            return
        if mode == "garbage":
            reply = _GARBAGE
        else:
            status = self.status_byte(n)
            if status is None:  # printers ignore a status kind they do not have
                return
            reply = bytes([status])
        try:
            connection.sock.send(reply)
        except OSError:  # the client is gone or never reads: a printer does not wait for it either
            pass

    def _end_job(self, connection: _Connection) -> None:
        if connection.job:
            with self._jobs_changed:
                self._jobs.append(bytes(connection.job))
                self._jobs_changed.notify_all()
            connection.job.clear()

    def _drop(self, connection: _Connection) -> None:
        del self._connections[connection.sock]
        if self._selector is not None:
            self._selector.unregister(connection.sock)
        connection.sock.close()
