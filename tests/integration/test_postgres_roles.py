"""PostgreSQL with least privilege, for real: infra/postgres/create-database.sql makes a fresh database
and two roles, `till db init` runs as the owner, and the service runs as the app role.

Every test gets its own database and its own roles (roles are cluster-wide, so their names carry a
random suffix), all dropped afterwards. Needs a superuser (or CREATEROLE + CREATEDB) connection and
the psql client; like every PostgreSQL test, a missing server fails in CI and skips locally.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from uuid import uuid4

import psycopg
import pytest
from psycopg import errors, sql

from adapters.settings import Settings
from adapters.store import libpq_conninfo
from api.app import build_services
from api.cli import main
from api.routers.reports import build_day_report
from domain.errors import StoreUnavailable
from tests.conftest import IN_CI, TEST_DATABASE_URL, SteppingClock, _postgres_or_fail, fast_hasher
from tests.integration.counter_commands import CounterCommands

pytestmark = pytest.mark.postgres
SETUP_SQL = Path(__file__).parents[2] / "infra" / "postgres" / "create-database.sql"
SCHEMA = "till"


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(message + " — CI requires it", pytrace=False)
    pytest.skip(message)


@dataclass
class Cluster:
    """One fresh database with its owner and app roles, on the test server."""

    dbname: str
    owner: str
    app: str
    owner_password_file: Path
    app_password_file: Path

    def url(self, role: str) -> str:
        server = urlsplit(TEST_DATABASE_URL)
        return f"postgresql://{role}@{server.hostname or '127.0.0.1'}:{server.port or 5432}/{self.dbname}"

    def settings(self, role: str, data_dir: Path, **overrides: object) -> Settings:
        password_file = self.owner_password_file if role == self.owner else self.app_password_file
        return Settings(data_dir=data_dir, database_url=self.url(role), database_password_file=password_file,
                        database_schema=SCHEMA, **overrides)

    def connect(self, role: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(libpq_conninfo(self.settings(role, Path("unused"))), autocommit=True)

    def run_setup_sql(self) -> None:
        """The script as an operator runs it: psql as the superuser, passwords from files."""
        done = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", TEST_DATABASE_URL,
             "-v", f"dbname={self.dbname}", "-v", f"schema={SCHEMA}",
             "-v", f"owner_role={self.owner}", "-v", f"app_role={self.app}",
             "-v", f"owner_password_file={self.owner_password_file}",
             "-v", f"app_password_file={self.app_password_file}", "-f", str(SETUP_SQL)],
            capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr


def _superuser() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(libpq_conninfo(Settings(database_url=TEST_DATABASE_URL)), autocommit=True)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    _postgres_or_fail()
    if shutil.which("psql") is None:
        _unavailable("the psql client is not installed (Debian: postgresql-client)")
    with _superuser() as conn:
        row = conn.execute("SELECT rolsuper OR (rolcreaterole AND rolcreatedb) FROM pg_roles "
                           "WHERE rolname = current_user").fetchone()
    if not (row and row[0]):
        _unavailable(f"{TEST_DATABASE_URL} may not create roles and databases")
    suffix = uuid.uuid4().hex[:12]
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    passwords = []
    for name in ("owner", "app"):
        path = secrets_dir / f"{name}_password"
        path.write_text(secrets.token_urlsafe(18) + "\n")
        path.chmod(0o600)
        passwords.append(path)
    made = Cluster(f"till_roles_{suffix}", f"till_owner_{suffix}", f"till_app_{suffix}", *passwords)
    try:
        made.run_setup_sql()
        yield made
    finally:
        with _superuser() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(made.dbname)))
            for role in (made.app, made.owner):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def initialised(cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> Cluster:
    """`till db init --app-role APP` run as the owner, as the compose file's migration step runs it."""
    owner = cluster.settings(cluster.owner, tmp_path / "owner")
    monkeypatch.setenv("TILL_DATA_DIR", str(owner.data_dir))
    monkeypatch.setenv("TILL_DATABASE_URL", str(owner.database_url))
    monkeypatch.setenv("TILL_DATABASE_PASSWORD_FILE", str(owner.database_password_file))
    monkeypatch.setenv("TILL_DATABASE_SCHEMA", SCHEMA)
    monkeypatch.delenv("TILL_CREATE_TABLES", raising=False)

    assert main(["db", "init", "--app-role", cluster.app]) == 0

    out = capsys.readouterr().out
    assert "ledger_events refuses UPDATE, DELETE and TRUNCATE" in out
    assert f"{cluster.app} may SELECT, INSERT, UPDATE on ledger_events" in out
    return cluster


