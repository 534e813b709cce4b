#!/usr/bin/env python3
"""Lean closed-loop HTTP load generator for Till Ledger appends.

Each simulated terminal is one coroutine with one keep-alive HTTP/1.1 connection.  It runs
complete 10-event card sales back to back (``POST /v1/transactions/{id}/events`` with
``expected_version`` 0..9) until the measurement window closes, and records the latency of
every append that completes inside the window.

Why hand-rolled HTTP instead of httpx/aiohttp: on a 2-core box the load generator shares the
CPU with the server and PostgreSQL, so every microsecond it spends per request is stolen from
the thing being measured.  Request bytes are built from pre-encoded templates (no ``json.dumps``,
no header dicts) and only the status line, ``Content-Length`` (or chunked framing) and the body
are parsed.  uvloop is used when available.

Output: one JSON line on stdout,
``{"requests", "errors", "seconds", "rps", "p50_ms", "p99_ms", "max_ms", ...}``.
Diagnostics (first few error bodies) go to stderr.

Usage::

    python bench/loadgen.py --url http://127.0.0.1:8000 --terminals-file terms.json \
        --duration 20 --warmup 3 --mode app
    python bench/loadgen.py --url http://127.0.0.1:8001 --terminals 64 --mode noop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import signal
import sys
import time
import uuid
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# How many error bodies to echo on stderr; more would only flood the log with the same problem.
MAX_PRINTED_ERRORS = 5
# Extra time after warm-up + duration before in-flight requests are abandoned (a hung server must
# not hang the benchmark).
DEFAULT_GRACE_SECONDS = 10.0
# Initial per-terminal latency buffer; grows by doubling (rarely: 4096 covers ~200 req/s/terminal
# over 20 s).
INITIAL_SAMPLES_PER_TERMINAL = 4096

# Terminal device clock: the contract wants ISO 8601 with an offset; the bench terminals are set to
# Asia/Shanghai (+08:00).
DEVICE_TZ = timezone(timedelta(hours=8))


def _dumps(obj: Any) -> str:
    """Compact JSON, used only once at start-up to pre-encode constant parts of the templates."""
    return json.dumps(obj, separators=(",", ":"))


# --- request body templates ---------------------------------------------------------------------
# One template per event of a card sale, as f-strings, plus one for the envelope.  The constant JSON
# fragments are encoded once here; per request we only substitute a few numbers and hex strings.
# The envelope order (expected_version, operator_no, device_time, event) follows the contract.

_CARD_PRESENTED_CONST = _dumps(
    {
        "entry_mode": "chip",
        "masked_pan": "622202******1234",
        "brand": "unionpay",
        "aid": "A000000333010101",
        "app_label": "UnionPay Debit",
        "tvr": "0000000000",
        "tsi": "E800",
        "atc": "0001",
        "cryptogram": "1A2B3C4D5E6F7081",
        "cvm_results": "010002",
    }
)[1:-1]  # strip the braces so it can be spliced after "type" and "pan_token"

EVENTS_PER_SALE = 10


@dataclass(slots=True)
class SaleParams:
    """Per-sale random values; generated once per sale, not per request."""

    till_session_id: str
    trace_no: int
    amount_minor: int
    pan_token: str
    rrn: int
    merchant_receipt_sha256: str
    customer_receipt_sha256: str


def event_json(index: int, p: SaleParams) -> str:
    """The JSON of event ``index`` (0..9) of a card sale (f-strings: JSON braces are doubled)."""
    if index == 0:
        return (
            f'{{"type":"TransactionOpened","kind":"sale","payment_method":"card",'
            f'"till_session_id":"{p.till_session_id}","batch_no":"000001","trace_no":"{p.trace_no:06d}"}}'
        )
    if index == 1:
        return f'{{"type":"AmountEntered","amount_minor":{p.amount_minor},"currency":"CNY"}}'
    if index == 2:
        return '{"type":"AmountConfirmed"}'
    if index == 3:
        return f'{{"type":"CardPresented","pan_token":"{p.pan_token}",{_CARD_PRESENTED_CONST}}}'
    if index == 4:
        return '{"type":"PinVerified","method":"online"}'
    if index == 5:
        return f'{{"type":"AuthorizationRequested","stan":"{p.trace_no:06d}"}}'
    if index == 6:
        return f'{{"type":"Authorized","auth_code":"123456","rrn":"{p.rrn:012d}","response_code":"00"}}'
    if index in (7, 8):
        copy, digest = (
            ("merchant", p.merchant_receipt_sha256) if index == 7 else ("customer", p.customer_receipt_sha256)
        )
        return (
            f'{{"type":"ReceiptPrinted","copy":"{copy}","printer":"bench","reprint_no":0,"receipt_sha256":"{digest}"}}'
        )
    if index == 9:
        return '{"type":"TransactionCompleted"}'
    raise ValueError(f"a sale has {EVENTS_PER_SALE} events, got index {index}")


def envelope_json(expected_version: int, device_time: str, event: str) -> str:
    return f'{{"expected_version":{expected_version},"operator_no":"01","device_time":"{device_time}","event":{event}}}'


class DeviceClock:
    """ISO 8601 device time, recomputed at most once per second (formatting a datetime per request
    would be a measurable share of the load generator's CPU)."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = datetime.fromtimestamp(second, DEVICE_TZ).isoformat()
        return self._text


# --- minimal HTTP/1.1 client --------------------------------------------------------------------


class HttpError(Exception):
    """The server's reply could not be parsed as HTTP/1.1 (not a non-2xx status: that is data)."""


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    keep_alive: bool


async def read_response(reader: asyncio.StreamReader) -> Response:
    """Read one response: status line, headers (only framing ones are looked at), body."""
    head = await reader.readuntil(b"\r\n\r\n")
    # b"HTTP/1.1 201 Created\r\n..." -> status is bytes 9..12 of the status line.
    if not head.startswith(b"HTTP/1."):
        raise HttpError(f"bad status line: {head[:80]!r}")
    status = int(head[9:12])
    lower = head.lower()
    keep_alive = b"\r\nconnection: close" not in lower
    cl = lower.find(b"\r\ncontent-length:")
    if cl >= 0:
        end = lower.index(b"\r\n", cl + 2)
        length = int(lower[cl + 17 : end])
        body = await reader.readexactly(length) if length else b""
    elif b"\r\ntransfer-encoding: chunked" in lower:
        body = await _read_chunked(reader)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        # Body delimited by connection close; never expected from uvicorn for JSON replies.
        body = await reader.read()
        keep_alive = False
    return Response(status, body, keep_alive)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            # Trailers (if any) end with an empty line.
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)  # CRLF after each chunk


