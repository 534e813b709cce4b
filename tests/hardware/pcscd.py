"""A real pcscd for tests: ``PcscDaemon`` starts one (or reuses a running one) and stops what it started.

No systemd here, so we run ``pcscd --foreground --info`` ourselves and keep its PID. A pcscd killed
uncleanly leaves /run/pcscd/pcscd.comm and pcscd.pid behind and a new one refuses to start; they are
removed first, but only when no live pcscd owns them. Readiness = pyscard lists the vpcd reader.

Independent of pytest's fixtures, so end-to-end tests and scripts can use it too:

    with PcscDaemon() as daemon:
        ...  # "Virtual PCD 00 00" and "Virtual PCD 00 01" are there
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from adapters.pcsc_reader import list_readers
from domain.hardware import CardReaderUnavailable

RUN_DIR = Path("/run/pcscd")
COMM = RUN_DIR / "pcscd.comm"
PID_FILE = RUN_DIR / "pcscd.pid"
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
READERS = ("Virtual PCD 00 00", "Virtual PCD 00 01")
INSTALL_HINT = "run infra/install.sh"


class PcscdUnavailable(RuntimeError):
    """pcscd (or the vpcd driver) is missing or did not come up."""


def _pcscd_binary() -> str | None:
    return shutil.which("pcscd") or ("/usr/sbin/pcscd" if os.access("/usr/sbin/pcscd", os.X_OK) else None)


def _pid_from_file() -> int | None:
    try:
        return int(PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_pcscd(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "pcscd"
    except OSError:
        return False


def _socket_answers() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(COMM))
        except OSError:
            return False
    return True


def live_pcscd() -> bool:
    """A pcscd owns /run/pcscd: its PID file names a running pcscd, or its socket accepts connections."""
    pid = _pid_from_file()
    return (pid is not None and _is_pcscd(pid)) or _socket_answers()


class PcscDaemon:
    """Starts pcscd unless one is running; ``stop`` ends only a pcscd this object started (by its PID)."""

    def __init__(self, *, readers: tuple[str, ...] = READERS, start_timeout_s: float = 10.0,
                 stop_timeout_s: float = 5.0) -> None:
        self.readers = readers
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.reused = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        binary = _pcscd_binary()
        if binary is None:
            raise PcscdUnavailable(f"pcscd is not installed: {INSTALL_HINT}")
        if not VPCD_DRIVER.exists():
            raise PcscdUnavailable(f"the vpcd virtual reader driver (vsmartcard-vpcd) is not installed: {INSTALL_HINT}")
        if live_pcscd():
            self.reused = True  # somebody else's pcscd: use it, never stop it
        else:
            for stale in (COMM, PID_FILE):
                stale.unlink(missing_ok=True)
            fd, name = tempfile.mkstemp(prefix="pcscd-", suffix=".log")
            self.log_path = Path(name)
            with os.fdopen(fd, "wb") as log:
                self.process = subprocess.Popen([binary, "--foreground", "--info"], stdout=log,
                                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True)
            atexit.register(self.stop)
        self._wait_for_readers()

    def _wait_for_readers(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        seen: list[str] = []
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise PcscdUnavailable(f"pcscd exited with status {self.process.returncode}: {self._log_tail()}")
            try:
                seen = list_readers()
            except CardReaderUnavailable:
                seen = []
            if all(reader in seen for reader in self.readers):
                return
            time.sleep(0.05)
        self.stop()
        raise PcscdUnavailable(f"pcscd did not list {list(self.readers)} within {self.start_timeout_s} s "
                               f"(it lists {seen}); {INSTALL_HINT} to get vsmartcard-vpcd. {self._log_tail()}")

    def _log_tail(self) -> str:
        if self.log_path is None:
            return ""
        try:
            return "pcscd log: " + " | ".join(self.log_path.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout_s``; only for a pcscd this object started."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(self.stop_timeout_s)
                # Killed uncleanly: its socket and PID file stay; the next start removes them.
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None
