#!/usr/bin/env python3
"""Detection rates of `till verify --store`, with and without a saved heads file (a script, not a test).

Builds the same projected day as ``tests/integration/test_store_audit.py`` (one terminal: card sales,
cash, declines, reversals, voids, refunds, a settled batch and its Z report, an API token), saves the
stream heads while it is intact, then for ``--per-kind`` random tamperings of each kind (raw SQL on
the real tables, undone after each check) runs the check twice: with ``--heads`` and without. Prints
one table row per kind: tamperings, how many hit the last event of their stream, found (exit 1) and
named (a finding names the stream and the tampered version) with and without the heads file.

Usage::

    .venv/bin/python bench/tamper_rates.py --per-kind 200                  # SQLite
    .venv/bin/python bench/tamper_rates.py --per-kind 200 --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from adapters.settings import Settings  # noqa: E402
from adapters.store import libpq_conninfo  # noqa: E402
from api.cli import main as till  # noqa: E402
from domain.ledger import Ledger  # noqa: E402
from domain.stamp import Stamp  # noqa: E402
from tests.conftest import SteppingClock, make_services  # noqa: E402
from tests.integration.counter_commands import CounterCommands  # noqa: E402
from tests.integration.test_store_audit import RawTables, StoredEvent, names  # noqa: E402
from tests.projections.test_random_day import RandomDay  # noqa: E402


def verify(*extra: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = till(["verify", "--store", "--json", *extra])
    return code, json.loads(out.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (a new schema, dropped afterwards)")
    parser.add_argument("--seed", type=int, default=99)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="till-tamper-"))
    schema = f"tamper_{uuid.uuid4().hex[:12]}"
    settings = Settings(data_dir=data_dir, database_url=args.database_url, database_schema=schema,
                        embedded_projections=False)
    clock = SteppingClock()
    services = make_services(settings, clock)
    try:
        RandomDay(services, CounterCommands(clock), 2026).play(per_batch=7)
        services.executor.run(Ledger.issue_token(Stamp(None, None, None, clock.now()), "t" * 43, "accountant",
                                                 None, "tamper rates"))
        services.views().runner.catch_up()
    finally:
        services.close()
    os.environ.update(TILL_DATA_DIR=str(data_dir), TILL_EMBEDDED_PROJECTIONS="false")
    if args.database_url:
        os.environ.update(TILL_DATABASE_URL=args.database_url, TILL_DATABASE_SCHEMA=schema)
    heads = data_dir / "heads.json"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert till(["verify", "--store", "--save-heads", str(heads)]) == 0

    raw = RawTables(settings)
    events = raw.events()
    last: dict[str, int] = {}
    by_stream: dict[str, list[StoredEvent]] = {}
    for event in events:
        last[event.stream_id] = max(last.get(event.stream_id, 0), event.version)
        by_stream.setdefault(event.stream_id, []).append(event)
    longer = [stream for stream in by_stream.values() if len(stream) >= 2]
    rng = random.Random(args.seed)

    def flip() -> tuple[Callable[[], object], str, set[int]]:
        event = rng.choice(events)
        state = bytearray(event.state)
        at = rng.randrange(len(state))
        state[at] = rng.choice([b for b in range(256) if b != state[at]])
        return raw.set_state(event, bytes(state)), event.stream_id, {event.version}

    def delete() -> tuple[Callable[[], object], str, set[int]]:
        event = rng.choice(events)
        return raw.delete(event), event.stream_id, {event.version}

    def swap(how: str) -> Callable[[], tuple[Callable[[], object], str, set[int]]]:
        def tamper() -> tuple[Callable[[], object], str, set[int]]:
            a, b = sorted(rng.sample(rng.choice(longer), 2), key=lambda e: e.version)
            return getattr(raw, how)(a, b), a.stream_id, {a.version, b.version}
        return tamper

    store = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{store}: {len(events)} events in {len(by_stream)} streams, {args.per_kind} random tamperings per kind\n")
    print("| tampering | n | on a stream's last event | found with heads | named with heads | found without | "
          "named without |")
    print("|---|---|---|---|---|---|---|")
    try:
        for label, tamper in (("one byte of an event's state", flip), ("an event deleted", delete),
                              ("two versions swapped", swap("swap_versions")),
                              ("two notification ids swapped", swap("swap_notification_ids")),
                              ("two events' contents swapped", swap("swap_contents"))):
            counts = [0] * 6
            for _ in range(args.per_kind):
                undo, stream, versions = tamper()
                try:
                    anchored, with_heads = verify("--heads", str(heads))
                    bare, without = verify()
                finally:
                    undo()
                counts[0] += 1
                counts[1] += all(last[stream] == v for v in versions)
                counts[2] += anchored == 1
                counts[3] += anchored == 1 and names(with_heads, stream, versions)
                counts[4] += bare == 1
                counts[5] += bare == 1 and names(without, stream, versions)
            print(f"| {label} | " + " | ".join(map(str, counts)) + " |")
        assert verify()[0] == 0, "a tampering was not undone"
    finally:
        raw.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        if args.database_url:
            with psycopg.connect(libpq_conninfo(settings), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
