"""The receipt printer over python-escpos: ``EscposPrinter`` implements ``domain.hardware.ReceiptPrinter``.

A printer is chosen by URL (``parse_printer_url`` checks one; a bad one is a ValueError saying why):

    tcp://HOST:PORT                          network printer (port 9100 on most)
    usb://VID:PID[?out_ep=0x01&in_ep=0x82]   USB, vendor and product id in hex (needs pyusb)
    serial:///dev/ttyUSB0[?baudrate=9600]    serial port (needs pyserial)
    file:///dev/usb/lp0                      a device file (the kernel's usblp driver)
    dummy:                                   keeps the bytes in memory (``output``), for tests

Text is encoded here, line by line, as GB18030 and sent raw after ``FS &`` (Chinese mode): python-escpos
3.1 has no GB18030 code page and its own encoder mangles lines such as "￥12.50" or "，。".

Importing python-escpos has side effects this module undoes: it configures the root logger (so do its
backends' open/close, through ``logging.info``), and it makes a temporary folder on every import. Its
capabilities cache goes to a per-user cache folder (``ESCPOS_CAPABILITIES_PICKLE_DIR``).
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import math
import os
import pickle
import re
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlsplit

from domain.hardware import PaperOut, PrinterOffline, PrinterStatus, PrinterUnavailable

_PICKLE_DIR_ENV = "ESCPOS_CAPABILITIES_PICKLE_DIR"


def _escpos_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for folder in (base / "till-ledger" / "escpos",
                   Path(tempfile.gettempdir()) / f"till-ledger-escpos-{getattr(os, 'getuid', lambda: 0)()}"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        except OSError:  # a read-only or missing home: the per-user temp folder still works
            continue
    raise OSError("no writable folder for python-escpos' capabilities cache")


@contextmanager
def _root_logger_kept() -> Iterator[None]:
    """Undo ``logging.basicConfig()`` done by escpos: it adds a stderr handler when the root has none.

    Only a root logger with no handler is touched, and only for the length of one escpos call.
    """
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        yield
    finally:
        if not before:
            for handler in root.handlers[:]:
                root.removeHandler(handler)


@contextmanager
def _escpos_import() -> Iterator[None]:
    os.environ.setdefault(_PICKLE_DIR_ENV, str(_escpos_cache_dir()))
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args: Any, **kwargs: Any) -> str:
        # escpos.capabilities passes mkdtemp() as the *default* of os.environ.get(), so it makes a folder
        # on every import and leaves it, even with the pickle folder set. Give it that folder instead.
        if not args and not kwargs and sys._getframe(1).f_globals.get("__name__") == "escpos.capabilities":
            return os.environ[_PICKLE_DIR_ENV]
        return str(real_mkdtemp(*args, **kwargs))

    tempfile.mkdtemp = mkdtemp  # type: ignore[assignment]
    try:
        with _root_logger_kept():
            try:
                importlib.import_module("escpos.capabilities")
            except (EOFError, pickle.UnpicklingError):
                # Another process was still writing the shared capabilities cache when this one read it.
                for stale in Path(os.environ[_PICKLE_DIR_ENV]).glob("*.capabilities.pickle"):
                    stale.unlink(missing_ok=True)
                importlib.import_module("escpos.capabilities")
            yield
    finally:
        tempfile.mkdtemp = real_mkdtemp


with _escpos_import():
    from escpos.constants import (  # type: ignore[import-untyped]
        FS,
        HW_INIT,
        QR_ECLEVEL_M,
        RT_MASK_LOWPAPER,
        RT_MASK_NOPAPER,
        RT_MASK_ONLINE,
        RT_STATUS_ONLINE,
        RT_STATUS_PAPER,
        TXT_STYLE,
    )
    from escpos.escpos import Escpos  # type: ignore[import-untyped]
    from escpos.exceptions import DeviceNotFoundError  # type: ignore[import-untyped]
    from escpos.exceptions import Error as EscposError
    from escpos.printer import Dummy, File, Network, Serial, Usb  # type: ignore[import-untyped]

PrinterKind = Literal["tcp", "usb", "serial", "file", "dummy"]

COLUMNS = (32, 48)  # 58 mm and 80 mm paper
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
_USAGE = ("tcp://HOST:PORT, usb://VID:PID (hex), serial:///dev/DEVICE?baudrate=N, file:///dev/DEVICE "
          "or dummy:")
_STATUS_SUPPORTED = ("tcp", "usb", "serial")  # File and Dummy cannot read an answer back
_CHINESE_MODE_ON = FS + b"&"
_CENTRE = TXT_STYLE["align"]["center"]
_LEFT = TXT_STYLE["align"]["left"]
_QR_SIZE = {32: 5, 48: 6}  # dots per module: a transaction id stays well inside 58 mm and 80 mm paper
_CONTROL = re.compile("[\x00-\x1f\x7f]")  # would be taken for printer commands, never printed
_STATUS_FIXED_MASK, _STATUS_FIXED = 0x93, 0x12  # bits 0, 1, 4, 7 of every ESC/POS status byte are 0, 1, 1, 0
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,252})$")


@dataclass(frozen=True, slots=True)
class PrinterUrl:
    """A checked printer URL: which python-escpos backend reaches the printer, and where."""

    text: str
    kind: PrinterKind
    host: str = ""
    port: int = 0
    vendor_id: int = 0
    product_id: int = 0
    out_ep: int = 0x01
    in_ep: int = 0x82
    path: str = ""
    baudrate: int = 9600


def parse_printer_url(url: str) -> PrinterUrl:
    """Check a printer URL; ValueError with a message a cashier's settings screen can show."""
    text = url.strip() if isinstance(url, str) else ""
    if not text:
        raise ValueError(f"the printer URL is empty; use {_USAGE}")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise ValueError(f"printer URL {text!r} is malformed; use {_USAGE}") from exc
    scheme = parts.scheme.lower()
    if parts.fragment or "#" in text:
        raise ValueError(f"printer URL {text!r} must not have a #fragment")
    if scheme == "tcp":
        return _tcp(text, parts.netloc, parts.path, parts.query)
    if scheme == "usb":
        return _usb(text, parts.netloc, parts.path, parts.query)
    if scheme in ("serial", "file"):
        return _device(text, scheme, parts.netloc, parts.path, parts.query)
    if scheme == "dummy" and not (parts.netloc or parts.path or parts.query):
        return PrinterUrl(text, "dummy")
    raise ValueError(f"printer URL {text!r} is not one of {_USAGE}")


