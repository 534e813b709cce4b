#!/usr/bin/env python3
"""How long `till verify --store` takes, and how much memory it uses, on a big store (a script, not a test).

Builds a store of about ``--events`` events through the real executor (whole days at ``--terminals``
counters: card sales, cash, declines, reversals, voids, refunds, a settled batch with its Z report
per terminal), projects it, then runs ``till verify --store`` as a child process ``--rounds`` times
and prints the wall time and the child's peak RSS. Then it flips one bit of a random event's stored
state (raw SQL), times the same check finding and naming it, and puts the byte back.

The store is kept for reruns (``--keep DIR``; on PostgreSQL a schema of that name).

Usage::

    .venv/bin/python bench/store_audit.py --events 100000                              # SQLite
    .venv/bin/python bench/store_audit.py --events 100000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/test --schema bench_audit      # PostgreSQL
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from adapters.settings import Settings  # noqa: E402
from adapters.store import libpq_conninfo  # noqa: E402
from tests.conftest import SteppingClock, make_services  # noqa: E402
from tests.integration.counter_commands import CounterCommands  # noqa: E402
from tests.projections.test_random_day import RandomDay  # noqa: E402


def build(settings: Settings, events: int, terminals: int) -> None:
    clock = SteppingClock()
    services = make_services(settings, clock)
    try:
        if services.ledger.recorder.max_notification_id():
            print(f"store already holds {services.ledger.recorder.max_notification_id()} events", file=sys.stderr)
        else:
            per_batch = max(1, events // terminals // 16)  # ~8 events per transaction, 2 batches
            started = time.monotonic()
            for number in range(terminals):
                counter = CounterCommands(clock, terminal_no=f"{40_000_001 + number}")
                RandomDay(services, counter, seed=number).play(per_batch=per_batch)
                print(f"\rterminal {number + 1}/{terminals}: {services.ledger.recorder.max_notification_id()} events "
                      f"in {time.monotonic() - started:.0f} s", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
        started = time.monotonic()
        services.views().runner.catch_up()
        print(f"projected in {time.monotonic() - started:.1f} s", file=sys.stderr)
    finally:
        services.close()


def verify(env: dict[str, str]) -> tuple[int, float, float, dict]:
    """Exit code, wall seconds, peak RSS (MiB) of one `till verify --store --json` child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "api.cli", "verify", "--store", "--json"], env=env,
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {"summary": done.stderr}
    return done.returncode, seconds, max(peak, before) / 1024, report


class Tamper:
    def __init__(self, settings: Settings) -> None:
        if settings.uses_postgres:
            self.db = psycopg.connect(libpq_conninfo(settings), autocommit=True)
            schema = sql.Identifier(settings.database_schema).as_string(self.db)
            self.table, self.id, self.p = f"{schema}.ledger_events", "notification_id", "%s"
        else:
            self.db = sqlite3.connect(settings.data_dir / "ledger.sqlite", isolation_level=None)
            self.table, self.id, self.p = "stored_events", "rowid", "?"

    def q(self, statement: str, params: list) -> list:
        cursor = self.db.execute(statement.replace("%s", self.p), params)
        return list(cursor.fetchall()) if cursor.description else []

    def pick(self, rng: random.Random, head: int) -> tuple:
        while True:
            rows = self.q(f"SELECT {self.id}, originator_id, originator_version, state FROM {self.table} "
                          f"WHERE {self.id} = %s", [rng.randrange(1, head + 1)])
            if rows:
                return rows[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--terminals", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--schema", default="bench_audit")
    parser.add_argument("--keep", type=Path, default=None, help="data dir to build in / reuse (default: a new temp dir)")
    args = parser.parse_args()

    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="till-audit-bench-"))
    settings = Settings(data_dir=data_dir, database_url=args.database_url, database_schema=args.schema,
                        embedded_projections=False)
    build(settings, args.events, args.terminals)
    env = {**os.environ, "TILL_DATA_DIR": str(data_dir), "TILL_EMBEDDED_PROJECTIONS": "false"}
    if args.database_url:
        env.update(TILL_DATABASE_URL=args.database_url, TILL_DATABASE_SCHEMA=args.schema)

    store = "PostgreSQL" if args.database_url else "SQLite"
    print(f"| store | events | streams | view rows | check | exit | wall s | audit s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for round_no in range(args.rounds):
        code, seconds, rss, report = verify(env)
        print(f"| {store} | {report.get('events')} | {report.get('streams')} | {report.get('view_rows')} | "
              f"intact, round {round_no + 1} | {code} | {seconds:.1f} | {report.get('seconds')} | {rss:.0f} |")
    tamper, rng = Tamper(settings), random.Random(1)
    head = int(report.get("head") or 0)
    note, stream, version, state = tamper.pick(rng, head)
    flipped = bytearray(state)
    flipped[rng.randrange(len(flipped))] ^= 0x01
    tamper.q(f"UPDATE {tamper.table} SET state = %s WHERE {tamper.id} = %s", [bytes(flipped), note])
    code, seconds, rss, report = verify(env)
    tamper.q(f"UPDATE {tamper.table} SET state = %s WHERE {tamper.id} = %s", [state, note])
    named = [f for f in report.get("findings", []) if f.get("version") == version]
    print(f"| {store} | {report.get('events')} | {report.get('streams')} | {report.get('view_rows')} | one byte of "
          f"notification {note} flipped ({'named' if named else 'NOT named'}) | {code} | {seconds:.1f} | "
          f"{report.get('seconds')} | {rss:.0f} |")
    print(f"\nstore kept in {data_dir}" + (f" (schema {args.schema})" if args.database_url else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
