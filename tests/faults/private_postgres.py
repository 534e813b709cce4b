"""A throw-away PostgreSQL 15 cluster of the fault suite's own, on loopback, that it may restart.

The machine's shared server (127.0.0.1:5432) is never touched: other tests use it. This cluster is
made with ``initdb`` in a fresh directory under /tmp (owned by the ``postgres`` OS user, since the
suite may run as root and PostgreSQL refuses to run as root), listens on a free loopback port with
trust authentication, and is stopped and deleted by ``destroy()``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

PG_BIN = Path(os.environ.get("TILL_FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"
DATABASE = "faults"
COMMAND_TIMEOUT_S = 60


class PostgresUnavailable(Exception):
    """The private cluster could not be made or started; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """``create()`` → ``url`` → ``restart()`` … → ``destroy()``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root: Path | None = None
        self.running = False

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def log(self) -> Path:
        assert self.root is not None
        return self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _as_postgres(self, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            command = ["runuser", "-u", OS_USER, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)

    def _checked(self, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> None:
        done = self._as_postgres(*args, timeout=timeout)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()}\n"
                                      f"{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AssertionError):
            return ""

    def create(self) -> PrivatePostgres:
        if not (PG_BIN / "initdb").exists():
            raise PostgresUnavailable(f"no PostgreSQL 15 binaries in {PG_BIN} (apt-get install postgresql-15)")
        self.root = Path(tempfile.mkdtemp(prefix="till-faults-pg-"))
        if os.geteuid() == 0:
            owner = pwd.getpwnam(OS_USER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._checked("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                      "--no-instructions")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\n# till fault suite\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.root}'\nmax_connections = 200\n"
                       "log_min_messages = warning\nlog_min_error_statement = panic\n")
        self.start()
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True,
                             connect_timeout=5) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        return self

    def start(self) -> None:
        self._checked("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._checked("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30")
        self.running = False

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast``: roll back and disconnect every session; ``immediate``: as after a crash) and start
        again; returns once the server accepts connections."""
        self._checked("pg_ctl", "restart", "-D", str(self.data), "-m", mode, "-w", "-t", "30",
                      "-l", str(self.log))
        self.running = True

    def ready(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"the private cluster did not answer within {timeout_s:g} s\n{self.tail()}")
            time.sleep(0.05)

    def destroy(self) -> None:
        """Stop the cluster (immediately) and delete its directory. Safe to call more than once."""
        if self.root is None:
            return
        if (self.data / "postmaster.pid").exists():
            self._as_postgres("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30")
        self.running = False
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