def _tcp(text: str, netloc: str, path: str, query: str) -> PrinterUrl:
    host, _, port = netloc.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if "@" in netloc or path not in ("", "/") or query:
        raise ValueError(f"printer URL {text!r} must be tcp://HOST:PORT and nothing more")
    if not host or not port:
        raise ValueError(f"printer URL {text!r} needs a host and a port: tcp://HOST:PORT "
                         "(e.g. tcp://192.168.1.50:9100)")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST.match(host):
            raise ValueError(f"printer URL {text!r}: {host!r} is not a host name or IP address") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"printer URL {text!r}: the port must be a number from 1 to 65535")
    return PrinterUrl(text, "tcp", host=host, port=int(port))


def _usb(text: str, netloc: str, path: str, query: str) -> PrinterUrl:
    match = re.fullmatch(r"([0-9A-Fa-f]{1,4}):([0-9A-Fa-f]{1,4})", netloc)
    if match is None or path not in ("", "/"):
        raise ValueError(f"printer URL {text!r} must be usb://VID:PID, vendor and product id in hex "
                         "(e.g. usb://04b8:0202)")
    vendor, product = int(match[1], 16), int(match[2], 16)
    if not vendor or not product:  # python-escpos would take 0 as "any device"
        raise ValueError(f"printer URL {text!r}: vendor and product id must not be 0")
    endpoints = {"out_ep": 0x01, "in_ep": 0x82}
    for key, value in _query(text, query, endpoints):
        if not re.fullmatch(r"0x[0-9A-Fa-f]{1,2}|[0-9]{1,3}", value) or not 0 < int(value, 0) < 256:
            raise ValueError(f"printer URL {text!r}: {key} must be an endpoint address such as 0x01")
        endpoints[key] = int(value, 0)
    return PrinterUrl(text, "usb", vendor_id=vendor, product_id=product, out_ep=endpoints["out_ep"],
                      in_ep=endpoints["in_ep"])


