"""Many simulated terminals selling at once over real HTTP, and the record of what the service told them.

Each terminal is one coroutine with its own keep-alive connection, ringing up card sales (through the
acquirer host: ``POST /v1/transactions/{id}/authorize``) and cash sales back to back. Every request
that got no answer (connection refused or reset, timeout, 5xx) is sent again, byte for byte, until the
service answers: a retry of an append that was in fact recorded must come back ``200 replayed``, never
be recorded twice. ``Book`` keeps every append attempted and every one acknowledged (201, or 200
replayed), which is what the checks compare with the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.counter import SHANGHAI
from tests.faults.http_connection import Answer, HttpConnection, NoAnswer
from tests.host_counter import chip_read, test_pan

OPERATOR_NO = "01"
PASSWORD = "faults-cashier-01"
MERCHANT_NO = "898310048990001"
# Retries back off from 50 ms to 500 ms: a restarted service is found within half a second.
RETRY_FIRST_S, RETRY_MAX_S = 0.05, 0.5
TERMINAL_NUMBERS = itertools.count(70_000_001)


def device_time() -> str:
    return datetime.now(SHANGHAI).isoformat()


@dataclass(frozen=True, slots=True)
class Ack:
    """An append the service acknowledged: 201 (recorded now) or 200 replayed (recorded before)."""

    stream_id: str
    version: int
    type: str | None  # None: recorded by the service from the host's answer, type not said
    position: int | None
    replayed: bool
    source: str
    at: float  # time.monotonic() of the answer


@dataclass
class Book:
    """What the clients attempted and what the service acknowledged. Thread-safe."""

    acks: list[Ack] = field(default_factory=list)
    attempts: dict[tuple[str, int], str] = field(default_factory=dict)  # (stream, version) -> event type
    counts: Counter[str] = field(default_factory=Counter)
    approvals: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered) of approved authorizations
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, stream_id: str, version: int, event_type: str) -> None:
        with self._lock:
            if (stream_id, version) not in self.attempts:
                self.attempts[(stream_id, version)] = event_type
                self.counts["appends attempted"] += 1

    def ack(self, ack: Ack) -> None:
        with self._lock:
            self.acks.append(ack)
            self.counts["replayed" if ack.replayed else "acknowledged new"] += 1

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] += n

    def approved(self, sent: float, answered: float) -> None:
        with self._lock:
            self.approvals.append((sent, answered))

    def first_ack_after(self, moment: float) -> float | None:
        with self._lock:
            later = [a.at for a in self.acks if a.at >= moment and not a.replayed]
        return min(later) - moment if later else None

    def first_approval_sent_after(self, moment: float) -> float | None:
        with self._lock:
            later = [answered for sent, answered in self.approvals if sent >= moment]
        return min(later) - moment if later else None


@dataclass
class Terminal:
    """One provisioned terminal: registered, operator enrolled, token, till open, signed on with the host."""

    index: int
    terminal_id: str
    terminal_no: str
    token: str
    till_session_id: str
    batch_no: str = "000001"
    traces: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    sales: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    blocked_until: float = 0.0  # a card sale of ours is in doubt: take cash meanwhile

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def auth_line(self) -> bytes:
        return f"Authorization: Bearer {self.token}\r\n".encode()

    def pan(self) -> str:
        return test_pan(self.index * 100_000 + next(self.sales))


def _expect(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url.path} -> {response.status_code}: "
                           f"{response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


def provision(url: str, admin_token: str, count: int, book: Book, *, open_till: bool = True,
              threads: int = 8) -> list[Terminal]:
    """Register ``count`` terminals over the API (argon2 makes each take ~0.1 s: done in parallel); with
    ``open_till`` also open each one's till, sign its operator in and sign on with the acquirer host."""

    def one(index: int) -> Terminal:
        with httpx.Client(base_url=url, timeout=30) as http:
            admin = {"Authorization": f"Bearer {admin_token}"}
            terminal_no = f"{next(TERMINAL_NUMBERS):08d}"
            terminal_id = _expect(http.post("/v1/terminals", headers=admin, json={
                "merchant_name": "故障测试超市 Fault Market", "merchant_no": MERCHANT_NO, "terminal_no": terminal_no,
                "store_id": "faults", "timezone": "Asia/Shanghai", "currency": "CNY",
                "fee_rates_ppm": {"unionpay": 3800, "visa": 5500}}))["terminal_id"]
            _expect(http.post(f"/v1/terminals/{terminal_id}/operators", headers=admin,
                              json={"operator_no": OPERATOR_NO, "name": "王芳", "password": PASSWORD}))
            token = _expect(http.post("/v1/tokens", headers=admin,
                                      json={"role": "terminal", "terminal_id": terminal_id}))["token"]
            terminal = Terminal(index, terminal_id, terminal_no, token, str(uuid.uuid4()))
            if not open_till:
                return terminal
            till = f"/v1/till-sessions/{terminal.till_session_id}/events"
            events = [(None, {"type": "TillOpened", "float_minor": 50_000, "currency": "CNY",
                              "self_check": {"service_reachable": True, "printer_online": True,
                                             "paper_present": True, "reader_present": True,
                                             "software_version": "faults"}}),
                      (OPERATOR_NO, {"type": "OperatorSignedIn", "operator_no": OPERATOR_NO, "password": PASSWORD})]
            for version, (operator, event) in enumerate(events):
                book.attempt(terminal.till_session_id, version + 1, event["type"])
                body = _expect(http.post(till, headers=terminal.headers, json={
                    "expected_version": version, "operator_no": operator, "device_time": device_time(),
                    "event": event}))
                book.ack(Ack(body["stream_id"], body["version"], body["type"], body["position"], False, "setup",
                             time.monotonic()))
            terminal.batch_no = _expect(http.post(f"/v1/terminals/{terminal_id}/sign-on", headers=terminal.headers,
                                                  json={"operator_no": OPERATOR_NO}), 200)["batch_no"]
            return terminal

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, range(count)))


