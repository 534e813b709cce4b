"""`till doctor` against real deployments: a SQLite data dir and a PostgreSQL schema set up as `till serve`
sets them up, then broken one setting at a time. TILL_* variables are the only input, as in production."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from adapters.settings import Settings
from adapters.store import libpq_conninfo
from api.web.session import load_or_create_key
from api.app import ensure_first_admin_token
from api.database_setup import init_database
from api.cli import main
from api.store_diagnosis import LAG_WARNING, projection_finding
from projections.runner import poll_until
from tests.conftest import SteppingClock, TEST_DATABASE_URL, make_services, point_env_at
from tests.e2e.live_service import free_port


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TILL_* variable from the outside, and a free service port (8000 may be taken on this machine)."""
    for name in list(os.environ):
        if name.startswith("TILL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TILL_PORT", str(free_port()))


@pytest.fixture
def deployment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """What `till serve` leaves behind: tables, signing key, first admin token, the view at the head."""
    services = make_services(settings, SteppingClock())
    try:
        ensure_first_admin_token(services)
        load_or_create_key(settings.session_key_path)
        assert services.views().runner.refresh(timeout=10)
    finally:
        services.close()
    point_env_at(settings, monkeypatch)
    return settings


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = main(["doctor", *args])
    return status, capsys.readouterr().out


def findings(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, object]]]:
    status, out = doctor(capsys, "--json")
    return status, {c["check"]: c for c in json.loads(out)["checks"]}


def line(out: str, check: str) -> str:
    """The finding of ``check``, with the column padding squeezed to one space."""
    return next(" ".join(row.split()) for row in out.splitlines() if f" {check}  " in row)