def _device(text: str, scheme: str, netloc: str, path: str, query: str) -> PrinterUrl:
    if netloc or not path.startswith("/") or path.rstrip("/") == "":
        raise ValueError(f"printer URL {text!r} must name a device by its absolute path, e.g. "
                         f"{scheme}:///dev/{'ttyUSB0' if scheme == 'serial' else 'usb/lp0'}")
    if scheme == "file":
        if query:
            raise ValueError(f"printer URL {text!r}: file:// takes no ?options")
        return PrinterUrl(text, "file", path=path)
    baudrate = 9600
    for _, value in _query(text, query, {"baudrate": 0}):
        if not value.isdigit() or int(value) not in BAUDRATES:
            raise ValueError(f"printer URL {text!r}: baudrate must be one of {', '.join(map(str, BAUDRATES))}")
        baudrate = int(value)
    return PrinterUrl(text, "serial", path=path, baudrate=baudrate)


def _query(text: str, query: str, known: dict[str, int]) -> list[tuple[str, str]]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ValueError(f"printer URL {text!r} has malformed ?options") from exc
    for key, _ in pairs:
        if key not in known:
            raise ValueError(f"printer URL {text!r}: unknown option {key!r} (known: {', '.join(known)})")
    return pairs


class _Network(Network):  # type: ignore[misc]
    """python-escpos' Network backend, opened without leaking its socket when nobody answers."""

    def open(self, raise_not_found: bool = True) -> None:
        # escpos' own open() drops the socket unclosed when connect() fails (a ResourceWarning each time)
        # and only knows IPv4; create_connection closes it, and does IPv6 too.
        self.close()  # a no-op unless a connection is open
        try:
            self.device = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            if raise_not_found:
                raise DeviceNotFoundError(f"Could not open socket for {self.host}:{self.port}: {exc}") from exc


class _Usb(Usb):  # type: ignore[misc]
    """python-escpos' Usb backend, whose close() does not raise when nothing was opened."""

    def close(self) -> None:
        # Without pyusb escpos' close() raises RuntimeError even with nothing open, and it runs from __del__.
        if self._device:
            super().close()


class _ClosedByPrinter(ConnectionError):
    """The printer closed the connection (an empty read)."""


class _MalformedStatus(Exception):
    """The answer to a status query is not an ESC/POS status byte."""