def normal_amount(rng: random.Random) -> int:
    return rng.randrange(100, 20_000)


@dataclass
class LoadSettings:
    card_share: float = 0.5  # of sales; the rest cash
    amount: Callable[[random.Random], int] = normal_amount
    retry_for_s: float = 30.0  # give up on one request after this long without an answer
    request_timeout_s: float = 15.0  # longer than the host timeout: an authorization waits for the host
    think_s: float = 0.0  # pause between two requests of one terminal
    seed: int = 1


class Load:
    """The terminals' coroutines on an event loop of their own thread: ``start()`` … ``stop()``."""

    def __init__(self, url: str, terminals: list[Terminal], book: Book, settings: LoadSettings | None = None) -> None:
        self.url, self.terminals, self.book = url, terminals, book
        self.settings = settings or LoadSettings()
        self._stopping = threading.Event()
        self._hard_stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = self.stopped_at = 0.0
        self.failure: BaseException | None = None

    # ---- running ---------------------------------------------------------------------------------
    def start(self) -> Load:
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="fault-load", daemon=True)
        self._thread.start()
        return self

    def stop(self, drain_s: float = 45.0) -> None:
        """No new sales; the ones under way finish (their retries included), within ``drain_s``."""
        self._stopping.set()
        self.stopped_at = time.monotonic()
        if self._thread is None:
            return
        self._thread.join(drain_s)
        if self._thread.is_alive():
            self._hard_stop.set()
            self._thread.join(15)
        if self.failure is not None:
            raise RuntimeError("the load failed") from self.failure

    @property
    def seconds(self) -> float:
        return max(1e-9, (self.stopped_at or time.monotonic()) - self.started_at)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported by stop(), never lost in the thread
            self.failure = exc

    async def _main(self) -> None:
        tasks = [asyncio.create_task(self._terminal(t)) for t in self.terminals]
        while not all(task.done() for task in tasks):
            if self._hard_stop.is_set():
                self.book.count("sales abandoned at the hard stop", sum(not t.done() for t in tasks))
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks, timeout=5)
                break
            await asyncio.wait(tasks, timeout=0.1)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _terminal(self, terminal: Terminal) -> None:
        rng = random.Random(self.settings.seed * 1_000 + terminal.index)
        address = urlsplit(self.url)
        http = HttpConnection(address.hostname or "127.0.0.1", address.port or 80,
                              timeout_s=self.settings.request_timeout_s)
        try:
            while not self._stopping.is_set():
                card = rng.random() < self.settings.card_share and time.monotonic() >= terminal.blocked_until
                if card:
                    await self._card_sale(http, terminal, rng)
                else:
                    await self._cash_sale(http, terminal, rng)
        finally:
            await http.close()

    # ---- one request, until answered --------------------------------------------------------------
    async def _send(self, http: HttpConnection, terminal: Terminal, path: str,
                    body: dict[str, Any]) -> tuple[Answer | None, int]:
        """POST until the service answers (not a 5xx worth retrying), the very same body each time.
        The answer (None: none within ``retry_for_s``) and how many times it was sent."""
        give_up_at = time.monotonic() + self.settings.retry_for_s
        delay = RETRY_FIRST_S
        data = json.dumps(body, ensure_ascii=False).encode()
        tries = 0
        while True:
            if tries:
                self.book.count("retries")
            tries += 1
            self.book.count("requests")
            try:
                response = await http.post(path, data, terminal.auth_line)
            except NoAnswer:
                self.book.count("no answer (connection or timeout)")
            else:
                if response.status < 500 or not _retry_5xx(response):
                    return response, tries
                self.book.count(f"HTTP {response.status} {_code(response)}")
            if time.monotonic() > give_up_at or self._hard_stop.is_set():
                self.book.count("requests given up")
                return None, tries
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _append(self, http: HttpConnection, terminal: Terminal, stream_id: str, version: int,
                      event: dict[str, Any]) -> bool:
        """Append ``event`` at ``version`` (expected_version = version - 1); True when acknowledged."""
        if self.settings.think_s:
            await asyncio.sleep(self.settings.think_s)
        self.book.attempt(stream_id, version, event["type"])
        body = {"expected_version": version - 1, "operator_no": OPERATOR_NO, "device_time": device_time(),
                "event": event}
        response, tries = await self._send(http, terminal, f"/v1/transactions/{stream_id}/events", body)
        if response is None:
            return False
        if response.status in (200, 201):
            answer = response.json()
            if answer["replayed"] and tries == 1:
                self.book.count("appends answered 'replayed' at the first try")
            if (answer["stream_id"], answer["version"], answer["type"]) != (stream_id, version, event["type"]):
                self.book.count("acknowledged something else than was sent")
            self.book.ack(Ack(stream_id, answer["version"], answer["type"], answer["position"], answer["replayed"],
                              "load", time.monotonic()))
            return True
        self.book.count("conflict (409)" if response.status == 409 else f"refused {_code(response)}")
        return False

    # ---- the sales --------------------------------------------------------------------------------
    def _opened(self, terminal: Terminal, method: str) -> dict[str, Any]:
        return {"type": "TransactionOpened", "kind": "sale", "payment_method": method,
                "till_session_id": terminal.till_session_id, "batch_no": terminal.batch_no,
                "trace_no": f"{next(terminal.traces):06d}"}

    async def _cash_sale(self, http: HttpConnection, terminal: Terminal, rng: random.Random) -> None:
        txn = str(uuid.uuid4())
        amount = normal_amount(rng)
        tendered = amount + rng.choice([0, 0, 50, 1_000])
        events = [self._opened(terminal, "cash"), {"type": "AmountEntered", "amount_minor": amount, "currency": "CNY"},
                  {"type": "AmountConfirmed"}, {"type": "CashTendered", "amount_minor": tendered}]
        if tendered > amount:
            events.append({"type": "ChangeGiven", "amount_minor": tendered - amount})
        events.append({"type": "TransactionCompleted"})
        for version, event in enumerate(events, start=1):
            if not await self._append(http, terminal, txn, version, event):
                self.book.count("cash sales broken off")
                return
        self.book.count("cash sales completed")

    async def _card_sale(self, http: HttpConnection, terminal: Terminal, rng: random.Random) -> None:
        txn = str(uuid.uuid4())
        amount = self.settings.amount(rng)
        pan = terminal.pan()
        events = [self._opened(terminal, "card"), {"type": "AmountEntered", "amount_minor": amount, "currency": "CNY"},
                  {"type": "AmountConfirmed"}, chip_read(pan), {"type": "PinVerified", "method": "online"}]
        for version, event in enumerate(events, start=1):
            if not await self._append(http, terminal, txn, version, event):
                if version == 1:
                    terminal.blocked_until = time.monotonic() + 0.5  # e.g. till_blocked: cash for a while
                self.book.count("card sales broken off")
                return
        version = len(events)
        self.book.attempt(txn, version + 1, "AuthorizationRequested")
        body = {"expected_version": version, "operator_no": OPERATOR_NO, "device_time": device_time(),
                "card": {"pan": pan, "expiry": "3012"}}
        sent = time.monotonic()
        response, tries = await self._send(http, terminal, f"/v1/transactions/{txn}/authorize", body)
        if response is None or response.status != 200:
            self.book.count("card sales broken off" if response is None else f"authorize {response.status} "
                            f"{_code(response)}")
            return
        answer = response.json()
        now = time.monotonic()
        if answer["replayed"] and tries == 1:
            self.book.count(f"authorizations answered 'replayed' ({answer['outcome']}) at the first try")
        types = {"authorized": "Authorized", "declined": "Declined", "unknown": "OutcomeUnknown",
                 "reversed": "Reversed"}
        for recorded in range(version + 1, answer["version"] + 1):
            known = "AuthorizationRequested" if recorded == version + 1 else (
                types.get(answer["outcome"]) if recorded == answer["version"] else None)
            self.book.ack(Ack(txn, recorded, known, None, bool(answer["replayed"]), "load", now))
        outcome = answer["outcome"]
        self.book.count(f"card sales {outcome}")
        if outcome == "authorized":
            self.book.approved(sent, now)
            tail: list[dict[str, Any]] = [
                {"type": "ReceiptPrinted", "copy": copy, "printer": "faults", "reprint_no": 0,
                 "receipt_sha256": hashlib.sha256(f"{txn}{copy}".encode()).hexdigest()}
                for copy in ("merchant", "customer")]
            tail.append({"type": "TransactionCompleted"})
        elif outcome in ("declined", "reversed"):
            tail = [{"type": "TransactionCompleted"}]
        else:  # pending or unknown: the service reverses it; the till takes cash meanwhile
            terminal.blocked_until = time.monotonic() + 1.0
            return
        for recorded, event in enumerate(tail, start=answer["version"] + 1):
            if not await self._append(http, terminal, txn, recorded, event):
                self.book.count("card sales broken off after the outcome")
                return


def _code(response: Answer) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("code", "")) if isinstance(body, dict) else ""


def _retry_5xx(response: Answer) -> bool:
    """A 5xx worth sending again: the store or the service was unavailable. ``acquirer_unavailable``
    is an answer (nothing was sent to the host; AuthorizationNotSent is recorded)."""
    return _code(response) != "acquirer_unavailable"
