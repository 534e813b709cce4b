"""Read-side latencies on PostgreSQL: the accountant's day report over a day of N transactions, one
transaction's dispute evidence, and a receipt read right after its sale completes.

A script, not a test.

1. Day report: N completed transactions of one business day are written into the ledger view the way
   the projection writes them (rows + running totals, a page per view transaction; the rows are
   synthesized, not folded from 10·N events, which would take an hour), then ``build_day_report``
   (what ``GET /v1/reports/day`` runs) is timed.
2. Evidence and receipts: real sales are appended through the HTTP API (in process), the projection
   catches up, then ``GET /v1/disputes/{id}/evidence`` and, right after each sale's
   ``TransactionCompleted`` is acknowledged, ``GET /v1/transactions/{id}/receipt`` are timed.

    .venv/bin/python bench/reads.py --transactions 1000000
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eventsourcing.persistence import Tracking  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from adapters.group_commit import run_alone  # noqa: E402
from adapters.settings import Settings  # noqa: E402
from adapters.store import libpq_conninfo  # noqa: E402
from api.app import build_services, create_app  # noqa: E402
from api.auth import new_token  # noqa: E402
from api.routers.reports import build_day_report  # noqa: E402
from domain.ledger import Ledger  # noqa: E402
from domain.stamp import Stamp  # noqa: E402
from projections.aggregates import contributions, deltas  # noqa: E402
from projections.rows import TRANSACTION, MemoryRows  # noqa: E402
from tests.conftest import SteppingClock, fast_hasher  # noqa: E402
from tests.counter import Till  # noqa: E402

DAY = "2026-11-24"


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def synthetic_row(i: int, rng: random.Random) -> dict[str, Any]:
    kind = rng.choices(["sale", "refund", "void"], [90, 6, 4])[0]
    cash = rng.random() < 0.2
    terminal = rng.randrange(200)
    return {
        "id": str(uuid.UUID(int=i + 1)), "terminal_id": str(uuid.UUID(int=10**12 + terminal)),
        "merchant_no": "898310048990001", "terminal_no": f"{30_000_000 + terminal:08d}",
        "store_id": f"store-{terminal % 20:02d}", "operator_no": f"{rng.randrange(1, 6):02d}", "kind": kind,
        "payment_method": "cash" if cash else "card", "status": "completed",
        "outcome": None if cash else rng.choices(["authorized", "declined", "reversed"], [96, 3, 1])[0],
        "card": None if cash else {"brand": rng.choice(["unionpay", "visa", "mastercard"]),
                                   "masked_pan": "622202******1234"},
        "amount_minor": rng.randrange(100, 500_000), "fee_minor": rng.randrange(0, 2_000), "currency": "CNY",
        "till_session_id": str(uuid.UUID(int=2 * 10**12 + terminal)), "business_day": DAY,
        "batch_no": "000001", "trace_no": f"{i % 1_000_000:06d}", "rrn": f"{i:012d}", "auth_code": "A1B2C3",
        "original_transaction_id": None, "opened_at": "2026-11-24T02:00:00+00:00",
    }


def fill_day(services: Any, count: int, page: int = 10_000) -> float:
    view = services.views().view
    rng = random.Random(1)
    start = time.perf_counter()
    for first in range(0, count, page):
        rows, totals = MemoryRows(), {}
        for i in range(first, min(count, first + page)):
            row = synthetic_row(i, rng)
            rows.put(TRANSACTION, row["id"], row)
            deltas([], contributions(row), totals)
        view.apply_page(rows, Tracking("synthetic", first + page), totals)
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transactions", type=int, default=1_000_000, help="transactions in the reported day")
    p.add_argument("--sales", type=int, default=200, help="real sales for the evidence and receipt timings")
    p.add_argument("--repeat", type=int, default=50, help="timed day reports")
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = p.parse_args()
    schema = f"till_readbench_{os.getpid()}"
    settings = Settings(database_url=args.database_url, database_schema=schema, data_dir=Path(f"/tmp/{schema}"),
                        embedded_projections=False)
    services = build_services(settings, clock=SteppingClock(datetime(2026, 11, 24, 2, tzinfo=UTC)),
                              hasher=fast_hasher(), create_tables=True)
    try:
        took = fill_day(services, args.transactions)
        print(f"wrote {args.transactions:,} transaction rows and their running totals in {took:.0f} s")
        views = services.views()
        now = datetime.now(UTC)
        build_day_report(views, DAY, None, now)  # warm
        samples = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            report = build_day_report(views, DAY, None, now)
            samples.append((time.perf_counter() - t0) * 1e3)
        total = sum(line["count"] for line in report["lines"])
        print(f"day report over {total:,} counted transactions ({len(report['lines'])} lines): "
              f"p50 {statistics.median(samples):.1f} ms, p99 {percentile(samples, 0.99):.1f} ms  (target ≤ 100 ms)")

        with TestClient(create_app(services=services)) as client:
            token = new_token()
            run_alone(services.ledger, Ledger.issue_token(Stamp(None, None, None, now), token, "admin", None, "bench"))
            till = Till(client, token).register().open()
            auth = {"Authorization": f"Bearer {token}"}
            receipt_ms, sale_ids = [], []
            for _ in range(args.sales):
                txn = till.begin()
                till.authorize(txn, 2_500)
                till.finish(txn)  # TransactionCompleted acknowledged here
                t0 = time.perf_counter()
                response = client.get(f"/v1/transactions/{txn.stream_id}/receipt", headers=till.headers)
                receipt_ms.append((time.perf_counter() - t0) * 1e3)
                assert response.status_code == 200, response.text
                sale_ids.append(txn.stream_id)
            views.runner.catch_up()
            evidence_ms = []
            for sale_id in sale_ids:
                t0 = time.perf_counter()
                response = client.get(f"/v1/disputes/{sale_id}/evidence", headers=auth)
                evidence_ms.append((time.perf_counter() - t0) * 1e3)
                assert response.status_code == 200, response.text
        print(f"receipt read right after completion ({args.sales} sales): p50 {statistics.median(receipt_ms):.1f} ms, "
              f"p99 {percentile(receipt_ms, 0.99):.1f} ms  (target ≤ 50 ms)")
        print(f"dispute evidence JSON ({len(sale_ids)} transactions): p50 {statistics.median(evidence_ms):.1f} ms, "
              f"p99 {percentile(evidence_ms, 0.99):.1f} ms  (target ≤ 20 ms)")
        return 0
    finally:
        services.close()
        with psycopg.connect(libpq_conninfo(settings), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    sys.exit(main())
