"""`till verify --store` finds every tampering with a real store and names where it is (SQLite and PostgreSQL).

A day at the counter is written through the real executor and projected; then each tampering is
done with raw SQL on the real tables — one byte of an event's stored state changed, an event
deleted, two events of a stream reordered (their versions, their notification ids or their
contents swapped), a view row or a running total changed — `till verify --store` runs through
``main([...])``, and the tampering is undone before the next one. Events, bytes and rows are drawn
at random (seeded, so a failure repeats), many per kind.

The attacker: on PostgreSQL these tests connect as the superuser to a bare test schema
(``tests/conftest.py``), which has no trigger refusing UPDATE and DELETE on the event table. A
deployment set up by ``till db init`` has that trigger and an app role without DELETE, so this
models someone past both: a DBA, a stolen owner or superuser password, a restored and edited backup.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from adapters.settings import Settings
from adapters.store import libpq_conninfo
from api.cli import main
from domain.ledger import Ledger
from domain.stamp import Stamp
from projections.aggregates import AGGREGATES
from projections.rows import TERMINAL, TILL, TRANSACTION, Z_REPORT
from tests.conftest import SteppingClock, make_services, point_env_at
from tests.integration.counter_commands import CounterCommands
from tests.projections.test_random_day import RandomDay

PER_KIND = 50  # random tamperings of each kind, on each store
Undo = Callable[[], object]


@dataclass(frozen=True)
class StoredEvent:
    notification_id: int
    stream: Any  # as stored: hex text on SQLite, a UUID on PostgreSQL
    version: int
    topic: str
    state: bytes

    @property
    def stream_id(self) -> str:
        return str(self.stream if isinstance(self.stream, UUID) else UUID(self.stream))


class RawTables:
    """The real tables, reached past the application with plain SQL (what the attacker has)."""

    def __init__(self, settings: Settings) -> None:
        self.postgres = settings.uses_postgres
        if self.postgres:
            self.pg = psycopg.connect(libpq_conninfo(settings), autocommit=True)
            schema = sql.Identifier(settings.database_schema).as_string(self.pg)
            self.events_table, self.id_column = f"{schema}.ledger_events", "notification_id"
            self.view_prefix = f"{schema}.view_"
            self.ledger_db = self.view_db = self.pg
        else:
            self.events_table, self.id_column, self.view_prefix = "stored_events", "rowid", "view_"
            self.ledger_db = sqlite3.connect(settings.data_dir / "ledger.sqlite", isolation_level=None)
            self.view_db = sqlite3.connect(settings.data_dir / "ledger_view.sqlite", isolation_level=None)

    def close(self) -> None:
        for db in {id(self.ledger_db): self.ledger_db, id(self.view_db): self.view_db}.values():
            db.close()

    def run(self, db: Any, statement: str, params: list[Any] | tuple[Any, ...] = ()) -> list[Any]:
        cursor = db.execute(statement if self.postgres else statement.replace("%s", "?"), list(params))
        return list(cursor.fetchall()) if cursor.description else []

    def events(self) -> list[StoredEvent]:
        return [StoredEvent(r[0], r[1], r[2], r[3], bytes(r[4])) for r in self.run(
            self.ledger_db, f"SELECT {self.id_column}, originator_id, originator_version, topic, state "
            f"FROM {self.events_table} ORDER BY {self.id_column}")]

    # ---- tamperings on events, each returning its undo ---------------------------------------------
    def set_state(self, event: StoredEvent, state: bytes) -> Undo:
        update = f"UPDATE {self.events_table} SET state = %s WHERE {self.id_column} = %s"
        self.run(self.ledger_db, update, [state, event.notification_id])
        return lambda: self.run(self.ledger_db, update, [event.state, event.notification_id])

    def delete(self, event: StoredEvent) -> Undo:
        self.run(self.ledger_db, f"DELETE FROM {self.events_table} WHERE {self.id_column} = %s",
                 [event.notification_id])
        return lambda: self.run(self.ledger_db, f"INSERT INTO {self.events_table} ({self.id_column}, originator_id, "
                                "originator_version, topic, state) VALUES (%s, %s, %s, %s, %s)",
                                [event.notification_id, event.stream, event.version, event.topic, event.state])

    def swap_versions(self, a: StoredEvent, b: StoredEvent) -> Undo:
        def swap() -> None:
            update = f"UPDATE {self.events_table} SET originator_version = %s " \
                "WHERE originator_id = %s AND originator_version = %s"
            self.run(self.ledger_db, update, [-1, a.stream, a.version])
            self.run(self.ledger_db, update, [a.version, b.stream, b.version])
            self.run(self.ledger_db, update, [b.version, a.stream, -1])
        swap()
        return swap

    def swap_notification_ids(self, a: StoredEvent, b: StoredEvent) -> Undo:
        def swap() -> None:
            update = f"UPDATE {self.events_table} SET {self.id_column} = %s WHERE {self.id_column} = %s"
            self.run(self.ledger_db, update, [-1, a.notification_id])
            self.run(self.ledger_db, update, [a.notification_id, b.notification_id])
            self.run(self.ledger_db, update, [b.notification_id, -1])
        swap()
        return swap

    def swap_contents(self, a: StoredEvent, b: StoredEvent) -> Undo:
        update = f"UPDATE {self.events_table} SET topic = %s, state = %s WHERE {self.id_column} = %s"
        self.run(self.ledger_db, update, [b.topic, b.state, a.notification_id])
        self.run(self.ledger_db, update, [a.topic, a.state, b.notification_id])

        def undo() -> None:
            self.run(self.ledger_db, update, [a.topic, a.state, a.notification_id])
            self.run(self.ledger_db, update, [b.topic, b.state, b.notification_id])
        return undo

    # ---- tamperings on the view ------------------------------------------------------------------------
    def view_rows(self, table: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.run(self.view_db, f"SELECT id, doc FROM {self.view_prefix}{table}")]

    def set_view_doc(self, table: str, row_id: str, doc: str, original: str) -> Undo:
        update = f"UPDATE {self.view_prefix}{table} SET doc = %s WHERE id = %s"
        self.run(self.view_db, update, [doc, row_id])
        return lambda: self.run(self.view_db, update, [original, row_id])

    def set_view_column(self, table: str, row_id: str, column: str, value: Any) -> Undo:
        update = f"UPDATE {self.view_prefix}{table} SET {column} = %s WHERE id = %s"
        (original,) = self.run(self.view_db, f"SELECT {column} FROM {self.view_prefix}{table} WHERE id = %s",
                               [row_id])[0]
        self.run(self.view_db, update, [value, row_id])
        return lambda: self.run(self.view_db, update, [original, row_id])

    def totals(self, table: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.run(self.view_db, f"SELECT {', '.join(columns)} FROM {self.view_prefix}{table}")]

    def add_to_total(self, table: str, keys: dict[str, Any], column: str, delta: int) -> Undo:
        where = " AND ".join(f"{k} = %s" for k in keys)
        update = f"UPDATE {self.view_prefix}{table} SET {column} = {column} + %s WHERE {where}"
        self.run(self.view_db, update, [delta, *keys.values()])
        return lambda: self.run(self.view_db, update, [-delta, *keys.values()])


@dataclass
class Store:
    settings: Settings
    raw: RawTables
    heads: Path
    rng: random.Random

    def verify(self, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
        code = main(["verify", "--store", "--json", *extra])
        out = capsys.readouterr().out
        return code, json.loads(out)

    def tails(self) -> set[tuple[str, int]]:
        last: dict[str, int] = {}
        for event in self.raw.events():
            last[event.stream_id] = max(last.get(event.stream_id, 0), event.version)
        return set(last.items())


@pytest.fixture
def store(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
          capsys: pytest.CaptureFixture[str]) -> Iterator[Store]:
    """A projected day (every kind of sale, a settled batch with its Z report, an API token), with its
    stream heads saved while intact; TILL_* point at it."""
    clock = SteppingClock()
    services = make_services(settings, clock)
    try:
        RandomDay(services, CounterCommands(clock), 2026).play(per_batch=7)
        services.executor.run(Ledger.issue_token(Stamp(None, None, None, clock.now()), "t" * 43, "accountant",
                                                 None, "audit test"))
        services.views().runner.catch_up()  # with the Z report it issues, and applies, on the way
    finally:
        services.close()
    point_env_at(settings, monkeypatch)
    monkeypatch.setenv("TILL_EMBEDDED_PROJECTIONS", "false")
    heads = tmp_path / "heads.json"
    assert main(["verify", "--store", "--save-heads", str(heads)]) == 0
    capsys.readouterr()
    raw = RawTables(settings)
    try:
        yield Store(settings, raw, heads, random.Random(7))
    finally:
        raw.close()


def names(report: dict[str, Any], stream_id: str, versions: set[int], *, without_heads: bool = False) -> bool:
    """Whether a tampering finding names this stream and one of these versions."""
    return any(f["severity"] == "tampering" and f["stream_id"] == stream_id
               and (f["version"] in versions or versions & set(f["versions"]))
               and not (without_heads and f["check"] == "heads") for f in report["findings"])


def tamper_many(store: Store, capsys: pytest.CaptureFixture[str], tamper: Callable[[], tuple[Undo, str, set[int]]]
                ) -> int:
    """PER_KIND tamperings, each verified (with the saved heads) and undone; returns how many were on the
    last event of their stream (covered by the heads file alone) and checks every other one is found
    without it too."""
    tails = store.tails()
    on_a_tail = 0
    for attempt in range(PER_KIND):
        undo, stream_id, versions = tamper()
        try:
            code, report = store.verify(capsys, "--heads", str(store.heads))
        finally:
            undo()
        what = f"tampering {attempt} of stream {stream_id} version(s) {sorted(versions)}"
        assert code == 1, f"{what} was not detected: {report['summary']}"
        assert names(report, stream_id, versions), f"{what} was not named: {report['findings']}"
        if all((stream_id, v) in tails for v in versions):
            on_a_tail += 1
        else:
            assert names(report, stream_id, versions, without_heads=True), \
                f"{what} was found only through the heads file: {report['findings']}"
    return on_a_tail


def test_an_untouched_store_is_intact_and_the_summary_says_what_was_checked(
        store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = store.verify(capsys, "--heads", str(store.heads))

    assert code == 0 and report["status"] == "intact" and report["findings"] == [], report
    events = store.raw.events()
    assert report["events"] == len(events) and report["head"] == events[-1].notification_id
    assert report["view_position"] == report["head"] and report["view_rows"] >= 15 and report["view_totals"] >= 5
    assert report["heads_checked"] == report["streams"] == len({e.stream_id for e in events})
    assert main(["verify", "--store"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"INTACT: {len(events)} events in ")


def test_one_changed_byte_in_any_stored_event_is_found_and_named(
        store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    events = store.raw.events()

    def flip() -> tuple[Undo, str, set[int]]:
        event = store.rng.choice(events)
        state = bytearray(event.state)
        at = store.rng.randrange(len(state))
        state[at] = store.rng.choice([b for b in range(256) if b != state[at]])
        return store.raw.set_state(event, bytes(state)), event.stream_id, {event.version}

    tamper_many(store, capsys, flip)


def test_a_deleted_event_is_found_and_named(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    events = store.raw.events()

    def delete() -> tuple[Undo, str, set[int]]:
        event = store.rng.choice(events)
        return store.raw.delete(event), event.stream_id, {event.version}

    tamper_many(store, capsys, delete)


def test_two_reordered_events_are_found_and_named(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    by_stream: dict[str, list[StoredEvent]] = {}
    for event in store.raw.events():
        by_stream.setdefault(event.stream_id, []).append(event)
    longer = [stream for stream in by_stream.values() if len(stream) >= 2]

    def reorder() -> tuple[Undo, str, set[int]]:
        a, b = sorted(store.rng.sample(store.rng.choice(longer), 2), key=lambda e: e.version)
        how = store.rng.choice([store.raw.swap_versions, store.raw.swap_notification_ids, store.raw.swap_contents])
        return how(a, b), a.stream_id, {a.version, b.version}

    tamper_many(store, capsys, reorder)


def _changed(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice([-1, 1])
    if isinstance(value, str):
        return value[:-1] + ("X" if value[-1:] != "X" else "Y")
    if isinstance(value, list):
        return [*value, "X"]
    if isinstance(value, dict):
        return {**value, "X": 1}
    return "X"


def test_a_changed_view_row_or_running_total_is_found_and_named(
        store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    rows = {table: store.raw.view_rows(table) for table in (TERMINAL, TILL, TRANSACTION, Z_REPORT)}
    totals = {a: store.raw.totals(a.table, (*a.keys, *a.values)) for a in AGGREGATES}
    rng = store.rng
    for attempt in range(PER_KIND):
        if attempt % 3 == 2:  # a running total
            aggregate = rng.choice([a for a in AGGREGATES if totals[a]])
            row = rng.choice(totals[aggregate])
            keys = dict(zip(aggregate.keys, row))
            undo = store.raw.add_to_total(aggregate.table, keys, rng.choice(aggregate.values), rng.choice([-1, 1, 100]))
            table, row_id = aggregate.table, "/".join(str(k) for k in row[:len(aggregate.keys)])
        else:
            table = rng.choice([t for t in rows if rows[t]])
            row_id, doc = rng.choice(rows[table])
            document = json.loads(doc)
            choice = rng.randrange(3)
            if choice == 0:  # a value in the document
                field = rng.choice(sorted(document))
                document[field] = _changed(document[field], rng)
                undo = store.raw.set_view_doc(table, row_id, json.dumps(document, ensure_ascii=False, sort_keys=True),
                                              doc)
            elif choice == 1:  # one byte of the document's text
                at = rng.randrange(len(doc))
                edited = doc[:at] + rng.choice([c for c in ' "0123456789:,{}[]abcXyz' if c != doc[at]]) + doc[at + 1:]
                undo = store.raw.set_view_doc(table, row_id, edited, doc)
            else:  # an indexed column the searches and reports filter on
                column = "amount_minor" if table == TRANSACTION else rng.choice(
                    {TERMINAL: ["merchant_no", "store_id"], TILL: ["business_day", "store_id"],
                     Z_REPORT: ["batch_no", "business_day"]}[table])
                undo = store.raw.set_view_column(table, row_id, column, 1 if column == "amount_minor" else "X")
        try:
            code, report = store.verify(capsys)
        finally:
            undo()
        assert code == 1, f"view tampering {attempt} of {table} {row_id} was not detected: {report['summary']}"
        assert any(f["table"] == table and f["row_id"] == row_id for f in report["findings"]), report["findings"]
    assert store.verify(capsys)[0] == 0  # every tampering undone: no false alarm left behind


def test_the_last_event_of_a_stream_needs_the_heads_file_and_a_gap_is_judged_by_the_store(
        store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    """Deleting the last event of an API token's stream (not projected, no successor) leaves a valid
    shorter chain and one missing notification id. SQLite never skips an id: tampering. PostgreSQL's
    sequence does skip on a rolled-back insert: a warning, unless the heads file or --strict-gaps."""
    token = next(e for e in store.raw.events() if ":ApiToken." in e.topic)
    undo = store.raw.delete(token)
    try:
        code, report = store.verify(capsys)
        strict, _ = store.verify(capsys, "--strict-gaps")
        anchored, with_heads = store.verify(capsys, "--heads", str(store.heads))
    finally:
        undo()
    gap = [f for f in report["findings"] if f["check"] == "log"]
    assert [f["notification_id"] for f in gap] == [token.notification_id], report["findings"]
    if store.settings.uses_postgres:
        assert code == 0 and gap[0]["severity"] == "warning" and "rolled-back insert" in gap[0]["message"]
    else:
        assert code == 1 and gap[0]["severity"] == "tampering"
    assert strict == 1
    assert anchored == 1 and names(with_heads, token.stream_id, {1})


def test_a_heads_file_changed_after_it_was_saved_is_refused(
        store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    body = json.loads(store.heads.read_text())
    body["streams"][0][2] += 1  # claim a longer stream
    store.heads.write_text(json.dumps(body))

    assert main(["verify", "--store", "--heads", str(store.heads)]) == 2
    assert "changed after it was saved" in capsys.readouterr().err


def test_a_store_that_is_not_there_cannot_be_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TILL_DATA_DIR", str(tmp_path / "nothing-here"))
    monkeypatch.delenv("TILL_DATABASE_URL", raising=False)

    assert main(["verify", "--store"]) == 2
    assert "could not check" in capsys.readouterr().err
    assert not (tmp_path / "nothing-here").exists()  # read-only: not even the directory was made


def test_verify_wants_a_bundle_or_the_store_not_both(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["verify"]) == 2
    assert main(["verify", str(tmp_path / "b.json"), "--store"]) == 2
    assert "either a bundle file or --store" in capsys.readouterr().err


@pytest.mark.postgres
def test_a_rolled_back_insert_leaves_a_gap_on_postgresql_that_is_a_warning_and_a_saved_heads_file_accepts(
        pg_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The recorder's table lock orders inserts, but a failed insert (here a version conflict) has
    already taken its id from the sequence: PostgreSQL leaves a gap that is not tampering."""
    clock = SteppingClock()
    services = make_services(pg_settings, clock)
    try:
        counter = CounterCommands(clock)
        for command in counter.setup():
            services.executor.run(command)
        first = services.ledger.recorder.max_notification_id()
        stored = services.ledger.recorder.select_notifications(start=first, limit=1)[0]
        with pytest.raises(Exception, match="duplicate key|IntegrityError"):  # the same stream and version again
            services.ledger.recorder.insert_events([stored])
        services.executor.run(counter.txn(uuid4(), "TransactionOpened", kind="sale", payment_method="cash",
                                          till_session_id=counter.till_id, batch_no="000001", trace_no="000001",
                                          original_transaction_id=None))
        services.views().runner.catch_up()
        ids = [n.id for n in services.ledger.recorder.select_notifications(start=1, limit=100)]
    finally:
        services.close()
    assert sorted(set(range(1, ids[-1] + 1)) - set(ids)) == [first + 1]  # the id the failed insert took
    monkeypatch.setenv("TILL_DATA_DIR", str(pg_settings.data_dir))
    monkeypatch.setenv("TILL_DATABASE_URL", pg_settings.database_url or "")
    monkeypatch.setenv("TILL_DATABASE_SCHEMA", pg_settings.database_schema)

    assert main(["verify", "--store", "--save-heads", str(tmp_path / "heads.json")]) == 0
    out = capsys.readouterr().out
    assert f"WARNING  log      log notification {first + 1}: notification id {first + 1} is missing: a rolled-back" in out
    assert main(["verify", "--store", "--heads", str(tmp_path / "heads.json")]) == 0  # a known gap


