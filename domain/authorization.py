"""Authorization through the acquirer host: sign-on, card requests, reversals (冲正), settlement (结算).

The rule every path keeps: a request is recorded (AuthorizationRequested) before it is sent, and
whatever happens next is recorded too —

* the host answered: Authorized or Declined;
* the host could not be reached (nothing was sent): AuthorizationNotSent, and the terminal may ask again;
* no valid reply in time, or the connection dropped after sending: OutcomeUnknown. The terminal's
  card sales are blocked and a reversal is sent until the host acknowledges it, then Reversed.

Pending reversals are not kept in memory only: ``ReversalWorker`` rescans the in-doubt transactions
(outcome unknown, or a request left pending by a process that stopped) on start and periodically,
so a reversal survives a restart. Sending a reversal twice is harmless: the host acknowledges a
repeated reversal, and the ledger records Reversed once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol
from uuid import UUID

from domain import host_commands as hc
from domain.acquirer import (
    AcquirerHost,
    AcquirerNoReply,
    AcquirerRefused,
    AcquirerUnavailable,
    CardData,
    HostReply,
    SettlementRequest,
    SignOnRequest,
)
from domain.append import AppendResult
from domain.errors import Forbidden, OutOfSequence
from domain.ports import Clock
from domain.stamp import Stamp
from domain.terminal import Terminal
from domain.transaction import AUTH_CODE, RESPONSE_CODE, RRN, Transaction

log = logging.getLogger(__name__)

Load = Callable[[UUID, type[Any]], Any]


class Executor(Protocol):
    """Runs a command (a function of a UnitOfWork) and saves what it changed."""

    async def submit(self, command: Any) -> Any: ...


class InDoubtSource(Protocol):
    """Transactions whose outcome is pending or unknown, as far as the read view knows."""

    async def in_doubt(self) -> list[UUID]: ...


@dataclass(frozen=True, slots=True)
class AuthorizationOutcome:
    transaction_id: UUID
    version: int
    outcome: str | None  # authorized | declined | unknown | reversed | pending
    response_code: str | None
    auth_code: str | None
    rrn: str | None
    reason: str | None
    replayed: bool
    host_ms: float | None = None  # how long the host exchange took (the rest is the service's own time)

    @classmethod
    def of(cls, txn: Transaction, replayed: bool, host_ms: float | None = None) -> AuthorizationOutcome:
        auth = txn.authorization
        return cls(txn.id, txn.version, txn.outcome, auth.get("response_code"), auth.get("auth_code"),
                   auth.get("rrn"), auth.get("reason"), replayed, host_ms)


def _recordable(reply: HostReply) -> bool:
    """A reply the Transaction would refuse to record (malformed response code, or an approval without
    a well-formed auth code and RRN) is treated as no reply (unknown, then reversed), not left pending."""
    if not re.fullmatch(RESPONSE_CODE, reply.response_code):
        return False
    return not reply.approved or bool(re.fullmatch(AUTH_CODE, reply.auth_code) and re.fullmatch(RRN, reply.rrn))


class Authorizer:
    """The service's side of every host exchange. One per process, built by the composition root."""

    def __init__(self, executor: Executor, host: AcquirerHost, clock: Clock, load: Load,
                 reversals: ReversalWorker) -> None:
        self.executor, self.host, self.clock, self.load = executor, host, clock, load
        self.reversals = reversals

    def _service_stamp(self, terminal_id: UUID, operator_no: str | None = None) -> Stamp:
        # device_time None: the service recorded it from the host's answer, not the terminal.
        return Stamp(terminal_id, operator_no, None, self.clock.now())

    async def sign_on(self, terminal_id: UUID, operator_no: str) -> Terminal:
        terminal: Terminal = await asyncio.to_thread(self.load, terminal_id, Terminal)
        now = self.clock.now()
        reply = await self.host.sign_on(SignOnRequest(hc.terminal_ref(terminal), terminal.batch_label, operator_no,
                                                      terminal.local_time(now)))
        if reply.response_code != "00":
            raise AcquirerRefused(f"the host refused the sign-on (response code {reply.response_code})",
                                  response_code=reply.response_code)
        stamp = self._service_stamp(terminal_id, operator_no)
        return await self.executor.submit(hc.record_sign_on(terminal_id, stamp, reply.batch_no,  # type: ignore[no-any-return]
                                                            reply.response_code))

    async def authorize(self, transaction_id: UUID, expected_version: int, stamp: Stamp,
                        card: CardData) -> AuthorizationOutcome:
        plan: hc.AuthorizationPlan = await self.executor.submit(
            hc.begin_authorization(transaction_id, expected_version, stamp, card))
        if plan.request is None:
            return await self._current(transaction_id, replayed=True)
        terminal_id = stamp.terminal_id
        if terminal_id is None:
            raise Forbidden("only a terminal asks for an authorization")
        self.reversals.awaiting.add(transaction_id)
        try:
            sent = time.perf_counter()
            try:
                try:
                    reply = await self.host.authorize(plan.request)
                finally:
                    host_ms = (time.perf_counter() - sent) * 1000
                if not _recordable(reply):
                    raise AcquirerNoReply("the host's reply had no valid response code, or an approval no valid "
                                          "auth code or RRN")
            except AcquirerUnavailable as exc:
                await self.executor.submit(hc.record_not_sent(
                    transaction_id, self._service_stamp(terminal_id, stamp.operator_no), exc.detail))
                raise AcquirerUnavailable(f"{exc.detail}: nothing was sent and nothing charged; ask again when the "
                                          "host is back, or take another payment", **exc.extra) from exc
            except AcquirerNoReply as exc:
                await self._record_unknown(transaction_id, terminal_id, stamp.operator_no, exc.detail)
                return await self._current(transaction_id, replayed=False, host_ms=host_ms)
            recorded = await self._record_reply(transaction_id, terminal_id, stamp.operator_no, reply, host_ms)
        finally:
            self.reversals.awaiting.discard(transaction_id)
        return recorded or await self._current(transaction_id, replayed=False, host_ms=host_ms)

    async def _record_reply(self, transaction_id: UUID, terminal_id: UUID, operator_no: str | None,
                            reply: HostReply, host_ms: float) -> AuthorizationOutcome | None:
        """Record the answer and read the outcome off the aggregate in the same command (no reload:
        this is on the latency path of every card payment)."""
        record = hc.record_reply(transaction_id, self._service_stamp(terminal_id, operator_no), reply)

        def command(uow: Any) -> AuthorizationOutcome:
            record(uow)
            return AuthorizationOutcome.of(uow.get(transaction_id, Transaction), False, host_ms)

        try:
            return await self.executor.submit(command)  # type: ignore[no-any-return]
        except OutOfSequence:
            # Another process marked it unknown meanwhile: its reversal cancels this approval too.
            log.warning("host reply for %s arrived after the outcome was settled otherwise", transaction_id)
            return None

    async def _record_unknown(self, transaction_id: UUID, terminal_id: UUID, operator_no: str | None,
                              reason: str) -> None:
        try:
            await self.executor.submit(hc.record_unknown(transaction_id, self._service_stamp(terminal_id, operator_no),
                                                         f"no reply from the host: {reason}"))
        except OutOfSequence:
            log.info("transaction %s was resolved before its unknown outcome was recorded", transaction_id)
        finally:  # even if the store failed here: the worker finds the request pending and resolves it
            self.reversals.schedule(transaction_id)

    async def _current(self, transaction_id: UUID, replayed: bool,
                       host_ms: float | None = None) -> AuthorizationOutcome:
        txn = await asyncio.to_thread(self.load, transaction_id, Transaction)
        return AuthorizationOutcome.of(txn, replayed, host_ms)

    async def settle(self, till_session_id: UUID, expected_version: int, stamp: Stamp,
                     batch_no: str) -> tuple[AppendResult, hc.SettlementPlan]:
        plan = await asyncio.to_thread(hc.plan_settlement, self.load, till_session_id, expected_version, stamp,
                                       batch_no)
        if plan.replay:
            result = await self.executor.submit(hc.finish_settlement(till_session_id, expected_version, stamp,
                                                                     batch_no, None, None))
            return result, plan
        terminal = plan.terminal
        reply = await self.host.settle(SettlementRequest(
            hc.terminal_ref(terminal), batch_no, terminal.parameters["currency"], plan.totals,
            stamp.operator_no or "00", terminal.local_time(stamp.server_time)))
        if reply.response_code != "00":
            raise AcquirerRefused(f"the host refused the settlement (response code {reply.response_code}); "
                                  "the batch stays open", response_code=reply.response_code)
        result = await self.executor.submit(hc.finish_settlement(till_session_id, expected_version, stamp, batch_no,
                                                                 plan, reply))
        return result, plan


