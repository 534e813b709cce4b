"""Projection throughput: the ledger view applied a page at a time vs one event per view transaction.

A script, not a test. On a fresh PostgreSQL schema it records N card sales (10 events each) through
the group committer, then, in the same run, projects the whole log into the ledger view twice:

1. ``library-runner``: eventsourcing's ``ProjectionRunner`` (LISTEN/NOTIFY subscription, one
   ``process_event`` per event, so one view transaction per event) until it reaches the log head;
2. ``page-runner``: ``projections.runner.PageRunner.rebuild`` (one view transaction per page).

Both start from an empty view; the rows they produce are compared, and events/s printed.

    .venv/bin/python bench/projection.py --sales 3000 --page-size 500
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.settings import Settings  # noqa: E402
from adapters.store import ledger_environment, libpq_conninfo  # noqa: E402
from api.app import build_services  # noqa: E402
from api.services import Services  # noqa: E402
from domain.ledger import Ledger  # noqa: E402
from eventsourcing.projection import ProjectionRunner  # noqa: E402
from projections.ledger_view import LedgerViewProjection  # noqa: E402
from projections.rows import TERMINAL, TILL, TRANSACTION  # noqa: E402
from projections.view_store import PostgresLedgerView  # noqa: E402
from tests.conftest import SteppingClock, fast_hasher  # noqa: E402
from tests.integration.counter_commands import CounterCommands  # noqa: E402


async def record_sales(services: Services, counters: list[CounterCommands], sales: int) -> None:
    async def terminal(counter: CounterCommands, count: int) -> None:
        for _ in range(count):
            for command in counter.card_sale(uuid.uuid4(), 2_500):
                await services.executor.submit(command)

    per, extra = divmod(sales, len(counters))
    await asyncio.gather(*(terminal(c, per + (1 if i < extra else 0)) for i, c in enumerate(counters)))


def snapshot_rows(services: Services) -> dict[str, int]:
    view = services.views().view
    return {table: len(view._select(f"SELECT doc FROM {view._prefix}{table}", [])) for table in (TERMINAL, TILL, TRANSACTION)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sales", type=int, default=3_000, help="card sales to record (10 events each)")
    p.add_argument("--terminals", type=int, default=16)
    p.add_argument("--page-size", type=int, default=500)
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = p.parse_args()
    schema = f"till_projbench_{os.getpid()}"
    settings = Settings(database_url=args.database_url, database_schema=schema, data_dir=Path(f"/tmp/{schema}"),
                        embedded_projections=False, projection_page_size=args.page_size)
    clock = SteppingClock()
    services = build_services(settings, clock=clock, hasher=fast_hasher(), create_tables=True)
    try:
        counters = [CounterCommands(clock, terminal_no=f"{30_000_001 + i:08d}") for i in range(args.terminals)]
        for counter in counters:
            for command in counter.setup():
                services.executor.run(command)
        t0 = time.perf_counter()
        asyncio.run(record_sales(services, counters, args.sales))
        head = services.views().runner.head()
        print(f"recorded {head} events ({args.sales} sales) in {time.perf_counter() - t0:.1f} s")

        results: dict[str, Any] = {}
        ledger, page = services.ledger, args.page_size
        t0, position, decoded = time.perf_counter(), 0, 0
        while batch := ledger.recorder.select_notifications(start=position, limit=page, inclusive_of_start=False):
            position = batch[-1].id
        raw_rate = head / (time.perf_counter() - t0)
        t0, position = time.perf_counter(), 0
        while batch := ledger.recorder.select_notifications(start=position, limit=page, inclusive_of_start=False):
            decoded += len([ledger.mapper.to_domain_event(n) for n in batch])
            position = batch[-1].id
        decode_rate = decoded / (time.perf_counter() - t0)

        services.views().projection.reset()
        t0 = time.perf_counter()
        with ProjectionRunner(application_class=Ledger, projection_class=LedgerViewProjection,
                              view_class=PostgresLedgerView, env=ledger_environment(settings)) as runner:
            runner.wait(head, timeout=600)
        results["library-runner"] = (head / (time.perf_counter() - t0), snapshot_rows(services))

        t0 = time.perf_counter()
        applied = services.views().runner.rebuild()
        results["page-runner"] = (applied / (time.perf_counter() - t0), snapshot_rows(services))

        print(f"\nraw notification reads, pages of {page}: {raw_rate:,.0f} events/s; "
              f"read + decode to domain events: {decode_rate:,.0f} events/s")
        print(f"\n{'runner':<16}{'events/s':>12}  rows (terminal/till/txn)")
        for name, (rate, rows) in results.items():
            print(f"{name:<16}{rate:>12,.0f}  {rows[TERMINAL]}/{rows[TILL]}/{rows[TRANSACTION]}")
        same = results["library-runner"][1] == results["page-runner"][1]
        print(f"\npage ÷ one event per transaction: {results['page-runner'][0] / results['library-runner'][0]:.1f}×;"
              f" same row counts: {same}; page size {args.page_size}")
        return 0 if same else 1
    finally:
        services.close()
        with psycopg.connect(libpq_conninfo(settings), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    sys.exit(main())