class EscposPrinter:
    """A receipt printer driven by python-escpos, chosen by URL; implements ``ReceiptPrinter``.

    ``status()`` asks the printer (DLE EOT 1 and 4) on tcp://, usb:// and serial://. A file:// or dummy:
    printer cannot answer: ``status_supported`` is False and ``status()`` reports online with paper,
    without asking, so only a failure to write shows there.

    ``print_receipt`` checks the status first and raises PaperOut or PrinterOffline without sending
    anything; then it sends the receipt as one job. A network printer's connection stays open between
    jobs; when the printer went away and came back, the next job reconnects once. Every failure to
    reach the printer is PrinterUnavailable. Safe to share between threads (one job at a time).
    """

    def __init__(self, url: str, *, name: str | None = None, columns: int = 32, chinese_mode: bool = True,
                 timeout_s: float = 3.0) -> None:
        self.url = parse_printer_url(url)
        self.name = self.url.text[:64] if name is None else name
        if not 1 <= len(self.name.strip()) <= 64 or len(self.name) > 64:
            raise ValueError("the printer name must be 1-64 characters")
        if columns not in COLUMNS:
            raise ValueError(f"columns must be one of {COLUMNS} (58 mm or 80 mm paper), not {columns!r}")
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError("timeout_s must be a positive number of seconds")
        self.columns = columns
        self.chinese_mode = chinese_mode
        self.timeout_s = float(timeout_s)
        self.status_supported = self.url.kind in _STATUS_SUPPORTED
        self._lock = threading.Lock()
        self._connected = False
        # Built on first use: a serial backend cannot even be constructed without pyserial.
        self._backend: Escpos | None = Dummy() if self.url.kind == "dummy" else None

    # ---- ReceiptPrinter ---------------------------------------------------------------------------

    def status(self) -> PrinterStatus:
        """Online and paper, asked of the printer within ``timeout_s``; PrinterUnavailable when nothing
        answers, or the answer is not a status byte."""
        with self._lock:
            return self._status()

    def print_receipt(self, text: str, reference: str) -> None:
        """Print ``text`` (lines laid out to ``columns``), a QR code of ``reference`` and cut, as one job.

        Control characters in ``text`` and characters GB18030 cannot encode print as "?".
        Raises PaperOut or PrinterOffline (nothing sent) and PrinterUnavailable.
        """
        if not reference or _CONTROL.search(reference) or len(reference) > 256:
            raise ValueError("the reference must be 1-256 printable characters")
        job = self._job(text, reference)
        with self._lock:
            status = self._status()
            if status.paper == "out":
                raise PaperOut(f"the receipt printer at {self.url.text} reports its paper roll empty")
            if not status.online:
                raise PrinterOffline(f"the receipt printer at {self.url.text} reports itself offline "
                                     "(cover open or an error)")
            backend = self._open()
            try:
                backend._raw(job)
            except (EscposError, OSError, RuntimeError) as exc:
                self._disconnect()
                raise self._unavailable(exc, "the receipt could not be sent: ") from exc

    def close(self) -> None:
        """Close the connection to the printer (a dummy: keeps its output)."""
        with self._lock:
            self._disconnect()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def output(self) -> bytes:
        """Every byte a dummy: printer was sent (ValueError for other printers)."""
        if self.url.kind != "dummy" or self._backend is None:
            raise ValueError("only a dummy: printer keeps what it was sent")
        data: bytes = self._backend.output
        return data

    # ---- the job ----------------------------------------------------------------------------------

    def _job(self, text: str, reference: str) -> bytes:
        body = bytearray(HW_INIT)
        if self.chinese_mode:
            body += _CHINESE_MODE_ON
        lines = text.replace("\r\n", "\n").split("\n")
        if lines[-1] == "":  # the text ends with a line break, not with an empty line
            lines.pop()
        for line in lines:
            body += _CONTROL.sub("?", line).encode("gb18030", errors="replace") + b"\n"
        # The QR code and the cut come from python-escpos' own commands, written to memory so the whole
        # receipt leaves in one write.
        composer = Dummy()
        composer._raw(bytes(body))
        composer.print_and_feed(1)
        composer._raw(_CENTRE)
        composer.qr(reference, ec=QR_ECLEVEL_M, size=_QR_SIZE[self.columns], native=True)
        composer._raw(_LEFT)
        composer.cut(mode="PART")
        data: bytes = composer.output
        return data

    # ---- talking to the printer (the lock held) -------------------------------------------------

    def _status(self) -> PrinterStatus:
        if not self.status_supported:
            return PrinterStatus(online=True, paper="ok")
        reused = self._connected
        try:
            return self._ask_status()
        except PrinterUnavailable as exc:
            # An open connection the printer dropped (it was switched off and on): reconnect once.
            if reused and isinstance(exc.__cause__, ConnectionError):
                return self._ask_status()
            raise

    def _ask_status(self) -> PrinterStatus:
        backend = self._open()
        try:
            online = self._query(backend, RT_STATUS_ONLINE)
            paper = self._query(backend, RT_STATUS_PAPER)
        except (EscposError, OSError, RuntimeError, _MalformedStatus) as exc:
            self._disconnect()
            raise self._unavailable(exc) from exc
        if paper & RT_MASK_NOPAPER == RT_MASK_NOPAPER:
            state: Literal["ok", "near_end", "out"] = "out"
        elif paper & RT_MASK_LOWPAPER == RT_MASK_LOWPAPER:
            state = "near_end"
        else:
            state = "ok"
        return PrinterStatus(online=not (online & RT_MASK_ONLINE), paper=state)

    @staticmethod
    def _query(backend: Escpos, query: bytes) -> int:
        answer = bytes(backend.query_status(query))
        if not answer:
            raise _ClosedByPrinter("the printer closed the connection")
        status = answer[-1]  # anything before it answered an earlier query, late
        if status & _STATUS_FIXED_MASK != _STATUS_FIXED:
            raise _MalformedStatus(f"answered its status query with {answer.hex(' ')}, which is not an "
                                   "ESC/POS status byte")
        return status

    def _open(self) -> Escpos:
        if self._connected and self._backend is not None:
            return self._backend
        try:
            if self._backend is None:
                self._backend = self._make_backend()
            with _root_logger_kept():
                self._backend.open()
        except (EscposError, OSError, RuntimeError, ValueError) as exc:  # ValueError: pyusb without libusb
            raise self._unavailable(exc) from exc
        self._connected = True
        return self._backend

    def _make_backend(self) -> Escpos:
        u = self.url
        if u.kind == "tcp":
            return _Network(u.host, u.port, timeout=self.timeout_s)
        if u.kind == "usb":
            return _Usb(u.vendor_id, u.product_id, timeout=int(self.timeout_s * 1000), in_ep=u.in_ep,
                        out_ep=u.out_ep)
        if u.kind == "serial":
            return Serial(devfile=u.path, baudrate=u.baudrate, timeout=self.timeout_s)
        return File(devfile=u.path)

    def _disconnect(self) -> None:
        if self._backend is not None:
            with _root_logger_kept(), suppress(EscposError, OSError, RuntimeError):
                self._backend.close()
        self._connected = False

    def _unavailable(self, exc: BaseException, doing: str = "") -> PrinterUnavailable:
        return PrinterUnavailable(f"{doing}the receipt printer at {self.url.text} {self._reason(exc)}")

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, RuntimeError) and self.url.kind in ("usb", "serial"):
            kind, package = ("USB", "pyusb") if self.url.kind == "usb" else ("serial", "pyserial")
            return (f"cannot be used: {kind} printers need the {package} package "
                    f"(pip install 'python-escpos[{self.url.kind}]')")
        for cause in _chain(exc):
            if isinstance(cause, _MalformedStatus):
                return str(cause)
            if isinstance(cause, _ClosedByPrinter):
                return "closed the connection"
            if isinstance(cause, TimeoutError):
                return f"did not answer within {self.timeout_s:g} s"
            if isinstance(cause, ConnectionRefusedError):
                return "does not answer (connection refused: nothing listens there)"
            if isinstance(cause, OSError):
                return f"cannot be reached ({(cause.strerror or str(cause) or type(cause).__name__).lower()})"
        if isinstance(exc, DeviceNotFoundError):
            return "was not found (is it plugged in and switched on?)"
        return f"failed ({type(exc).__name__}: {exc})"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it (escpos raises its own errors without ``from``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


__all__ = ["COLUMNS", "EscposPrinter", "PrinterUrl", "parse_printer_url"]
