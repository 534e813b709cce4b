"""The real programs under test, as subprocesses: ``till serve`` and ``till project run ledger_view``.

Each runs in its own session (so its process group is exactly it and its children) and is stopped
by its own PID: SIGKILL for a fault, SIGTERM then SIGKILL on the way out. Nothing is ever stopped
by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 10.0


def till_command() -> list[str]:
    """The installed console script next to this interpreter (what an operator runs)."""
    script = Path(sys.executable).with_name("till")
    return [str(script)] if script.exists() else [sys.executable, "-m", "api.cli"]


@dataclass
class Program:
    """One subprocess; ``start()`` may be called again after ``kill()`` (a restart, same arguments)."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_dir: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    pids: list[int] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> Program:
        self.starts += 1
        with open(self.log, "ab") as out:  # the child keeps its own descriptor
            out.write(f"\n===== start {self.starts} =====\n".encode())
            out.flush()
            self.popen = subprocess.Popen([*till_command(), *self.args], cwd=REPO, env=self.env, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pids.append(self.popen.pid)
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """kill -9, by PID (its process group: the program and any worker it forked)."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bound; always by PID."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)  # whatever outlived it in its group
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=STOP_TIMEOUT_S)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        code = None if self.popen is None else self.popen.poll()
        return f"--- {self.name} (exit {code}) ---\n" + "\n".join(text.splitlines()[-lines:])


def wait_until_ready(url: str, program: Program, timeout_s: float = 30.0, path: str = "/readyz") -> float:
    """Poll ``path`` until 200; returns the seconds it took. Fails fast if the program died."""
    started = time.monotonic()
    deadline = started + timeout_s
    with httpx.Client(timeout=1.0) as http:
        while True:
            if not program.alive:
                raise RuntimeError(f"{program.name} exited while starting\n{program.tail()}")
            try:
                if http.get(f"{url}{path}").status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{program.name} not ready within {timeout_s:g} s\n{program.tail()}")
            time.sleep(0.02)
