"""What the service adds to the acquirer host's own reply time (target: ≤ 5 ms at p99).

One run, two measurements against the same host simulator (loopback TCP, its reply delayed by
``--host-delay-ms`` to stand in for a real host):

* baseline — the ISO 8583 client alone sends sales straight to the simulator: the host's reply
  time as any client sees it (TCP connect, encode, wait, decode);
* service — ``till serve`` (PostgreSQL by default) authorizes the same kind of sale over HTTP:
  AuthorizationRequested recorded, the request sent, the answer recorded, the response returned.

Reported: p50/p99 of both, and of the service's own time per request (HTTP round trip minus the
host exchange the service timed itself, from its ``Server-Timing: host;dur=`` header).

    .venv/bin/python bench/authorize.py --requests 2000 --terminals 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.acquirer_client import Iso8583AcquirerHost  # noqa: E402
from adapters.acquirer_simulator import AcquirerSimulator, SimulatorThread  # noqa: E402
from bench.append import (  # noqa: E402
    MERCHANT_NO,
    OPERATOR_NO,
    device_time,
    fresh_schema,
    free_port,
    provision_terminals,
    read_admin_token,
    server_process,
    venv_bin,
    wait_healthy,
)
from domain.acquirer import CardData, FinancialRequest, TerminalRef  # noqa: E402
from domain.card_data import luhn_valid  # noqa: E402

TARGET_ADDED_P99_MS = 5.0


def pan_for(serial: int) -> str:
    body = f"622202{serial % 10**9:09d}"
    return next(body + str(d) for d in range(10) if luhn_valid(body + str(d)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(percentile(values, 0.50), 3),
            "p99_ms": round(percentile(values, 0.99), 3), "max_ms": round(max(values), 3)}


async def baseline(port: int, count: int) -> list[float]:
    host = Iso8583AcquirerHost("127.0.0.1", port, timeout_s=5.0)
    samples = []
    for i in range(count):
        request = FinancialRequest(kind="sale", terminal=TerminalRef(MERCHANT_NO, "99999999"), batch_no="000001",
                                   stan=f"{i % 999_999 + 1:06d}", amount_minor=1_000 + i, currency="CNY",
                                   card=CardData(pan_for(i)), entry_mode="chip",
                                   chip_data={"9F26": "9F2A3B4C5D6E7F80", "95": "0000008000"},
                                   local_time=datetime.now(ZoneInfo("Asia/Shanghai")))
        started = time.perf_counter()
        reply = await host.authorize(request)
        samples.append((time.perf_counter() - started) * 1000)
        if not reply.approved:
            raise SystemExit(f"baseline sale declined: {reply.response_code}")
    return samples


class RawClient:
    """HTTP/1.1 over one kept-alive loopback connection, written by hand: httpx's own overhead
    (~2 ms a request here) would otherwise be counted as the service's."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        payload = json.dumps(body).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                          + payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, json.loads(data) if data else None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def one_terminal(client: RawClient, terminal: dict[str, str], index: int, count: int,
                       totals: list[float], own: list[float], appends: list[float]) -> None:
    token = terminal["token"]

    async def post(path: str, body: dict[str, Any]) -> tuple[dict[str, str], Any]:
        status, headers, answer = await client.post(path, token, body)
        if status >= 300:
            raise SystemExit(f"{path}: {status} {answer}")
        return headers, answer

    await post(f"/v1/terminals/{terminal['terminal_id']}/sign-on", {"operator_no": OPERATOR_NO})
    for n in range(count):
        txn = str(uuid.uuid4())
        pan = pan_for(index * 1_000_000 + n)
        events: list[dict[str, Any]] = [
            {"type": "TransactionOpened", "kind": "sale", "payment_method": "card",
             "till_session_id": terminal["till_session_id"], "batch_no": "000001", "trace_no": f"{n + 1:06d}"},
            {"type": "AmountEntered", "amount_minor": 1_000 + n, "currency": "CNY"},
            {"type": "AmountConfirmed"},
            {"type": "CardPresented", "entry_mode": "chip", "masked_pan": f"{pan[:6]}******{pan[-4:]}",
             "pan_token": f"{uuid.uuid4().hex}{uuid.uuid4().hex}", "brand": "unionpay",
             "aid": "A000000333010101", "app_label": "UnionPay Debit", "tvr": "0000008000", "tsi": "E800",
             "atc": "001C", "cryptogram": "9F2A3B4C5D6E7F80", "cvm_results": "420300"},
            {"type": "PinVerified", "method": "online"}]
        for version, event in enumerate(events):
            await post(f"/v1/transactions/{txn}/events", {"expected_version": version, "operator_no": OPERATOR_NO,
                                                          "device_time": device_time(), "event": event})
        body = {"expected_version": len(events), "operator_no": OPERATOR_NO, "device_time": device_time(),
                "card": {"pan": pan}}
        started = time.perf_counter()
        headers, answer = await post(f"/v1/transactions/{txn}/authorize", body)
        total = (time.perf_counter() - started) * 1000
        if answer["outcome"] != "authorized":
            raise SystemExit(f"sale not authorized: {answer}")
        totals.append(total)
        own.append(total - float(headers["server-timing"].split("dur=")[1]))
        started = time.perf_counter()
        await post(f"/v1/transactions/{txn}/events", {"expected_version": answer["version"],
                                                      "operator_no": OPERATOR_NO, "device_time": device_time(),
                                                      "event": {"type": "TransactionCompleted"}})
        appends.append((time.perf_counter() - started) * 1000)


