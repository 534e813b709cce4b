"""The store's part of ``till doctor``: the database answers, its tables exist, the projections keep up.

``StoreDiagnosis(settings)`` holds three checks, each opening its own short connection (SQLite
read-only, PostgreSQL with a 3 s connect timeout): nothing is created or changed. Which tables must
exist, and what the service's role needs on them, is what ``till db init`` makes and grants
(``api.database_setup``). Whether a projection runner is active is read from the lock it holds
(``projections.runner``), never by taking that lock.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import sql

from adapters.diagnosis import Finding, ok, problem, warning
from adapters.settings import Settings
from api.database_setup import READ_WRITE, events_table, required_tables, snapshots_table, sqlite_tables
from domain.ledger import Ledger  # its name is in every tracking row of its projections

CONNECT_TIMEOUT_S = 3
LAG_WARNING = 1_000  # events a projection may trail the log before the doctor calls it behind
INIT_HINT = "run `till db init` (or start `till serve` once)"
_RUN_HINT = ("start `till serve` (it runs the projections unless TILL_EMBEDDED_PROJECTIONS=false) "
             "or `till project run {name}`")


class StoreDiagnosis:
    """The database, ledger tables and projection checks of one deployment's settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def database(self) -> Finding:
        s = self.settings
        if not s.uses_postgres:
            path = self._sqlite_path("ledger.sqlite")
            if not path.exists():
                return problem(f"there is no ledger database at {path} yet", self._init_hint())
            with self._sqlite("ledger.sqlite") as db:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return ok(f"the SQLite ledger {path} opens")
        scheme = urlsplit(s.database_url or "").scheme
        if scheme not in ("postgresql", "postgres"):
            return problem(f"TILL_DATABASE_URL starts with {scheme + '://' if scheme else 'no scheme'}",
                           "use postgresql://user:password@host:5432/dbname, or unset it for SQLite")
        with self._postgres() as conn:
            user, database, version = conn.execute(
                "SELECT current_user, current_database(), current_setting('server_version')").fetchone() or ("?",) * 3
        return ok(f"PostgreSQL {version} at {self._where()} answers (database {database}, user {user})")

    def tables(self) -> Finding:
        if self.settings.uses_postgres:
            return self._postgres_tables()
        missing = [f"{file}:{table}" for file, tables in sqlite_tables().items()
                   for table in tables if not self._sqlite_has(file, table)]
        if missing:
            return problem(f"{_count(missing, 'ledger table')} missing ({_some(missing)})", self._init_hint())
        return ok("the event log's and the views' tables exist")

    def _postgres_tables(self) -> Finding:
        schema = self.settings.database_schema
        with self._postgres() as conn:
            if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone() is None:
                return problem(f"the schema {schema} does not exist in this database",
                               f"{self._init_hint()}, or check TILL_DATABASE_SCHEMA")
            found = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])}
            missing = [f"{schema}.{table}" for table in required_tables() if table not in found]
            if missing:
                return problem(f"{_count(missing, 'ledger table')} missing ({_some(missing)})", self._init_hint())
            wanted = [(table, privilege) for table in required_tables() for privilege in app_privileges(table)]
            # One round trip for every (table, privilege) pair, whatever the number of tables.
            refused = conn.execute(
                "SELECT t, p FROM unnest(%s::text[], %s::text[]) AS wanted(t, p) "
                "WHERE NOT has_table_privilege(format('%%I.%%I', %s::text, t), p)",
                [[t for t, _ in wanted], [p for _, p in wanted], schema]).fetchall()
            who = _scalar_text(conn.execute("SELECT current_user"))
        if refused:
            by_table: dict[str, list[str]] = {}
            for table, privilege in refused:
                by_table.setdefault(f"{schema}.{table}", []).append(privilege)
            lacks = [f"{', '.join(privileges)} on {table}" for table, privileges in by_table.items()]
            return problem(f"the role {who} may not {_some(lacks, 'table')}",
                           f"as the database owner run `till db init --app-role {who}` (it grants exactly what "
                           "the service uses)", refused=[f"{p} on {schema}.{t}" for t, p in refused])
        return ok(f"the ledger tables exist in schema {schema} and the role {who} may use them")

    def _init_hint(self) -> str:
        # With TILL_CREATE_TABLES=false no process creates tables: only the owner's `till db init` does.
        return INIT_HINT if self.settings.create_tables else "run `till db init` as the database owner"

    def projection(self, name: str) -> Finding:
        if self.settings.uses_postgres:
            schema = self.settings.database_schema
            with self._postgres() as conn:
                head = _scalar(conn.execute(sql.SQL("SELECT max(notification_id) FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(events_table()))))
                position = _scalar(conn.execute(sql.SQL(
                    "SELECT max(notification_id) FROM {}.{} WHERE application_name = %s").format(
                    sql.Identifier(schema), sql.Identifier(f"{name}_tracking")), [Ledger.name]))
                runner: bool | None = self._postgres_runner(conn, name)
        else:
            with self._sqlite("ledger.sqlite") as db:
                head = _scalar(db.execute("SELECT max(rowid) FROM stored_events"))
            with self._sqlite(f"{name}.sqlite") as db:
                position = _scalar(db.execute("SELECT max(notification_id) FROM tracking WHERE application_name = ?",
                                              [Ledger.name]))
            runner = self._file_runner(name)
        return projection_finding(name, position, head, runner)

    def _postgres_runner(self, conn: psycopg.Connection[Any], name: str) -> bool:
        from projections.runner import PostgresRunnerLock

        # The runner holds a session advisory lock on hashtext(key). Look at pg_locks instead of trying
        # the lock: taking it, even briefly, could delay a runner. (Building the lock does not connect.)
        key = PostgresRunnerLock(self.settings, name).key
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid::bigint = ((hashtext(%(key)s)::bigint >> 32) & 4294967295)"
            " AND objid::bigint = (hashtext(%(key)s)::bigint & 4294967295))", {"key": key}).fetchone()
        return bool(row and row[0])

    def _file_runner(self, name: str) -> bool:
        # The runner holds an exclusive flock on this file (projections.runner.PageRunner names it). A
        # shared try-lock, released at once, tells whether it is held; a runner starting then retries.
        path = self.settings.data_dir / f"{name}.runner.lock"
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below; never created here
        except FileNotFoundError:
            return False
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False

    def _sqlite_path(self, file: str) -> Path:
        return (self.settings.data_dir / file).resolve()

    @contextmanager
    def _sqlite(self, file: str) -> Iterator[sqlite3.Connection]:
        # mode=ro: never creates the file; timeout bounds a wait for a writer's lock.
        uri = f"file:{quote(str(self._sqlite_path(file)))}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=CONNECT_TIMEOUT_S)) as db:
            yield db

    def _sqlite_has(self, file: str, table: str) -> bool:
        if not self._sqlite_path(file).exists():
            return False
        with self._sqlite(file) as db:
            return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                              [table]).fetchone() is not None

    def _where(self) -> str:
        url = urlsplit(self.settings.database_url or "")
        return f"{url.hostname or '127.0.0.1'}:{url.port or 5432}"

    @contextmanager
    def _postgres(self) -> Iterator[psycopg.Connection[Any]]:
        from adapters.store import ledger_environment

        env = ledger_environment(self.settings, create_tables=False)
        try:
            conn = psycopg.connect(dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"],
                                   port=env["POSTGRES_PORT"], user=env["POSTGRES_USER"],
                                   password=env["POSTGRES_PASSWORD"] or None, connect_timeout=CONNECT_TIMEOUT_S,
                                   autocommit=True, application_name="till doctor")
        except psycopg.OperationalError as exc:
            raise _Unreachable(postgres_problem(str(exc), self._where(), env["POSTGRES_DBNAME"],
                                                env["POSTGRES_USER"])) from exc
        with conn:
            yield conn


class _Unreachable(Exception):
    """PostgreSQL did not let us in; carries the finding that says why."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def projection_finding(name: str, position: int, head: int, runner: bool | None) -> Finding:
    """A projection's lag in plain words. ``runner``: whether a runner holds it (None: cannot tell)."""
    lag = max(0, head - position)
    facts = {"position": position, "head": head, "lag": lag, "runner": runner}
    where = f"position {position:,} of {head:,}"
    hint = _RUN_HINT.format(name=name)
    if lag > LAG_WARNING:
        if runner:
            return warning(f"{name} is {lag:,} events behind the log ({where}) although a runner follows it",
                           "check again in a minute; if the lag does not shrink, read that process's log", **facts)
        return warning(f"{name} is {lag:,} events behind the log ({where})"
                       + ("" if runner is None else " and no runner follows it"), hint, **facts)
    if lag and runner is False:
        return warning(f"{name} is {lag:,} events behind the log ({where}) and no runner follows it", hint, **facts)
    state = "up to date" if not lag else f"{lag:,} events behind"
    who = {True: "; a runner follows the log", False: "; no runner is active now", None: ""}[runner]
    return ok(f"{name} is {state} ({where}){who}", **facts)


def postgres_problem(error: str, where: str, dbname: str, user: str) -> Finding:
    """A libpq connection error as one sentence and what to do."""
    text = error.lower()
    check = "check TILL_DATABASE_URL"
    if "connection refused" in text:
        return problem(f"cannot reach PostgreSQL at {where} (connection refused)",
                       f"is the server running? {check}")
    if "timeout expired" in text or "timed out" in text:
        return problem(f"cannot reach PostgreSQL at {where} (no answer within {CONNECT_TIMEOUT_S} s)",
                       f"is the host up and the port open in the firewall? {check}")
    if "resolve host" in text or "translate host name" in text:
        return problem(f"cannot reach PostgreSQL at {where} (the host name is unknown)", check)
    if "password authentication failed" in text or "no password supplied" in text:
        return problem(f"PostgreSQL at {where} refused the password of user {user}", f"{check} (its password)")
    if "role" in text and "does not exist" in text:
        return problem(f"PostgreSQL at {where} has no user {user}", f"create the role, or {check}")
    if "database" in text and "does not exist" in text:
        return problem(f"PostgreSQL at {where} has no database {dbname}",
                       f"create it (createdb {dbname}), or {check}")
    reason = error.strip().splitlines()[0].split(" failed: ")[-1].removeprefix("FATAL:").strip()
    return problem(f"cannot connect to PostgreSQL at {where} ({reason})", check)


def app_privileges(table: str) -> tuple[str, ...]:
    """What the service's role needs on ``table``: what ``till db init --app-role`` grants.

    The event table's UPDATE is for the store's ``LOCK TABLE … IN EXCLUSIVE MODE`` (PostgreSQL
    requires it); a trigger refuses an actual update. See ``api.database_setup``.
    """
    if table == events_table():
        return ("SELECT", "INSERT", "UPDATE")
    if table == snapshots_table():
        return ("SELECT", "INSERT")
    return READ_WRITE


def _scalar(cursor: Any) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _scalar_text(cursor: Any) -> str:
    row = cursor.fetchone()
    return str(row[0]) if row else "?"


def _count(items: list[str], noun: str) -> str:
    return f"1 {noun} is" if len(items) == 1 else f"{len(items)} {noun}s are"


def _some(items: list[str], noun: str = "") -> str:
    """The first three of ``items``, then how many more: a line stays readable with ten missing tables."""
    shown = ", ".join(items[:3])
    more = len(items) - 3
    return shown if more <= 0 else f"{shown} and {more} more{' ' + noun + 's' if noun else ''}"


def store_errors(run: Callable[[], Finding]) -> Callable[[], Finding]:
    """``run``, with a store that cannot be reached or read turned into the finding that says so."""

    def call() -> Finding:
        try:
            return run()
        except _Unreachable as exc:
            return exc.finding
        except sqlite3.Error as exc:
            return problem(f"the SQLite database cannot be read ({exc})",
                           "is it a Till Ledger database, readable by this user? check TILL_DATA_DIR")

    return call