def test_a_changed_snapshot_is_found_against_the_events_replayed_to_it(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The terminal's stream is loaded from its snapshot every 100 events: a changed snapshot would
    change what the service believes (its operators, its blocks) without touching an event."""
    clock = SteppingClock()
    services = make_services(settings, clock)
    try:
        RandomDay(services, CounterCommands(clock), 5).play(per_batch=52)
    finally:
        services.close()
    point_env_at(settings, monkeypatch)
    raw = RawTables(settings)
    table = f"{raw.events_table.rpartition('ledger_events')[0]}ledger_snapshots" if raw.postgres else "stored_snapshots"
    try:
        ((stream, version, state),) = raw.run(raw.ledger_db, f"SELECT originator_id, originator_version, state "
                                                             f"FROM {table}")
        edited = bytes(state).replace(b'"merchant_no":"898310048990001"', b'"merchant_no":"898310048990009"')
        assert edited != bytes(state)
        raw.run(raw.ledger_db, f"UPDATE {table} SET state = %s", [edited])
        started = time.monotonic()
        assert main(["verify", "--store", "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
    finally:
        raw.close()
    (finding,) = [f for f in report["findings"] if f["check"] == "snapshot"]
    assert finding["version"] == version == 100 and "merchant_no" in finding["message"]
    assert finding["kind"] == "Terminal" and finding["stream_id"] == str(stream if isinstance(stream, UUID)
                                                                          else UUID(stream))
    assert report["snapshots"] == 1 and time.monotonic() - started < 10