def test_a_healthy_deployment_passes_every_check_and_exits_0(
        deployment: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = doctor(capsys)

    assert status == 0, out
    assert "PROBLEM" not in out and "WARNING" not in out
    assert out.rstrip().endswith("checks passed.")
    assert "ledger_view is up to date" in line(out, "projection ledger_view")
    assert "only its owner can read it" in line(out, "signing key")


def test_a_database_url_pointing_at_a_closed_port_is_one_plain_sentence_and_exit_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    monkeypatch.setenv("TILL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TILL_DATABASE_URL", f"postgresql://till:s3cret-pw@127.0.0.1:{port}/till")

    status, out = doctor(capsys)

    assert status == 1
    assert line(out, "database") == (f"PROBLEM database cannot reach PostgreSQL at 127.0.0.1:{port} (connection "
                                     "refused) — is the server running? check TILL_DATABASE_URL")
    assert line(out, "ledger tables").startswith("skipped")  # not a second error about the same cause
    assert "s3cret-pw" not in out and "till:***@127.0.0.1" in out


def test_a_port_that_is_not_a_number_names_the_variable_instead_of_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TILL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TILL_PORT", "not-a-number")

    status, out = doctor(capsys)

    assert status == 1
    assert line(out, "settings").startswith("PROBLEM")
    assert "TILL_PORT='not-a-number' is not valid (input should be a valid integer" in out
    assert "Traceback" not in out and "validation error" not in out


def test_a_signing_key_and_an_admin_token_readable_by_others_are_problems_saying_chmod_600(
        deployment: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    key = deployment.signing_key_path.resolve()
    key.chmod(0o644)
    (deployment.data_dir / "admin.token").chmod(0o640)
    token = (deployment.data_dir / "admin.token").read_text().strip()

    status, out = doctor(capsys)

    assert status == 1
    assert line(out, "signing key") == (f"PROBLEM signing key the signing key {key} is not private: other users can "
                                        f"read it (mode 644) — run chmod 600 {key}")
    assert "holds an admin token and is not private: other users can read it (mode 640)" in line(out, "admin token")
    assert token not in out


def test_a_web_session_key_readable_by_others_or_not_a_key_is_a_problem(
        deployment: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    key = deployment.session_key_path.resolve()
    assert line(doctor(capsys)[1], "session key").startswith("ok")
    key.chmod(0o644)
    status, out = doctor(capsys)
    assert status == 1 and "is not private: other users can read it (mode 644)" in line(out, "session key")
    key.write_text("abcd\n")
    key.chmod(0o600)
    assert "is not 64 hex digits" in line(doctor(capsys)[1], "session key")
    assert key.read_text() == "abcd\n"  # the doctor changes nothing


def test_a_signing_key_that_is_not_a_key_is_a_problem(deployment: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    deployment.signing_key_path.write_text("not a key\n")

    status, findings_by_check = findings(capsys)

    assert status == 1
    assert findings_by_check["signing key"]["status"] == "problem"
    assert "cannot be loaded" in str(findings_by_check["signing key"]["message"])


def test_an_empty_data_dir_is_a_problem_that_hints_at_db_init(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TILL_DATA_DIR", str(tmp_path))

    status, out = doctor(capsys)

    assert status == 1
    assert "there is no ledger database at" in line(out, "database")
    assert "run `till db init` (or start `till serve` once)" in line(out, "database")
    assert line(out, "signing key").startswith("WARNING")  # `till serve` makes it: not yet a problem
    assert not list(tmp_path.iterdir())  # the doctor created nothing


@pytest.mark.postgres
def test_a_fresh_postgres_schema_is_a_problem_that_hints_at_db_init(
        pg_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    point_env_at(pg_settings, monkeypatch)

    status, out = doctor(capsys)

    assert status == 1
    assert line(out, "database").startswith("ok")
    assert (f"the schema {pg_settings.database_schema} does not exist in this database — run `till db init` "
            "(or start `till serve` once)") in line(out, "ledger tables")


@pytest.mark.postgres
def test_the_role_till_db_init_grants_passes_and_one_privilege_less_is_named_with_the_command_to_run(
        pg_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    role, schema = f"doctor_app_{uuid.uuid4().hex[:8]}", pg_settings.database_schema
    with psycopg.connect(libpq_conninfo(pg_settings), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        init_database(pg_settings, role)  # `till db init --app-role ROLE`, as the owner
        point_env_at(pg_settings, monkeypatch)
        monkeypatch.setenv("TILL_DATABASE_URL", TEST_DATABASE_URL.replace("postgres@", f"{role}@", 1))
        granted_status, granted = doctor(capsys)
        with psycopg.connect(libpq_conninfo(pg_settings), autocommit=True) as conn:
            conn.execute(sql.SQL("REVOKE UPDATE ON {} FROM {}").format(sql.Identifier(schema, "ledger_events"),
                                                                      sql.Identifier(role)))
        status, out = doctor(capsys)
    finally:
        with psycopg.connect(libpq_conninfo(pg_settings), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

    assert granted_status == 0, granted
    assert line(granted, "ledger tables").startswith(f"ok ledger tables the ledger tables exist in schema {schema} "
                                                     f"and the role {role} may use them")
    assert status == 1
    assert line(out, "ledger tables") == (
        f"PROBLEM ledger tables the role {role} may not UPDATE on {schema}.ledger_events — as the database owner "
        f"run `till db init --app-role {role}` (it grants exactly what the service uses)")


def test_a_projection_behind_the_log_with_no_runner_is_a_warning_and_a_running_one_is_ok(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    services = make_services(settings, SteppingClock())
    try:
        ensure_first_admin_token(services)  # one event in the log; nothing has applied it
        point_env_at(settings, monkeypatch)

        status, behind = findings(capsys)
        services.views().runner.start()  # as `till serve` does: holds the runner lock and follows the log
        assert poll_until(lambda: services.views().projection.position() == 1, timeout=10)
        _, following = findings(capsys)
    finally:
        services.close()

    assert status == 0  # behind is worth a warning, not a failed deployment
    assert behind["projection ledger_view"]["status"] == "warning"
    assert "1 events behind the log (position 0 of 1) and no runner follows it" in str(
        behind["projection ledger_view"]["message"])
    assert "`till project run ledger_view`" in str(behind["projection ledger_view"]["fix"])
    assert following["projection ledger_view"]["status"] == "ok"
    assert following["projection ledger_view"]["facts"] == {"position": 1, "head": 1, "lag": 0, "runner": True}


def test_a_lag_of_more_than_a_thousand_events_is_a_warning_even_with_a_runner() -> None:
    far_behind = projection_finding("ledger_view", 10, 11 + LAG_WARNING, runner=True)
    unknown = projection_finding("ledger_view", 10, 11 + LAG_WARNING, runner=None)
    close = projection_finding("ledger_view", 10, 10 + LAG_WARNING, runner=True)

    assert far_behind.status == "warning" and "1,001 events behind" in far_behind.message
    assert unknown.status == "warning" and "no runner" not in unknown.message
    assert close.status == "ok" and close.facts["lag"] == LAG_WARNING


def test_an_acquirer_host_that_refuses_connections_is_a_problem(
        deployment: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    monkeypatch.setenv("TILL_ACQUIRER_URL", f"127.0.0.1:{port}")

    status, out = doctor(capsys)

    assert status == 1
    assert (f"cannot reach the acquirer host at 127.0.0.1:{port} (connection refused: nothing listens there)"
            in line(out, "acquirer host"))


class _NotTill(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def another_program() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _NotTill)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_another_program_on_the_service_port_is_a_warning(
        deployment: Settings, another_program: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TILL_PORT", str(another_program))

    status, out = doctor(capsys)

    assert status == 0
    assert line(out, "service port").startswith(
        f"WARNING service port something other than Till Ledger listens on 127.0.0.1:{another_program}")


def test_the_console_script_prints_json_for_scripts_and_exits_1_on_a_problem(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILL_")}
    env.update(TILL_DATA_DIR=str(tmp_path), TILL_DATABASE_URL=f"postgresql://till:s3cret-pw@127.0.0.1:{free_port()}/t",
               TILL_PORT=str(free_port()))
    till = Path(sys.executable).parent / "till"

    done = subprocess.run([str(till), "doctor", "--json"], env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False and report["problems"] == 1
    assert {c["check"]: c["status"] for c in report["checks"]}["database"] == "problem"
    assert "s3cret-pw" not in done.stdout + done.stderr


def test_doctor_help_tells_a_newcomer_what_it_checks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])

    text = capsys.readouterr().out
    assert "PostgreSQL within 3 s" in text and "mode 600" in text and "--json" in text
