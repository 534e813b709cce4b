"""The ledger's tables, made once by the database owner (``till db init``), and the check that they exist.

On PostgreSQL the service and the projection workers can run as a role that reads and appends but
never creates, changes or removes stored events (``infra/postgres/create-database.sql`` makes that
role and the owner role). Then:

* ``init_database`` runs as the owner: it creates every table the ledger and its views use, makes
  the event table refuse UPDATE, DELETE and TRUNCATE with a trigger, and grants the app role exactly
  what it uses. It can run again after an upgrade (new tables get their grants too).
* ``require_tables`` runs in every process started with ``TILL_CREATE_TABLES=false`` and names the
  missing tables in plain words, where the alternative is a permission or "relation does not exist"
  error from deep inside the first request.

Why the app role holds UPDATE on the event table at all: the store serialises appends with
``LOCK TABLE … IN EXCLUSIVE MODE`` (eventsourcing's recorder, kept by ``adapters/postgres_recorder``),
and PostgreSQL 15 allows that lock only to a role with UPDATE, DELETE or TRUNCATE on the table.
UPDATE is granted and refused by the trigger; DELETE and TRUNCATE are never granted. Of the three,
UPDATE does least harm should the trigger ever be dropped: it cannot remove an event, and the hash
chain exposes a changed one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from adapters.settings import Settings
from adapters.store import libpq_conninfo
from domain.errors import StoreUnavailable
from domain.ledger import Ledger
from projections.aggregates import AGGREGATES
from projections.ledger_view import NAME as LEDGER_VIEW
from projections.rows import TERMINAL, TILL, TRANSACTION, Z_REPORT

GUARD_FUNCTION = "till_refuse_event_change"
GUARD_TRIGGER = "till_events_are_immutable"
# Derived state the app maintains (views, their tracking rows): it may also correct and rebuild it.
READ_WRITE = ("SELECT", "INSERT", "UPDATE", "DELETE")


def events_table() -> str:
    return f"{Ledger.name.lower()}_events"


def snapshots_table() -> str:
    return f"{Ledger.name.lower()}_snapshots"


def view_tables() -> list[str]:
    return [f"view_{table}" for table in (TERMINAL, TILL, TRANSACTION, Z_REPORT)] + [
        f"view_{aggregate.table}" for aggregate in AGGREGATES]


def required_tables() -> list[str]:
    """The PostgreSQL tables a process needs before it serves."""
    return [events_table(), snapshots_table(), f"{LEDGER_VIEW}_tracking", *view_tables()]


def sqlite_tables() -> dict[str, list[str]]:
    """The same on SQLite: eventsourcing's fixed table names, one file per application or view."""
    return {"ledger.sqlite": ["stored_events"], f"{LEDGER_VIEW}.sqlite": ["tracking", *view_tables()]}


def missing_tables(settings: Settings) -> list[str]:
    if not settings.uses_postgres:
        return _missing_sqlite_tables(settings)
    try:
        with psycopg.connect(libpq_conninfo(settings), autocommit=True) as conn:
            found = {row[0] for row in conn.execute(
                "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = %s", [settings.database_schema])}
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot reach PostgreSQL: {exc.__class__.__name__}: {exc}") from exc
    return [table for table in required_tables() if table not in found]


def _missing_sqlite_tables(settings: Settings) -> list[str]:
    missing = []
    for file, tables in sqlite_tables().items():
        path = settings.data_dir / file
        found: set[str] = set()
        if path.exists():
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:  # never creates the file
                found = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing += [f"{file}:{table}" for table in tables if table not in found]
    return missing


def require_tables(settings: Settings) -> None:
    """Raise StoreUnavailable naming the missing tables (for ``TILL_CREATE_TABLES=false``)."""
    missing = missing_tables(settings)
    if not missing:
        return
    where = (f"schema {settings.database_schema!r} of the PostgreSQL database" if settings.uses_postgres
             else f"the SQLite files in {settings.data_dir.resolve()}")
    raise StoreUnavailable(
        f"TILL_CREATE_TABLES=false, so this process does not create tables, and {len(missing)} are missing in "
        f"{where}: {', '.join(missing)}. Run `till db init` once as the database owner (see infra/README.md), "
        "or set TILL_CREATE_TABLES=true for a role that may create them.")


