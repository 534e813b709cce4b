"""infra/systemd: the units systemd itself checks (`systemd-analyze verify`, when this machine has it),
and what only we know: each ExecStart is a console script of this project with arguments its own
parser accepts, and every variable the units and example files set is a real setting."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from adapters.settings import Settings
from api.cli import parser as till_parser
from projections.read_models import PROJECTIONS
from terminal_agent.cli import main as till_agent
from terminal_agent.settings import AgentSettings

ROOT = Path(__file__).parents[2]
UNITS = ROOT / "infra" / "systemd"
INSTALLED_BIN = "/opt/till-ledger/.venv/bin/"  # where infra/README.md installs the project
SCRIPTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
SETTINGS = {"till": ("TILL_", Settings), "till-agent": ("TILL_AGENT_", AgentSettings)}
EXAMPLES = {"till.service": "till.env.example", "till-project@.service": "till.env.example",
            "till-agent.service": "agent.env.example"}
# Set by the units for libraries, not for our settings.
OTHER_VARIABLES = {"XDG_CACHE_HOME"}


class _Repeated(dict[str, Any]):
    """configparser storage that keeps every value of a repeated key (Environment=, DeviceAllow=, After=)."""

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self and isinstance(value, list) and isinstance(self[key], list):
            self[key].extend(value)
        else:
            super().__setitem__(key, value)


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    config = configparser.ConfigParser(strict=False, interpolation=None, dict_type=_Repeated,  # type: ignore[arg-type]
                                       empty_lines_in_values=False)
    config.optionxform = str  # type: ignore[assignment,method-assign]
    config.read_string((UNITS / name).read_text())
    return {section: {key: value.split("\n") for key, value in config[section].items()}
            for section in config.sections()}


def environment_file(name: str) -> dict[str, str]:
    """KEY=VALUE lines, also the commented-out ones (`#KEY=…`) an operator may switch on."""
    found = {}
    for line in (UNITS / name).read_text().splitlines():
        text = line.removeprefix("#").strip()
        key, sep, value = text.partition("=")
        if sep and key.isupper() and " " not in key:
            found[key] = value.strip('"')
    return found


def program(service: dict[str, list[str]]) -> tuple[str, list[str]]:
    [exec_start] = service["ExecStart"]
    path, *args = shlex.split(exec_start)
    assert path.startswith(INSTALLED_BIN), path
    return path.removeprefix(INSTALLED_BIN), args


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_systemd_analyze_verify_finds_nothing_to_say_about_the_unit(name: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; the configparser tests below still check the units")
    # verify checks that ExecStart is executable: point it at this checkout's console scripts.
    copy = tmp_path / name.replace("@.", "@ledger_view.")
    copy.write_text((UNITS / name).read_text().replace(INSTALLED_BIN, str(Path(sys.executable).parent) + "/"))

    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False)

    # Unknown keys and unparsable values are only warnings (exit 0): any output at all fails.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_exec_start_is_a_console_script_of_this_project_with_arguments_its_parser_accepts(
        name: str, capsys: pytest.CaptureFixture[str]) -> None:
    script, args = program(unit(name)["Service"])
    assert script in SCRIPTS
    for instance in (PROJECTIONS if "%i" in args else [""]):
        argv = [arg.replace("%i", instance) for arg in args]
        if script == "till":
            parsed = till_parser().parse_args(argv)
            assert callable(parsed.run)
        else:  # till-agent builds its parser inside main(): --help parses the rest, then exits 0
            with pytest.raises(SystemExit) as exited:
                till_agent([*argv, "--help"])
            assert exited.value.code == 0, capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_variable_the_unit_and_its_example_file_set_is_a_real_setting_and_no_secret_is_among_them(
        name: str) -> None:
    service = unit(name)["Service"]
    script, _ = program(service)
    prefix, settings_class = SETTINGS[script]
    known = {prefix + field.upper() for field in settings_class.model_fields}
    example = environment_file(EXAMPLES[name])
    in_unit = dict(value.split("=", 1) for value in service.get("Environment", []))

    assert service["EnvironmentFile"] == [f"/etc/{'till-agent' if script == 'till-agent' else 'till'}/"
                                          f"{EXAMPLES[name].removesuffix('.example')}"]
    assert set(example) - known == set()
    assert set(in_unit) - known - OTHER_VARIABLES == set()
    secrets = [key for key in example if any(word in key for word in ("TOKEN", "PASSWORD", "SECRET"))
               and not key.endswith("_FILE")]
    assert secrets == [] and urlsplit(example.get("TILL_DATABASE_URL", "")).password is None
    # Secrets arrive as credentials (%d: the service's own credentials directory).
    credentials = {value.split(":", 1)[0] for value in service.get("LoadCredential", [])}
    for key, value in in_unit.items():
        if key.endswith("_FILE") and value.startswith("%d/"):
            assert value.removeprefix("%d/") in credentials, key
    values = {**example, **in_unit}
    settings_class.model_validate({k.removeprefix(prefix).lower(): v for k, v in values.items()
                                   if k.startswith(prefix) and not k.endswith("_FILE")})


def test_the_agent_runs_on_the_console_unprivileged_hardened_and_restarts_only_on_failure() -> None:
    agent = unit("till-agent.service")
    service = agent["Service"]
    one = {key: values[-1] for key, values in service.items()}
    data_dir = dict(v.split("=", 1) for v in service["Environment"])["TILL_AGENT_DATA_DIR"]

    assert one["User"] not in ("root", "0") and set(one["SupplementaryGroups"].split()) == {"lp", "dialout"}
    assert (one["TTYPath"], one["StandardInput"], one["StandardOutput"]) == ("/dev/tty1", "tty-force", "tty")
    assert "getty@tty1.service" in agent["Unit"]["Conflicts"]
    assert (one["Restart"], one["RestartPreventExitStatus"]) == ("on-failure", "2")  # 2: a bad setting
    assert (one["NoNewPrivileges"], one["ProtectSystem"], one["PrivateTmp"]) == ("yes", "strict", "yes")
    assert one["ReadWritePaths"] == data_dir == f"/var/lib/{one['StateDirectory']}"
    assert "/dev/tty1 rw" in service["DeviceAllow"] and one["DevicePolicy"] == "closed"


def test_the_service_units_run_unprivileged_with_the_database_password_as_a_credential() -> None:
    for name in ("till.service", "till-project@.service"):
        service = {key: values[-1] for key, values in unit(name)["Service"].items()}
        assert service["User"] == "till" and service["NoNewPrivileges"] == "yes"
        assert service["ProtectSystem"] == "strict" and service["ReadWritePaths"] == "/var/lib/till"
        assert service["LoadCredential"] == "database-password:/etc/till/database-password"
    assert environment_file("till.env.example")["TILL_CREATE_TABLES"] == "false"
