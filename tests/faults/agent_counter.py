"""The real terminal agent (``terminal_agent.bootstrap.build_agent``) at one counter, in this process:
virtual chip reader, a TCP receipt printer, a scripted cashier, and customers one after another in a
thread (card, then cash, alternately) until stopped.

Offline, the agent takes cash and refuses cards; its journal keeps every event, and its forwarder
sends them when the service answers again. ``book_rows`` turns the journal into what the agent
attempted and what the service acknowledged, for the same checks as the load's terminals.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from types import TracebackType

from adapters.escpos_printer import EscposPrinter
from adapters.printer_sink import PrinterSink
from adapters.virtual_card import PROFILES, VirtualCard
from adapters.virtual_reader import VirtualCardReader
from terminal_agent.bootstrap import Agent, build_agent
from terminal_agent.scripted_cashier import Customer, ScriptedCashier
from terminal_agent.settings import AgentSettings
from terminal_agent.virtual_hands import InProcessHands
from tests.faults.load import PASSWORD, Ack, Book

PIN = "1234"


class CounterAgent:
    def __init__(self, service_url: str, terminal_id: str, token: str, work: Path, *, pause_s: float = 0.1) -> None:
        self.service_url, self.terminal_id, self.token, self.work = service_url, terminal_id, token, work
        self.pause_s = pause_s
        self.outcomes: Counter[str] = Counter()
        self.agent: Agent | None = None
        self._sink = PrinterSink()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None
        self.serving = "nobody"  # "card" or "cash" while a customer of that kind is at the counter
        self.served: list[tuple[float, float, str, str]] = []  # (started, ended, kind, outcome) per customer

    def __enter__(self) -> CounterAgent:
        self._sink.__enter__()
        contact, contactless = VirtualCardReader("virtual chip", "chip"), VirtualCardReader("virtual tap",
                                                                                         "contactless")
        self.cashier = ScriptedCashier(InProcessHands(contact, contactless))
        settings = AgentSettings(service_url=self.service_url, token=self.token,  # type: ignore[arg-type]
                                 terminal_id=self.terminal_id, data_dir=self.work / "agent",
                                 printer_url=f"tcp://127.0.0.1:{self._sink.port}", card_timeout_s=5.0,
                                 forward_interval_s=0.25, request_timeout_s=3.0)
        self.agent = build_agent(settings, self.cashier, readers=[contact, contactless],
                                 printer=EscposPrinter(settings.printer_url, columns=32))
        self.cashier.next_customer(Customer())
        self.agent.till.start_of_day(PASSWORD, float_minor=50_000)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
        if self.agent is not None:
            self.agent.close()
        self._sink.__exit__(None, None, None)

    # ---- customers -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="counter-agent", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 120.0) -> None:
        """After the customer at the counter is served (a card sale in doubt waits up to 90 s for the service)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError(f"the agent's customer did not finish within {timeout_s:g} s")
            self._thread = None
        if self.failure is not None:
            raise RuntimeError("the agent failed") from self.failure

    def _run(self) -> None:
        assert self.agent is not None
        n = 0
        try:
            while not self._stop.is_set():
                n += 1
                online = self.agent.forwarder.online
                started = time.monotonic()
                if n % 2:
                    self.cashier.next_customer(Customer(amount_minor=1_000 + n, card=VirtualCard(PROFILES["unionpay"],
                                                        pin=PIN), presentations=["chip"], pins=[PIN]))
                    self.serving = kind = "card"
                    result = self.agent.card.run("sale")
                else:
                    amount = 500 + n
                    self.cashier.next_customer(Customer(amount_minor=amount, tendered_minor=amount + 100))
                    self.serving = kind = "cash"
                    result = self.agent.cash.run(amount, amount + 100)
                self.serving = "nobody"
                self.served.append((started, time.monotonic(), kind, result.outcome))
                self.outcomes[f"{kind} {result.outcome} ({'online' if online else 'offline'})"] += 1
                self._stop.wait(self.pause_s)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.failure = exc

    def after(self, moment: float) -> tuple[float, int]:
        """Since ``moment``: the longest a customer waited at the counter (a sale under way at that
        moment counts from it), and how many card payments were refused as if offline."""
        later = [(end - max(start, moment), kind, outcome) for start, end, kind, outcome in self.served
                 if end >= moment]
        return (max((took for took, _, _ in later), default=0.0),
                sum(kind == "card" and outcome == "unavailable" for _, kind, outcome in later))

    # ---- the journal -----------------------------------------------------------------------------
    @property
    def online(self) -> bool:
        return self.agent is not None and self.agent.forwarder.online

    def queued(self) -> int:
        assert self.agent is not None
        return self.agent.counter.journal.backlog().queued

    def rejected(self) -> int:
        assert self.agent is not None
        return self.agent.counter.journal.backlog().rejected

    def book_rows(self, book: Book) -> int:
        """Every journaled event into ``book``: attempted (unless withdrawn: refused at once and corrected
        at the same version), acknowledged when forwarded. Returns how many appends that adds."""
        assert self.agent is not None
        journal = self.agent.counter.journal
        with journal._lock:  # a read of the agent's own file; no API lists every row
            rows = journal._db.execute("SELECT stream_id, version, event_type, state FROM outbox ORDER BY seq").fetchall()
        now = time.monotonic()
        added = 0
        for stream_id, version, event_type, state in rows:
            if state == "withdrawn":
                continue
            added += (stream_id, version) not in book.attempts
            book.attempt(stream_id, version, event_type)
            if state == "forwarded":
                book.ack(Ack(stream_id, version, event_type, None, False, "agent", now))
        return added
