"""infra/compose.yaml, read as data: there is no Docker engine where these tests run, so they check
what can be checked without one — every `till` command against the real argument parser, every
TILL_* variable against the real settings, health checks, start order, and where secrets come from.
That the stack starts is NOT shown here (infra/README.md says so too).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from adapters.settings import Settings
from api.cli import parser
from api.routers import health
from projections.read_models import PROJECTIONS

INFRA = Path(__file__).parents[2] / "infra"
COMPOSE = yaml.safe_load((INFRA / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
SETUP_SQL = (INFRA / "postgres" / "create-database.sql").read_text()
# The one literal secret allowed: the local-development superuser password, and only as a default
# the POSTGRES_PASSWORD variable overrides.
LOCAL_DEV_DEFAULT = re.compile(r"^\$\{POSTGRES_PASSWORD:-[^}]+\}$")


def one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def till_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every `till …` in the file: service commands and health checks."""
    found = []
    for name, service in SERVICES.items():
        command = service.get("command")
        if isinstance(command, list) and command[:1] == ["till"]:
            found.append((f"{name} command", command))
        test = service.get("healthcheck", {}).get("test", [])
        if test[:2] == ["CMD", "till"]:
            found.append((f"{name} healthcheck", test[1:]))
    return found


def database_user(service: dict[str, Any]) -> str | None:
    url = service.get("environment", {}).get("TILL_DATABASE_URL")
    return urlsplit(url).username if url else None


def sql_default(variable: str) -> str:
    match = re.search(rf"\\set {variable} (\S+)", SETUP_SQL)
    assert match, f"create-database.sql has no default for {variable}"
    return match.group(1)


def test_every_long_running_service_has_a_health_check_and_the_migration_is_one_shot() -> None:
    assert [name for name, service in SERVICES.items() if one_shot(service)] == ["migrate"]
    for name, service in SERVICES.items():
        if one_shot(service):
            assert "healthcheck" not in service, name
            continue
        check = service.get("healthcheck")
        assert check and check["test"][0] == "CMD" and len(check["test"]) > 1, f"{name} has no health check"
        assert {"interval", "timeout", "retries"} <= set(check), name
        assert service.get("restart") == "unless-stopped", name
        if check["test"][1:3] == ["python", "-c"]:
            compile(check["test"][3], f"{name} healthcheck", "exec")  # a typo would make it fail forever


def test_every_till_command_in_the_file_is_one_the_till_command_line_accepts() -> None:
    commands = till_commands()
    assert len(commands) >= 5
    for where, argv in commands:
        try:
            parsed = parser().parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"{where}: `{' '.join(argv)}` is refused by api/cli.py's parser")
        assert isinstance(parsed, argparse.Namespace) and callable(parsed.run), where


def test_one_projection_worker_runs_each_projection_and_no_api_process_runs_them_embedded() -> None:
    workers = [service["command"][3] for service in SERVICES.values()
               if service.get("command", [])[:3] == ["till", "project", "run"]]
    assert sorted(workers) == sorted(PROJECTIONS)
    for name, service in SERVICES.items():
        if service.get("command", [])[:2] in (["till", "serve"], ["till", "project"]):
            assert service["environment"]["TILL_EMBEDDED_PROJECTIONS"] == "false", name
            assert "deploy" not in service or service["deploy"].get("replicas", 1) == 1, name


def test_the_api_serves_four_workers_as_the_app_role_and_its_health_check_asks_readyz() -> None:
    api = SERVICES["api"]
    args = parser().parse_args(api["command"][1:])
    assert (args.workers, args.host, args.port) == (4, "0.0.0.0", 8000)
    assert api["environment"]["TILL_CREATE_TABLES"] == "false"
    assert database_user(api) == sql_default("app_role")
    assert "http://127.0.0.1:8000/readyz" in " ".join(api["healthcheck"]["test"])
    assert "/readyz" in {getattr(route, "path", None) for route in health.router.routes}
    assert all(port.startswith("127.0.0.1:") for port in api["ports"])  # a TLS proxy goes in front


