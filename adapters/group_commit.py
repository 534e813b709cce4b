"""Executors that run Ledger commands: grouped into one store transaction, or one save each.

The eventsourcing PostgreSQL recorder locks the events table for every ``save()``, so one save per
request tops out near commit latency. ``GroupCommitter`` runs every command that arrives while the
previous save is in flight against one working set and saves them all in one ``save()``.

If anything in a group fails in a way that could involve its neighbours (a save conflict with
another process, or a command that raised after changing an aggregate), the group is replayed one
command at a time from fresh loads: one bad append never fails the others, and each caller gets
its own answer.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from eventsourcing.persistence import IntegrityError, PersistenceError

from adapters.metrics import record_batch
from adapters.working_set import AggregateCache, WorkingSet
from domain.aggregate import EVENT_SEQUENCE
from domain.append import AppendResult
from domain.errors import LedgerError, StoreUnavailable
from domain.ledger import Ledger
from domain.ports import UnitOfWork

log = logging.getLogger(__name__)
R = TypeVar("R")
CONFLICT_RETRIES = 5


@dataclass(slots=True)
class _Outcome(Generic[R]):
    value: R | None = None
    error: BaseException | None = None


@dataclass(slots=True)
class _Job:
    command: Callable[[UnitOfWork], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    outcome: _Outcome[Any] = field(default_factory=_Outcome)


def _fill_positions(results: Sequence[_Outcome[Any]], recordings: Sequence[Any]) -> None:
    positions = {(r.domain_event.originator_id, r.domain_event.originator_version): r.notification.id
                 for r in recordings}
    for outcome in results:
        value = outcome.value
        if isinstance(value, AppendResult) and not value.replayed:
            value.position = positions.get((value.stream_id, value.version))


def run_alone(ledger: Ledger, command: Callable[[UnitOfWork], R], cache: AggregateCache | None = None) -> R:
    """Run one command from fresh loads and save it by itself, retrying on a concurrent writer."""
    for attempt in range(CONFLICT_RETRIES):
        work = WorkingSet(ledger, None)
        result = command(work)
        try:
            recordings = ledger.save_aggregates(work.changed())
        except IntegrityError:
            if cache is not None:
                cache.evict(work.touched)
            if attempt == CONFLICT_RETRIES - 1:
                raise StoreUnavailable("too many concurrent writers on the same stream; retry") from None
            continue
        except PersistenceError as exc:
            raise StoreUnavailable(f"the event store did not answer: {exc.__class__.__name__}") from exc
        record_batch(1, len(recordings))
        outcome: _Outcome[R] = _Outcome(result)
        _fill_positions([outcome], recordings)
        if cache is not None:
            work.cache = cache
            work.remember()
        return result
    raise AssertionError("unreachable")  # pragma: no cover


class SingleSaveExecutor:
    """One save() per command, run in a worker thread: the naive baseline (TILL_GROUP_COMMIT=false)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def submit(self, command: Callable[[UnitOfWork], R]) -> R:
        return await asyncio.to_thread(run_alone, self.ledger, command)

    def run(self, command: Callable[[UnitOfWork], R]) -> R:
        return run_alone(self.ledger, command)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class GroupCommitter:
    """A single writer thread that saves all commands waiting for it in one store transaction."""

    def __init__(self, ledger: Ledger, max_batch: int = 500, cache_size: int = 2_048) -> None:
        self.ledger = ledger
        self.max_batch = max_batch
        self.cache = AggregateCache(cache_size)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.commands = 0
        self.replayed_batches = 0  # groups replayed one command at a time (conflict, defect, bad encoding)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="group-committer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None
            if self.batches:
                log.info("group commit: %d commands in %d batches (%.1f per batch), %d replayed one by one",
                         self.commands, self.batches, self.commands / self.batches, self.replayed_batches)

    async def submit(self, command: Callable[[UnitOfWork], R]) -> R:
        loop = asyncio.get_running_loop()
        job = _Job(command, loop, loop.create_future())
        self._queue.put(job)
        return await job.future  # type: ignore[no-any-return]

    def run(self, command: Callable[[UnitOfWork], R]) -> R:
        """Synchronous use (CLI, tests without an event loop): the same path as submit()."""
        self.start()
        return asyncio.run(self.submit(command))

    # ---- writer thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stopping = False
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
            try:
                self._commit(jobs)
            except Exception as exc:  # the writer must outlive any one batch; nothing of it was saved
                log.exception("group commit failed")
                self.cache.clear()
                for job in jobs:
                    job.outcome = _Outcome(error=exc)
            self._resolve(jobs)
            if stopping:
                return

    def _commit(self, jobs: list[_Job]) -> None:
        self.batches += 1
        self.commands += len(jobs)
        work = WorkingSet(self.ledger, self.cache, optimistic=True)
        for job in jobs:
            mark = next(EVENT_SEQUENCE)
            try:
                job.outcome.value = job.command(work)
            except LedgerError as exc:
                job.outcome.error = exc
                if next(EVENT_SEQUENCE) != mark + 1:  # it may have changed an aggregate before raising
                    work.forget()
                    self._one_by_one(jobs)
                    return
            except Exception:  # a defect, not a rule: isolate it so it fails only its own caller
                log.exception("command failed unexpectedly; replaying its group one by one")
                work.forget()
                self._one_by_one(jobs)
                return
        try:
            recordings = self.ledger.save_aggregates(work.changed())
        except IntegrityError:
            # Another process wrote to one of these streams: our cached copy was stale.
            work.forget()
            self._one_by_one(jobs)
            return
        except PersistenceError as exc:
            work.forget()
            error = StoreUnavailable(f"the event store did not answer: {exc.__class__.__name__}")
            for job in jobs:
                job.outcome = _Outcome(error=error)
            return
        except (ValueError, TypeError):
            # One event could not be encoded for the store: find it, and save the others.
            work.forget()
            self._one_by_one(jobs)
            return
        record_batch(len(jobs), len(recordings))
        _fill_positions([job.outcome for job in jobs], recordings)
        work.remember()

    def _one_by_one(self, jobs: list[_Job]) -> None:
        self.replayed_batches += 1
        for job in jobs:
            try:
                job.outcome = _Outcome(run_alone(self.ledger, job.command, self.cache))
            except Exception as exc:  # each caller gets its own answer, whatever went wrong
                job.outcome = _Outcome(error=exc)

    @staticmethod
    def _resolve(jobs: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in jobs:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, batch in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, batch)
            except RuntimeError:  # the caller's loop has closed; nobody is waiting any more
                pass


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.done():
            continue
        if job.outcome.error is not None:
            job.future.set_exception(job.outcome.error)
        else:
            job.future.set_result(job.outcome.value)