async def through_service(base_url: str, terminals: list[dict[str, str]], per_terminal: int,
                          warmup: int) -> tuple[list[float], list[float], list[float]]:
    totals: list[float] = []
    own: list[float] = []
    appends: list[float] = []
    host, port = base_url.removeprefix("http://").split(":")
    clients = [RawClient(host, int(port)) for _ in terminals]
    try:
        await asyncio.gather(*(one_terminal(clients[i], t, i, per_terminal, totals, own, appends)
                               for i, t in enumerate(terminals)))
    finally:
        for client in clients:
            await client.close()
    return totals[warmup:], own[warmup:], appends[warmup:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1_000, help="authorizations through the service")
    parser.add_argument("--terminals", type=int, default=1, help="terminals authorizing at once")
    parser.add_argument("--host-delay-ms", type=int, default=20, help="the simulated host's own think time")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL for the service; 'sqlite' for the embedded store")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="till-authorize-bench-"))
    simulator = AcquirerSimulator(workdir / "host.sqlite",
                                  rules=[{"action": "slow", "delay_ms": args.host_delay_ms}])
    with SimulatorThread(simulator) as host_port:
        base = asyncio.run(baseline(host_port, args.requests + args.warmup))[args.warmup:]
        port = free_port()
        env = {**os.environ, "TILL_DATA_DIR": str(workdir / "data"), "TILL_ACQUIRER_URL": f"127.0.0.1:{host_port}",
               "TILL_ACQUIRER_TIMEOUT_S": "10"}
        schema = f"bench_auth_{uuid.uuid4().hex[:8]}"
        use_pg = args.database_url != "sqlite"
        if use_pg:
            env.update(TILL_DATABASE_URL=args.database_url, TILL_DATABASE_SCHEMA=schema)
        command = [str(venv_bin("till")), "serve", "--port", str(port), "--no-access-log"]  # as measured before
        with (fresh_schema(args.database_url, schema) if use_pg else _nothing()):
            with server_process(command, env, workdir / "serve.log") as proc:
                base_url = f"http://127.0.0.1:{port}"
                wait_healthy(base_url, proc, workdir / "serve.log")
                terminals = provision_terminals(base_url, read_admin_token(workdir / "data"), args.terminals)
                per_terminal = -(-(args.requests + args.warmup) // args.terminals)
                totals, own, appends = asyncio.run(through_service(base_url, terminals, per_terminal, args.warmup))
    simulator.close()

    added_p99 = percentile(totals, 0.99) - percentile(base, 0.99)
    result = {"store": "postgresql" if use_pg else "sqlite", "terminals": args.terminals,
              "host_delay_ms": args.host_delay_ms, "baseline_host": summary(base), "through_service": summary(totals),
              "service_own_time": summary(own), "one_plain_append": summary(appends), "added_p99_vs_baseline_ms": round(added_p99, 3),
              "target_added_p99_ms": TARGET_ADDED_P99_MS,
              "met": percentile(own, 0.99) <= TARGET_ADDED_P99_MS and added_p99 <= TARGET_ADDED_P99_MS}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