def test_the_migration_runs_as_the_owner_and_grants_the_role_the_other_services_connect_as() -> None:
    migrate = SERVICES["migrate"]
    args = parser().parse_args(migrate["command"][1:])
    assert database_user(migrate) == sql_default("owner_role")
    app_users = {database_user(service) for name, service in SERVICES.items()
                 if name != "migrate" and database_user(service)}
    assert app_users == {args.app_role} == {sql_default("app_role")}
    for service in SERVICES.values():
        url = service.get("environment", {}).get("TILL_DATABASE_URL")
        if url:
            assert urlsplit(url).path == f"/{sql_default('dbname')}"
            assert service["environment"]["TILL_DATABASE_SCHEMA"] == sql_default("schema")


def test_services_start_in_order_and_wait_for_health_or_for_the_migration_to_finish() -> None:
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name, service in SERVICES.items():
        for dependency, rule in service.get("depends_on", {}).items():
            expected = "service_completed_successfully" if one_shot(SERVICES[dependency]) else "service_healthy"
            assert rule == {"condition": expected}, f"{name} -> {dependency}"
        if database_user(service) == sql_default("app_role"):
            assert "migrate" in service["depends_on"], f"{name} would start before its tables exist"


def test_secrets_come_from_secret_files_and_no_password_is_written_in_the_file() -> None:
    declared = COMPOSE["secrets"]
    for secret in declared.values():
        assert set(secret) == {"file"} and secret["file"].startswith("./secrets/")
    assert (INFRA / "secrets" / ".gitignore").read_text().splitlines()[-2:] == ["*", "!.gitignore"]  # never committed
    for name, service in SERVICES.items():
        for key, value in service.get("environment", {}).items():
            value = str(value)
            if key.endswith("_FILE"):
                secret = value.removeprefix("/run/secrets/")
                assert value.startswith("/run/secrets/") and secret in service.get("secrets", []), (name, key)
                assert secret in declared
            elif re.search(r"PASSWORD|SECRET|TOKEN|KEY", key):
                assert (name, key) == ("postgres", "POSTGRES_PASSWORD") and LOCAL_DEV_DEFAULT.match(value), \
                    f"{name}: {key} is written in the file"
            if "://" in value:
                assert urlsplit(value).password is None, f"{name}: {key} carries a password"


def test_every_till_variable_the_file_sets_is_a_real_setting() -> None:
    known = {f"TILL_{field.upper()}" for field in Settings.model_fields}
    set_here = {key for service in SERVICES.values() for key in service.get("environment", {})
                if key.startswith("TILL_")}
    script_only = {"TILL_DB_NAME", "TILL_DB_SCHEMA", "TILL_OWNER_ROLE", "TILL_APP_ROLE"}  # create-database.sh's
    assert set_here - known - script_only == set()
    settings = Settings.model_validate({k.removeprefix("TILL_").lower(): v
                                        for k, v in SERVICES["api"]["environment"].items()})
    assert settings.uses_postgres and not settings.embedded_projections and not settings.create_tables


def test_postgres_is_15_and_runs_the_setup_script_once_with_the_role_passwords_as_secrets() -> None:
    postgres = SERVICES["postgres"]
    assert postgres["image"].startswith("postgres:15")
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in postgres["volumes"]}
    assert mounts["/till/create-database.sql"] == "./postgres/create-database.sql"
    assert mounts["/docker-entrypoint-initdb.d/10-till.sh"] == "./postgres/create-database.sh"
    script = (INFRA / "postgres" / "create-database.sh").read_text()
    assert "-f /till/create-database.sql" in script
    for secret in postgres["secrets"]:
        assert f"/run/secrets/{secret}" in script
    for name in ("create-database.sql", "create-database.sh"):
        assert (INFRA / "postgres" / name).is_file()
    assert all((INFRA / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
               for service in SERVICES.values() if "build" in service)
