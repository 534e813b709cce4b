"""A stand-in for the acquirer's host: the ISO 8583 dialect of ``adapters.iso8583_spec`` on TCP.

It decides each request (``adapters.simulated_issuer``), journals the decision in SQLite
(``adapters.acquirer_journal``) and answers, unless a behaviour rule (``adapters.acquirer_rules``)
makes it late, silent, repetitive or rude. After each settlement it rewrites the day's settlement
file. For tests, demos and `till acquirer-sim`; it holds no keys and checks no MAC or PIN.

It survives what real networks send: garbage, unknown messages, oversized frames (over 8 KiB) and
clients that vanish close that one connection; a connection idle for ``idle_timeout_s`` is closed.
Logs name the MTI, STAN, terminal and response code only, never card data.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from adapters.simulated_issuer import SimulatedIssuer
from adapters.acquirer_journal import Journal
from adapters.acquirer_rules import Rule, RuleBook
from adapters.iso8583_messages import kind_of
from adapters.iso8583_spec import Message, MessageError, pack, read_frame, unpack, write_frame

log = logging.getLogger(__name__)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def shanghai_now() -> datetime:
    return datetime.now(SHANGHAI)


class AcquirerSimulator:
    """An acquirer host simulator: serves ISO 8583 on TCP, journals every decision, writes settlement files."""

    def __init__(self, journal_path: str | Path, *, rules: Iterable[Rule | Mapping[str, Any]] = (),
                 settlement_dir: str | Path | None = None, fee_ppm: int = 0,
                 now: Callable[[], datetime] | None = None, idle_timeout_s: float = 30.0) -> None:
        self.journal = Journal(journal_path)
        self.idle_timeout_s = idle_timeout_s
        self._rules = RuleBook(rules)
        self._issuer = SimulatedIssuer(self.journal, now or shanghai_now, fee_ppm=fee_ppm,
                                       settlement_dir=Path(settlement_dir) if settlement_dir is not None else None)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    def set_rules(self, rules: Iterable[Rule | Mapping[str, Any]]) -> None:
        """Replace the rules (their ``times`` counts start again). Safe from another thread."""
        self._rules = RuleBook(rules)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the bound port (pass 0 for any free one)."""
        self._server = await asyncio.start_server(self._serve, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        log.info("acquirer simulator listening on %s:%s", host, bound)
        return bound

    async def stop(self) -> None:
        """Stop listening and close every open connection (a slow reply still waiting is not sent)."""
        if self._server is not None:
            self._server.close()
        await asyncio.sleep(0)  # let a connection accepted just now start, so it is closed too
        while self._connections:
            tasks = list(self._connections)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def close(self) -> None:
        """Close the journal (after ``stop``); an in-memory journal is gone then."""
        self.journal.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout_s):
                        frame = await read_frame(reader)
                except TimeoutError:
                    log.info("closing a connection idle for %s s", self.idle_timeout_s)
                    return
                if frame is None or not await self._answer(unpack(frame), writer):
                    return
        except MessageError as exc:  # its text names fields, never values
            log.warning("closing a connection after a bad message: %s", exc)
        except ValueError as exc:
            log.warning("closing a connection after a message that does not fit its type (%s)", type(exc).__name__)
        except OSError as exc:
            log.info("a client went away (%s)", type(exc).__name__)
        except asyncio.CancelledError:
            # stop() ends this connection. Ending the task normally rather than cancelled: Python 3.11's
            # start_server logs "Exception in callback" for a handler task that ends cancelled.
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()

    async def _answer(self, request: Message, writer: asyncio.StreamWriter) -> bool:
        """Decide, journal and reply as the rules say; False when the connection is to be closed."""
        kind = kind_of(request)
        amount = request.get("4", "")
        rule = self._rules.pick(kind, request.get("2"), int(amount) if amount.isdigit() else None)
        reply = self._issuer.decide(kind, request, rule)  # journaled before any delay or drop
        log.info("acquirer simulator: %s mti=%s stan=%s terminal=%s response=%s action=%s", kind, request.get("t"),
                 request.get("11"), request.get("41"), reply.get("39"), rule.action)
        if rule.action == "drop":
            return True  # never answer; read on until the client gives up and closes
        if rule.action == "disconnect":
            return False
        if rule.action == "slow":
            await asyncio.sleep(rule.delay_ms / 1000)
        if rule.action == "stale_reply_first":
            stale_stan = f"{(int(reply['11']) + 1) % 1_000_000:06d}"
            await write_frame(writer, pack({**reply, "11": stale_stan}))
        body = pack(reply)
        await write_frame(writer, body)
        if rule.action == "duplicate":
            await write_frame(writer, body)
        return True


class SimulatorThread:
    """Runs an AcquirerSimulator on its own event loop in a daemon thread, for synchronous callers.

    ``with SimulatorThread(simulator) as port:`` starts it on 127.0.0.1 (a free port unless given)
    and stops it on the way out. The simulator's journal stays open: ``simulator.close()`` it after.
    """

    def __init__(self, simulator: AcquirerSimulator, host: str = "127.0.0.1", port: int = 0, *,
                 timeout_s: float = 5.0) -> None:
        self.simulator = simulator
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        # Made on entry, not here: a loop made by a runner never entered would be left unclosed.
        self._running: tuple[asyncio.AbstractEventLoop, threading.Thread] | None = None

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def __enter__(self) -> int:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._run, args=(loop,), name="acquirer-simulator", daemon=True)
        thread.start()
        self._running = loop, thread
        try:
            self.port = asyncio.run_coroutine_threadsafe(self.simulator.start(self.host, self.port),
                                                         loop).result(self.timeout_s)
        except BaseException:
            self._end()
            raise
        return self.port

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._running is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.simulator.stop(), self._running[0]).result(self.timeout_s)
        finally:
            self._end()

    def _end(self) -> None:
        if self._running is not None:
            loop, thread = self._running
            self._running = None
            loop.call_soon_threadsafe(loop.stop)
            thread.join(self.timeout_s)