def _event_digest(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[object, ...]:
    row = conn.execute("SELECT count(*), md5(string_agg(originator_id::text || originator_version || "
                       "encode(state, 'hex'), ',' ORDER BY notification_id)) FROM till.ledger_events").fetchone()
    assert row is not None
    return tuple(row)


# ---- the tests --------------------------------------------------------------------------------------
def test_the_service_started_as_the_app_role_before_till_db_init_names_the_missing_tables_and_the_fix(
        cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    app = cluster.settings(cluster.app, tmp_path / "app")
    monkeypatch.setenv("TILL_DATA_DIR", str(app.data_dir))
    monkeypatch.setenv("TILL_DATABASE_URL", str(app.database_url))
    monkeypatch.setenv("TILL_DATABASE_PASSWORD_FILE", str(app.database_password_file))
    monkeypatch.setenv("TILL_DATABASE_SCHEMA", SCHEMA)
    monkeypatch.setenv("TILL_CREATE_TABLES", "false")
    cluster.run_setup_sql()  # a second run of the script changes nothing and fails on nothing

    assert main(["serve", "--port", "1"]) == 2  # stops before it would listen

    err = capsys.readouterr().err
    assert "ledger_events" in err and "ledger_view_tracking" in err and "till db init" in err
    with pytest.raises(StoreUnavailable, match="refused to create schema"):  # nor may it make them itself
        build_services(app.model_copy(update={"create_tables": True}), hasher=fast_hasher()).close()


def test_as_the_app_role_the_service_appends_runs_the_projection_and_reads_the_day_report(
        initialised: Cluster, tmp_path: Path) -> None:
    settings = initialised.settings(initialised.app, tmp_path / "app", create_tables=False,
                                    embedded_projections=False)
    clock = SteppingClock()
    counter = CounterCommands(clock)
    services = build_services(settings, clock=clock, hasher=fast_hasher())
    try:
        for command in [*counter.setup(), *counter.card_sale(uuid4(), 2_500),
                        *counter.card_sale(uuid4(), 800, brand="visa", last4="0004")]:
            services.executor.run(command)
        views = services.views()
        applied = views.runner.catch_up()
        report = build_day_report(views, "2026-11-24", None, clock.now())
        rebuilt = views.runner.rebuild()  # empties the view (DELETE) and applies the log again
        again = build_day_report(views, "2026-11-24", None, clock.now())
    finally:
        services.close()

    lines = sorted((r["kind"], r["brand"], r["gross_minor"], r["terminal_no"]) for r in report["lines"])
    assert lines == [("sale", "unionpay", 2_500, "30000001"), ("sale", "visa", 800, "30000001")]
    assert applied == rebuilt > 0
    assert again["lines"] == report["lines"]


def test_the_app_role_cannot_update_delete_or_truncate_stored_events_nor_create_or_drop_tables(
        initialised: Cluster, tmp_path: Path) -> None:
    settings = initialised.settings(initialised.app, tmp_path / "app", create_tables=False)
    counter = CounterCommands(SteppingClock())
    services = build_services(settings, clock=counter.clock, hasher=fast_hasher(), read_models=False)
    try:
        for command in counter.setup():
            services.executor.run(command)
    finally:
        services.close()

    with initialised.connect(initialised.app) as app:
        before = _event_digest(app)
        refused = {}
        for what, statement in {"update": "UPDATE till.ledger_events SET topic = 'forged'",
                                "delete": "DELETE FROM till.ledger_events",
                                "truncate": "TRUNCATE till.ledger_events",
                                "delete snapshots": "DELETE FROM till.ledger_snapshots",
                                "create table": "CREATE TABLE till.smuggled (i int)",
                                "create in public": "CREATE TABLE public.smuggled (i int)",
                                "create schema": "CREATE SCHEMA smuggled",
                                "drop": "DROP TABLE till.ledger_events",
                                "disable trigger": "ALTER TABLE till.ledger_events DISABLE TRIGGER ALL"}.items():
            with pytest.raises(errors.InsufficientPrivilege) as caught:
                app.execute(statement)
            refused[what] = str(caught.value).splitlines()[0]
        after = _event_digest(app)

    assert before == after and before[0] == 5  # the setup's events, each still there and unchanged
    assert refused["update"].startswith("stored events are immutable")  # the trigger: UPDATE is held for LOCK
    assert refused["delete"] == refused["truncate"] == "permission denied for table ledger_events"
    assert refused["create table"] == "permission denied for schema till"
    assert refused["create in public"] == "permission denied for schema public"
    assert refused["drop"] == refused["disable trigger"] == "must be owner of table ledger_events"
    with initialised.connect(initialised.owner) as owner:  # the trigger holds for the owner too
        for statement in ["UPDATE till.ledger_events SET topic = 'forged'", "DELETE FROM till.ledger_events",
                          "TRUNCATE till.ledger_events"]:
            with pytest.raises(errors.InsufficientPrivilege, match="stored events are immutable"):
                owner.execute(statement)
        assert _event_digest(owner) == before
        held = owner.execute(
            "SELECT p, has_table_privilege(%s, 'till.ledger_events', p) FROM unnest(ARRAY['SELECT', 'INSERT', "
            "'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p", [initialised.app]).fetchall()
    assert dict(held) == {"SELECT": True, "INSERT": True, "UPDATE": True, "DELETE": False, "TRUNCATE": False,
                          "REFERENCES": False, "TRIGGER": False}