# --- the simulation -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TerminalSpec:
    token: str
    till_session_id: str


@dataclass(slots=True)
class Stats:
    """Per-terminal results; merged at the end (no shared mutable state between coroutines)."""

    latencies_ns: array[int] = field(default_factory=lambda: array("q", bytes(8 * INITIAL_SAMPLES_PER_TERMINAL)))
    count: int = 0  # 2xx appends completed inside the window (== used part of latencies_ns)
    errors: int = 0  # non-2xx replies inside the window
    transport_errors: int = 0  # connection resets, unparsable replies, timeouts (any time)
    sales: int = 0  # sales whose 10 appends all got 2xx, completed inside the window
    warmup_requests: int = 0

    def record(self, latency_ns: int) -> None:
        if self.count == len(self.latencies_ns):
            self.latencies_ns.extend(array("q", bytes(8 * len(self.latencies_ns))))
        self.latencies_ns[self.count] = latency_ns
        self.count += 1


@dataclass(slots=True)
class Shared:
    """Run-wide settings and the error-body printing budget."""

    host: str
    port: int
    host_header: bytes
    t_measure_start_ns: int
    t_end_ns: int
    mode: str
    printed_errors: int = 0

    def report_error(self, what: str) -> None:
        if self.printed_errors < MAX_PRINTED_ERRORS:
            self.printed_errors += 1
            print(f"loadgen: {what}", file=sys.stderr, flush=True)