class ReversalWorker:
    """Sends reversals for in-doubt transactions until the host acknowledges each one.

    ``awaiting`` holds the transactions this process is still waiting on (never reversed from
    under a live request); a pending request older than the host timeout plus ``grace_s`` was left
    by a process that stopped, and is marked unknown, then reversed.
    """

    def __init__(self, executor: Executor, host: AcquirerHost, clock: Clock, load: Load, source: InDoubtSource,
                 *, host_timeout_s: float, scan_interval_s: float = 30.0, grace_s: float = 5.0,
                 retry_min_s: float = 0.5, retry_max_s: float = 30.0) -> None:
        self.executor, self.host, self.clock, self.load, self.source = executor, host, clock, load, source
        self.host_timeout_s, self.scan_interval_s, self.grace_s = host_timeout_s, scan_interval_s, grace_s
        self.retry_min_s, self.retry_max_s = retry_min_s, retry_max_s
        self.awaiting: set[UUID] = set()
        self._due: dict[UUID, tuple[float, float]] = {}  # id -> (due at, next backoff), loop time
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reversed_count = 0
        self.last_error: str | None = None

    @property
    def pending(self) -> list[UUID]:
        return list(self._due)

    def schedule(self, transaction_id: UUID, delay_s: float = 0.0) -> None:
        loop_now = asyncio.get_running_loop().time()
        backoff = self._due.get(transaction_id, (0.0, self.retry_min_s))[1]
        self._due[transaction_id] = (loop_now + delay_s, backoff)
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="reversals")

    async def stop(self) -> None:
        task, self._task = self._task, None
        # Cancel until it is done: on Python 3.11 a cancel that lands as the worker's wait ends can be
        # swallowed (gh-86296), and a single cancel then left shutdown waiting forever.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_scan = loop.time()
        while True:
            if loop.time() >= next_scan:
                await self.scan()
                next_scan = loop.time() + self.scan_interval_s
            now = loop.time()
            for transaction_id, (due_at, _) in sorted(self._due.items(), key=lambda item: item[1][0]):
                if due_at <= now:
                    await self.attempt(transaction_id)
            wake_at = min([next_scan, *(due for due, _ in self._due.values())])
            self._wake.clear()
            try:
                async with asyncio.timeout(max(0.0, wake_at - loop.time())):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def scan(self) -> None:
        """Pick up every in-doubt transaction the read view knows of (after a restart, or another process's)."""
        try:
            found = await self.source.in_doubt()
        except Exception as exc:  # a failed scan must not stop the worker; the next one retries
            self.last_error = f"scan failed: {type(exc).__name__}: {exc}"
            log.warning("reversal scan failed: %s", self.last_error)
            return
        for transaction_id in found:
            if transaction_id not in self._due and transaction_id not in self.awaiting:
                self.schedule(transaction_id)

    async def attempt(self, transaction_id: UUID) -> None:
        """One try: resolve a stale pending request, send the reversal, record it when acknowledged."""
        loop_now = asyncio.get_running_loop().time()
        try:
            txn: Transaction = await asyncio.to_thread(self.load, transaction_id, Transaction)
            if txn.outcome == "pending":
                if transaction_id in self.awaiting:
                    self._due.pop(transaction_id, None)
                    return
                stale_at = txn.modified_on + timedelta(seconds=self.host_timeout_s + self.grace_s)
                left = (stale_at - self.clock.now()).total_seconds()
                if left > 0:
                    self._due[transaction_id] = (loop_now + left, self._due[transaction_id][1])
                    return
                await self.executor.submit(hc.record_unknown(
                    transaction_id, Stamp(txn.txn_terminal_id, None, None, self.clock.now()),
                    "no reply was recorded: the service stopped while waiting for the host"))
                txn = await asyncio.to_thread(self.load, transaction_id, Transaction)
            if txn.outcome != "unknown":
                self._due.pop(transaction_id, None)
                return
            terminal: Terminal = await asyncio.to_thread(self.load, txn.txn_terminal_id, Terminal)
            reply = await self.host.reverse(hc.reversal_request(txn, terminal, self.clock.now()))
            if not reply.acknowledged:
                raise AcquirerRefused(f"reversal answered {reply.response_code}", response_code=reply.response_code)
            try:
                await self.executor.submit(hc.record_reversal(
                    transaction_id, Stamp(txn.txn_terminal_id, None, None, self.clock.now()), reply.response_code))
            except OutOfSequence:
                log.info("transaction %s was already resolved when its reversal was acknowledged", transaction_id)
            self._due.pop(transaction_id, None)
            self.reversed_count += 1
            log.info("reversal of %s acknowledged (response %s)", transaction_id, reply.response_code)
        except (AcquirerUnavailable, AcquirerNoReply, AcquirerRefused) as exc:
            self._retry_later(transaction_id, f"{exc.code}: {exc.detail}")
        except Exception as exc:  # the store may be down: keep the reversal and try again later
            self._retry_later(transaction_id, f"{type(exc).__name__}: {exc}")

    def _retry_later(self, transaction_id: UUID, reason: str) -> None:
        loop_now = asyncio.get_running_loop().time()
        backoff = self._due.get(transaction_id, (0.0, self.retry_min_s))[1]
        self._due[transaction_id] = (loop_now + backoff, min(backoff * 2, self.retry_max_s))
        self.last_error = reason
        log.warning("reversal of %s not acknowledged (%s); retrying in %.1f s", transaction_id, reason, backoff)
