"""Runs a projection: a page of the notification log at a time, one active runner per projection.

The library's ``ProjectionRunner`` applies one event per view transaction (~1,070 events/s measured
here) and SQLite has no subscriptions, so this runner pulls pages itself on both backends and hands
each page to the projection, which writes it with its tracking row in one transaction.

* One active runner per projection: a PostgreSQL advisory lock (or, on SQLite, a file lock) taken
  before the first page and held until the runner stops; a second runner waits for it.
* Woken by the store's own NOTIFY on PostgreSQL (the events table's channel), by a short poll on SQLite.
* After each page the runner publishes its position (NOTIFY on PostgreSQL) so that API processes can
  answer read-your-writes requests as soon as the view has caught up (``PositionWatch``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from adapters.settings import Settings
from adapters.store import libpq_conninfo
from domain.ledger import Ledger

log = logging.getLogger(__name__)
SQLITE_POLL_S = 0.05
LOCK_RETRY_S = 1.0
MAX_BACKOFF_S = 30.0


class PageProjection(Protocol):
    name: str

    def position(self) -> int: ...

    def process_page(self, notifications: list[Any], ledger: Ledger) -> None: ...

    def reset(self) -> None: ...


def position_channel(settings: Settings, name: str) -> str:
    return f"till_projection_{settings.database_schema}_{name}"[:63]


class PositionWatch:
    """The latest position a projection has published, and waiting for a position to be reached."""

    def __init__(self, initial: int = 0) -> None:
        self._position = initial
        self._changed = threading.Condition()

    @property
    def position(self) -> int:
        return self._position

    def advance(self, position: int) -> None:
        with self._changed:
            if position > self._position:
                self._position = position
                self._changed.notify_all()

    def wait(self, position: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._position < position:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True


class PositionListener:
    """On PostgreSQL: a thread LISTENing to a projection's position channel, feeding a PositionWatch
    (read-your-writes in an API process that does not run the projection itself)."""

    def __init__(self, settings: Settings, name: str, watch: PositionWatch, stop: threading.Event,
                 current: Callable[[], int]) -> None:
        self.settings, self.channel, self.watch, self.stop, self.current = settings, position_channel(
            settings, name), watch, stop, current
        self.thread = threading.Thread(target=self._run, name=f"listen-{name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with psycopg.connect(libpq_conninfo(self.settings), autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.watch.advance(self.current())  # anything published before we listened
                    while not self.stop.is_set():
                        for note in conn.notifies(timeout=0.5, stop_after=64):
                            self.watch.advance(int(note.payload))
            except Exception:  # the store went away: reconnect, unless the process is closing it
                if self.stop.is_set():
                    return
                log.warning("projection position listener lost its connection; reconnecting", exc_info=True)
                self.stop.wait(LOCK_RETRY_S)


class RunnerLock(Protocol):
    def acquire(self, stop: threading.Event, *, blocking: bool = True) -> bool: ...

    def release(self) -> None: ...


class PostgresRunnerLock:
    """A session-level advisory lock on a dedicated connection, held while the runner runs."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings, self.key = settings, f"till-ledger:{settings.database_schema}:projection:{name}"
        self.conn: psycopg.Connection[Any] | None = None

    def acquire(self, stop: threading.Event, *, blocking: bool = True) -> bool:
        announced = False
        while not stop.is_set():
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = psycopg.connect(libpq_conninfo(self.settings), autocommit=True)
                row = self.conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [self.key]).fetchone()
                if row and row[0]:
                    return True
            except psycopg.Error:
                log.warning("cannot reach PostgreSQL for the projection lock; retrying", exc_info=True)
                self.release()
            if not blocking:
                self.release()
                return False
            if not announced:
                log.info("another runner holds %s; waiting for it", self.key)
                announced = True
            stop.wait(LOCK_RETRY_S)
        return False

    def release(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()  # closing the session releases the advisory lock
            self.conn = None


class FileRunnerLock:
    """SQLite: an exclusive lock on a file in the data directory (released by the OS if we die)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: Any = None

    def acquire(self, stop: threading.Event, *, blocking: bool = True) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")  # noqa: SIM115 - held until release()
        while not stop.is_set():
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if not blocking:
                    break
                stop.wait(LOCK_RETRY_S)
        self.release()
        return False

    def release(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def poll_until(done: Callable[[], bool], timeout: float) -> bool:
    """Whether ``done()`` became true within ``timeout`` (checked every SQLITE_POLL_S)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(SQLITE_POLL_S)
    return True


class PageRunner:
    """Drives one projection from the ledger's notification log."""

    def __init__(self, ledger: Ledger, projection: PageProjection, settings: Settings, *,
                 page_size: int = 500, watch: PositionWatch | None = None) -> None:
        self.ledger, self.projection, self.settings = ledger, projection, settings
        self.page_size = page_size
        self.watch = watch or PositionWatch(projection.position())
        self.lock: RunnerLock = (PostgresRunnerLock(settings, projection.name) if settings.uses_postgres
                                 else FileRunnerLock(settings.data_dir / f"{projection.name}.runner.lock"))
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.failure: BaseException | None = None
        self.active = False  # holds the projection's lock and follows the log

    # ---- one step --------------------------------------------------------------------------------
    def head(self) -> int:
        return self.ledger.recorder.max_notification_id() or 0

    def run_page(self) -> int:
        """Apply the next page; the number of notifications it covered (0 at the head)."""
        start = self.projection.position()
        page = list(self.ledger.recorder.select_notifications(start=start, limit=self.page_size,
                                                              inclusive_of_start=False))
        if page:
            self.projection.process_page(page, self.ledger)
            self.failure = None  # applied: whatever stopped an earlier attempt has passed
            position = page[-1].id
            self.watch.advance(position)
            self._publish(position)
        return len(page)

    def catch_up(self, progress: Callable[[int, int], None] | None = None) -> int:
        applied = 0
        head = self.head()
        while (count := self.run_page()) > 0:
            applied += count
            if progress is not None:
                progress(self.projection.position(), max(head, self.projection.position()))
        return applied

    def _publish(self, position: int) -> None:
        if not self.settings.uses_postgres:
            return
        lock_conn = getattr(self.lock, "conn", None)
        if lock_conn is None:
            return
        with contextlib.suppress(psycopg.Error):
            lock_conn.execute("SELECT pg_notify(%s, %s)", [position_channel(self.settings, self.projection.name),
                                                          str(position)])

    # ---- running ---------------------------------------------------------------------------------
    def run_forever(self) -> None:
        """Hold the lock and follow the log until stop(); raises what stopped it."""
        if not self.lock.acquire(self.stop_event):
            return
        self.active = True
        try:
            with self._wakeups() as wait:
                while not self.stop_event.is_set():
                    if self.run_page() == 0:
                        wait()
        finally:
            self.active = False
            self.lock.release()

    @contextlib.contextmanager
    def _wakeups(self) -> Iterator[Callable[[], None]]:
        if not self.settings.uses_postgres:
            yield lambda: self.stop_event.wait(SQLITE_POLL_S)
            return
        channel = self.ledger.recorder.channel_name  # type: ignore[attr-defined]
        with psycopg.connect(libpq_conninfo(self.settings), autocommit=True) as conn:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

            def wait() -> None:
                for _ in conn.notifies(timeout=0.5, stop_after=1):
                    pass

            yield wait

    def follow(self) -> None:
        """run_forever through store outages, until stop(): a failed page is rolled back whole, so
        the runner backs off (1 s, doubling to 30 s) and takes it again from its position."""
        backoff = LOCK_RETRY_S
        while not self.stop_event.is_set():
            try:
                self.run_forever()
                return
            except Exception as exc:  # shown by `till project status`; appends are not affected
                self.failure = exc
                log.exception("projection %s failed; retrying in %.0f s", self.projection.name, backoff)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def start(self) -> None:
        """follow() in a background thread (embedded in ``till serve``)."""
        self.thread = threading.Thread(target=self.follow, name=f"projection-{self.projection.name}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
            self.thread = None

    def refresh(self, timeout: float) -> bool:
        """Bring the view up to the log's head now: apply the pages here if no runner is active,
        otherwise wait for the active runner to get there."""
        head = self.head()
        if self.lock.acquire(self.stop_event, blocking=False):
            try:
                self.catch_up()
            finally:
                self.lock.release()
            return True
        return self.watch.wait(head, 0) or poll_until(lambda: self.projection.position() >= head, timeout)

    def rebuild(self, progress: Callable[[int, int], None] | None = None,
                on_wait: Callable[[], None] | None = None) -> int:
        """Empty the view and apply the whole log again, holding the runner lock meanwhile."""
        if not self.lock.acquire(self.stop_event, blocking=False):
            if on_wait is not None:
                on_wait()
            if not self.lock.acquire(self.stop_event):
                return 0
        try:
            self.projection.reset()
            return self.catch_up(progress)
        finally:
            self.lock.release()