async def terminal(index: int, spec: TerminalSpec, shared: Shared, stats: Stats) -> None:
    """One simulated terminal: one connection, card sales back to back until the window closes."""
    rng = random.Random(index)  # deterministic per terminal, independent of the others
    clock = DeviceClock()
    # Everything in the request head that does not change per request, encoded once.
    head_prefix = b"POST /v1/transactions/"
    head_suffix = (
        b"/events HTTP/1.1\r\nHost: "
        + shared.host_header
        + b"\r\nAuthorization: Bearer "
        + spec.token.encode("ascii")
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
    )
    trace_no = 0
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    perf = time.perf_counter_ns
    try:
        while perf() < shared.t_end_ns:
            trace_no = trace_no % 999999 + 1  # 000001..999999, then wraps
            params = SaleParams(
                till_session_id=spec.till_session_id,
                trace_no=trace_no,
                amount_minor=rng.randint(100, 99999),
                pan_token=f"{rng.getrandbits(256):064x}",
                rrn=rng.randrange(10**12),
                merchant_receipt_sha256=f"{rng.getrandbits(256):064x}",
                customer_receipt_sha256=f"{rng.getrandbits(256):064x}",
            )
            path_head = head_prefix + str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode("ascii") + head_suffix
            sale_ok = True
            for version in range(EVENTS_PER_SALE):
                if perf() >= shared.t_end_ns:
                    break
                body = envelope_json(version, clock.now(), event_json(version, params)).encode("ascii")
                request = path_head + str(len(body)).encode("ascii") + b"\r\n\r\n" + body
                if writer is None:
                    reader, writer = await asyncio.open_connection(shared.host, shared.port)
                assert reader is not None
                started = perf()
                try:
                    writer.write(request)
                    response = await read_response(reader)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, HttpError) as exc:
                    # A broken connection is a failure of the run, not of one sale: count it,
                    # reconnect, and start a new sale (the stream's version is now unknown).
                    stats.transport_errors += 1
                    shared.report_error(f"terminal {index}: transport error {exc!r}")
                    writer.close()
                    reader = writer = None
                    sale_ok = False
                    break
                finished = perf()
                in_window = finished >= shared.t_measure_start_ns and finished < shared.t_end_ns
                if 200 <= response.status < 300:
                    if in_window:
                        stats.record(finished - started)
                    elif finished < shared.t_measure_start_ns:
                        stats.warmup_requests += 1
                else:
                    if in_window:
                        stats.errors += 1
                    shared.report_error(
                        f"terminal {index}: HTTP {response.status} for event {version} "
                        f"{body[:200]!r}: {response.body[:500]!r}"
                    )
                    sale_ok = False
                if not response.keep_alive:
                    writer.close()
                    reader = writer = None
                if not sale_ok:
                    # In app mode the rest of this sale would only produce follow-on conflicts;
                    # abandon it and open a fresh transaction.  (The noop app never fails.)
                    break
            else:
                if sale_ok and shared.t_measure_start_ns <= perf() < shared.t_end_ns:
                    stats.sales += 1
    finally:
        if writer is not None:
            writer.close()


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of an ascending list (q in 0..1)."""
    if not sorted_values:
        return 0
    rank = max(1, int(-(-q * len(sorted_values) // 1)))  # ceil(q*n), at least 1
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def run(args: argparse.Namespace, terminals: list[TerminalSpec]) -> dict[str, Any]:
    url = urlsplit(args.url)
    if url.scheme != "http" or url.hostname is None:
        raise SystemExit(f"--url must be http://host:port, got {args.url!r}")
    port = url.port or 80
    now = time.perf_counter_ns()
    shared = Shared(
        host=url.hostname,
        port=port,
        host_header=f"{url.hostname}:{port}".encode("ascii"),
        t_measure_start_ns=now + int(args.warmup * 1e9),
        t_end_ns=now + int((args.warmup + args.duration) * 1e9),
        mode=args.mode,
    )
    stats = [Stats() for _ in terminals]
    tasks = [asyncio.create_task(terminal(i, spec, shared, stats[i])) for i, spec in enumerate(terminals)]
    # Terminals stop issuing at t_end; give in-flight requests a bounded grace period.
    timeout = args.warmup + args.duration + args.grace
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=2)
    hung = len(pending)
    for task in done:
        exc = task.exception()
        if exc is not None:
            # Connection refused etc. at start-up: a setup problem, fail loudly.
            raise exc

    latencies = sorted(value for s in stats for value in s.latencies_ns[: s.count])
    requests = len(latencies)
    errors = sum(s.errors for s in stats)
    transport_errors = sum(s.transport_errors for s in stats) + hung
    usage = resource.getrusage(resource.RUSAGE_SELF)
    ms = 1e-6
    return {
        "mode": args.mode,
        "terminals": len(terminals),
        "requests": requests,
        "errors": errors + transport_errors,
        "http_errors": errors,
        "transport_errors": transport_errors,
        "seconds": args.duration,
        "rps": round(requests / args.duration, 1),
        "sales_per_s": round(sum(s.sales for s in stats) / args.duration, 1),
        "p50_ms": round(percentile(latencies, 0.50) * ms, 3),
        "p99_ms": round(percentile(latencies, 0.99) * ms, 3),
        "max_ms": round((latencies[-1] if latencies else 0) * ms, 3),
        "warmup_requests": sum(s.warmup_requests for s in stats),
        # CPU this process used over the whole run (warm-up included), to check it stays lean.
        "loadgen_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
    }


def load_terminals(args: argparse.Namespace) -> list[TerminalSpec]:
    if args.terminals_file is not None:
        raw = json.loads(Path(args.terminals_file).read_text())
        if not isinstance(raw, list) or not raw:
            raise SystemExit("--terminals-file must hold a non-empty JSON list")
        return [TerminalSpec(token=str(t["token"]), till_session_id=str(t["till_session_id"])) for t in raw]
    if args.mode != "noop" or args.terminals is None:
        raise SystemExit("--terminals-file is required (or --terminals N with --mode noop)")
    # The no-op app checks nothing, but the requests must have the real sizes: token-like bearer
    # strings and real UUIDs.
    return [
        TerminalSpec(token=uuid.uuid4().hex + uuid.uuid4().hex, till_session_id=str(uuid.uuid4()))
        for _ in range(args.terminals)
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--terminals-file", help='JSON list of {"token", "till_session_id"}; its length is the concurrency')
    p.add_argument("--terminals", type=int, help="noop mode only: synthesise N terminals instead of a file")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds (after warm-up)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    p.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_SECONDS,
        help="max seconds to wait for in-flight requests at the end",
    )
    p.add_argument(
        "--mode",
        choices=("app", "noop"),
        default="app",
        help="app: the real service; noop: bench/noop_app.py (identical requests, fake tokens allowed)",
    )
    args = p.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0:
        p.error("--duration must be > 0 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    terminals = load_terminals(args)
    # Last-resort bound: even if the event loop were wedged, the process ends by itself.
    hard_limit = int(args.warmup + args.duration + args.grace + 15)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(hard_limit)
    try:
        import uvloop
    except ImportError:  # plain asyncio works, only with more CPU per request
        result = asyncio.run(run(args, terminals))
    else:
        result = uvloop.run(run(args, terminals))
    signal.alarm(0)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