@dataclass
class InitReport:
    """What ``till db init`` did, to print."""

    tables: list[str]
    guarded: str | None = None
    grants: dict[str, list[str]] = field(default_factory=dict)

    def lines(self, settings: Settings, app_role: str | None) -> list[str]:
        where = f"PostgreSQL schema {settings.database_schema}" if settings.uses_postgres else \
            f"SQLite files in {settings.data_dir.resolve()}"
        out = [f"tables ready in {where}: {', '.join(self.tables)}"]
        if self.guarded:
            out.append(f"{self.guarded} refuses UPDATE, DELETE and TRUNCATE (trigger {GUARD_TRIGGER})")
        for table, privileges in self.grants.items():
            out.append(f"  {app_role} may {', '.join(privileges)} on {table}")
        if settings.uses_postgres and app_role is None:
            out.append("no --app-role given: no privileges granted (run again with --app-role till_app)")
        return out


def init_database(settings: Settings, app_role: str | None = None) -> InitReport:
    """Create every table (as the owner), guard the event table, and grant ``app_role`` what it uses."""
    from api.app import build_services  # the composition root builds the very tables a process uses

    if settings.uses_postgres and app_role is not None:
        _require_role(settings, app_role)
    build_services(settings.model_copy(update={"create_tables": True}), create_tables=True).close()
    if not settings.uses_postgres:
        return InitReport(tables=[f"{file}:{name}" for file, names in sqlite_tables().items() for name in names])
    with psycopg.connect(libpq_conninfo(settings)) as conn:  # one transaction: all or nothing
        schema = settings.database_schema
        _guard_events(conn, schema)
        tables = _tables(conn, schema)
        grants = _grant(conn, schema, tables, app_role) if app_role is not None else {}
    return InitReport(tables=tables, guarded=events_table(), grants=grants)


def _require_role(settings: Settings, role: str) -> None:
    with psycopg.connect(libpq_conninfo(settings), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", [role]).fetchone() is None:
            raise StoreUnavailable(f"the role {role!r} does not exist: create it first "
                                   "(infra/postgres/create-database.sql)")


def _tables(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    return sorted(row[0] for row in conn.execute(
        "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = %s", [schema]))


def _guard_events(conn: psycopg.Connection[Any], schema: str) -> None:
    """A statement trigger that refuses UPDATE, DELETE and TRUNCATE on the event table, for every role.

    Statement level so that even an UPDATE matching no row is refused (nobody probes the table), and
    TRUNCATE (statement-only) is covered by the same trigger. Only a superuser (or the owner, by
    dropping the trigger on purpose) can get past it.
    """
    function = sql.Identifier(schema, GUARD_FUNCTION)
    conn.execute(sql.SQL(
        "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'stored events are immutable: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME "
        "USING ERRCODE = 'insufficient_privilege', "
        "HINT = 'the ledger only appends; correct a mistake with a new event (void, refund, reversal)'; "
        "END $$").format(function))
    table = sql.Identifier(schema, events_table())
    # DROP + CREATE rather than CREATE OR REPLACE TRIGGER: the same SQL works on PostgreSQL 13.
    conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(GUARD_TRIGGER), table))
    conn.execute(sql.SQL("CREATE TRIGGER {} BEFORE UPDATE OR DELETE OR TRUNCATE ON {} "
                         "FOR EACH STATEMENT EXECUTE FUNCTION {}()").format(
        sql.Identifier(GUARD_TRIGGER), table, function))


def _privileges(table: str) -> tuple[str, ...]:
    if table == events_table():
        return ("SELECT", "INSERT", "UPDATE")  # UPDATE only for the table lock; the trigger refuses it
    if table == snapshots_table():
        return ("SELECT", "INSERT")  # a snapshot is written once, never changed
    return READ_WRITE


def _grant(conn: psycopg.Connection[Any], schema: str, tables: list[str], role: str) -> dict[str, list[str]]:
    """Exactly these privileges, whatever was granted before (REVOKE ALL first)."""
    who, where = sql.Identifier(role), sql.Identifier(schema)
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(where, who))
    conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(where, who))
    conn.execute(sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(where, who))
    granted = {}
    for table in tables:
        privileges = _privileges(table)
        conn.execute(sql.SQL("GRANT {} ON {} TO {}").format(
            sql.SQL(", ").join(sql.SQL(p) for p in privileges), sql.Identifier(schema, table), who))
        granted[table] = list(privileges)
    # nextval() for the events' notification_id; USAGE alone (no setval).
    conn.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA {} TO {}").format(where, who))
    return granted
