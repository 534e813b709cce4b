"""``till doctor``: check the service's deployment and say what is wrong in plain words.

The checks, in order (one whose prerequisite has a problem is skipped):

    settings        every TILL_* value passes validation (a bad one is named, not shown as a traceback)
    data dir        TILL_DATA_DIR exists and this user can write there
    database        the SQLite file opens, or PostgreSQL answers within 3 s
    ledger tables   the event log's and the views' tables exist (PostgreSQL: this role may write them)
    projection …    each projection's position against the log's head, and whether a runner follows it
    signing key     the Ed25519 key exists, loads, and only its owner can read it (mode 600)
    session key     the web pages' cookie key is 32 bytes (hex) and only its owner can read it
    admin token     the first admin token's file, while it exists, is readable by its owner only
    acquirer host   TILL_ACQUIRER_URL, when set, accepts a TCP connection
    service port    TILL_HOST:TILL_PORT is free, or Till Ledger answers /healthz there

The doctor changes nothing: no table, schema, folder or key is created. The store's checks are in
``api.store_diagnosis``; the findings, the runner and the output in ``adapters.diagnosis``.
"""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
from pydantic import ValidationError
from pydantic_settings import SettingsError

from adapters.diagnosis import (Check, Diagnosis, Finding, diagnose, mask_url, ok, print_diagnosis, problem,
                                settings_problem, warning)
from adapters.settings import Settings
from api.store_diagnosis import CONNECT_TIMEOUT_S, StoreDiagnosis, store_errors
from projections.read_models import PROJECTIONS


class ServiceDoctor:
    """The checks of one deployment, as configured by this process's TILL_* environment."""

    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:  # only checks that need "settings" ask for it
            raise RuntimeError("the settings check has not passed")
        return self._settings

    def checks(self) -> list[Check]:
        store = ("settings", "database", "ledger tables")
        return [
            Check("settings", self.check_settings),
            Check("data dir", self.check_data_dir, needs=("settings",)),
            Check("database", store_errors(lambda: StoreDiagnosis(self.settings).database()), needs=("settings",)),
            Check("ledger tables", store_errors(lambda: StoreDiagnosis(self.settings).tables()),
                  needs=("settings", "database")),
            *(Check(f"projection {name}", store_errors(partial(self._projection, name)), needs=store)
              for name in PROJECTIONS),
            Check("signing key", self.check_signing_key, needs=("settings",)),
            Check("session key", self.check_session_key, needs=("settings",)),
            Check("admin token", self.check_admin_token, needs=("settings",)),
            Check("acquirer host", self.check_acquirer, needs=("settings",)),
            Check("service port", self.check_service_port, needs=("settings",)),
        ]

    def _projection(self, name: str) -> Finding:
        return StoreDiagnosis(self.settings).projection(name)

    def secrets(self) -> list[str]:
        if self._settings is None or not self._settings.database_url:
            return []
        password = urlsplit(self._settings.database_url).password
        return [password, unquote(password)] if password else []

    # ---- settings and files --------------------------------------------------------------------

    def check_settings(self) -> Finding:
        try:
            self._settings = Settings()
        except ValidationError as exc:
            return settings_problem(exc, "TILL_", secret_fields=("database_url",))
        except SettingsError as exc:
            return problem(f"the TILL_* settings cannot be read: {exc}", "correct the variable it names")
        s = self._settings
        store = (f"PostgreSQL {mask_url(s.database_url or '')}, schema {s.database_schema}" if s.uses_postgres
                 else f"SQLite in {s.data_dir.resolve()}")
        return ok(f"the TILL_* settings are valid (events in {store})")

    def check_data_dir(self) -> Finding:
        folder = self.settings.data_dir.resolve()
        if not folder.exists():
            return warning(f"{folder} does not exist yet",
                           "`till db init` or `till serve` creates it; or set TILL_DATA_DIR to where the data is")
        if not folder.is_dir():
            return problem(f"{folder} is not a folder", "set TILL_DATA_DIR to a folder")
        try:  # a real write: os.access says yes to root even on a read-only mount
            fd, probe = tempfile.mkstemp(prefix=".till-doctor-", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            return problem(f"{folder} is not writable by this user ({_reason(exc)})",
                           "give the service's user write access (chown/chmod) or set TILL_DATA_DIR")
        return ok(f"{folder} exists and is writable")

    def check_signing_key(self) -> Finding:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from adapters.signing import key_id

        path = self.settings.signing_key_path.resolve()
        if not path.exists():
            return warning(f"there is no signing key at {path} yet",
                           "`till serve` creates it on first start; give every process the same file")
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            return problem(f"the signing key {path} cannot be loaded ({_reason(exc)})",
                           "restore the file from a backup (a new key cannot sign as the old one)")
        if not isinstance(key, Ed25519PrivateKey):
            return problem(f"{path} does not hold an Ed25519 private key",
                           "restore the service's signing key from a backup, or set TILL_SIGNING_KEY_FILE")
        mode = _mode(path)
        if mode & 0o077:
            return problem(f"the signing key {path} is not private: {_open_to_others(mode)}",
                           f"run chmod 600 {path}", mode=f"{mode:o}")
        return ok(f"the signing key {path} loads (key id {key_id(key.public_key())}) and only its owner can read it")

    def check_session_key(self) -> Finding:
        path = self.settings.session_key_path.resolve()
        if not path.exists():
            return warning(f"there is no web session key at {path} yet",
                           "`till serve` creates it on first start; give every API process the same file")
        try:
            valid = len(bytes.fromhex(path.read_text().strip())) == 32
        except (OSError, ValueError) as exc:
            return problem(f"the web session key {path} cannot be read ({_reason(exc)})",
                           f"delete {path} and restart the service (everyone signs in again)")
        if not valid:
            return problem(f"the web session key {path} is not 64 hex digits",
                           f"delete {path} and restart the service (everyone signs in again)")
        mode = _mode(path)
        if mode & 0o077:
            return problem(f"the web session key {path} is not private: {_open_to_others(mode)} (whoever reads it "
                           "can forge a sign-in)", f"run chmod 600 {path}", mode=f"{mode:o}")
        return ok(f"the web session key {path} is valid and only its owner can read it")

    def check_admin_token(self) -> Finding:
        from api.app import ADMIN_TOKEN_FILE

        path = (self.settings.data_dir / ADMIN_TOKEN_FILE).resolve()
        if not path.exists():
            return ok(f"no admin token file at {path} (not written yet, or removed after use)")
        mode = _mode(path)
        if mode & 0o077:
            return problem(f"{path} holds an admin token and is not private: {_open_to_others(mode)}",
                           f"run chmod 600 {path}, or delete it once the token is kept somewhere safe",
                           mode=f"{mode:o}")
        return ok(f"{path} is readable by its owner only (delete it once the token is kept somewhere safe)")

    # ---- the network ---------------------------------------------------------------------------

    def check_acquirer(self) -> Finding:
        address = self.settings.acquirer_address
        if address is None:
            return ok("TILL_ACQUIRER_URL is not set: terminals record card outcomes themselves")
        timeout = min(self.settings.acquirer_connect_timeout_s, CONNECT_TIMEOUT_S)
        where = f"{address[0]}:{address[1]}"
        try:
            with socket.create_connection(address, timeout=timeout):
                pass
        except OSError as exc:
            return problem(f"cannot reach the acquirer host at {where} ({_reason(exc, timeout)})",
                           "is the host (or `till acquirer-sim`) running, and the network open? "
                           "check TILL_ACQUIRER_URL")
        return ok(f"the acquirer host at {where} accepts TCP connections")

    def check_service_port(self) -> Finding:
        host, port = self.settings.host, self.settings.port
        probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        try:
            with socket.create_connection((probe, port), timeout=1.0):
                pass
        except OSError:
            return ok(f"nothing listens on {host}:{port} yet, so `till serve` can use it")
        url = f"http://{'[' + probe + ']' if ':' in probe else probe}:{port}/healthz"
        try:
            answer = httpx.get(url, timeout=2.0)
            healthy = answer.status_code == 200 and answer.json() == {"status": "ok"}
        except (httpx.HTTPError, ValueError):
            healthy = False
        if healthy:
            return ok(f"Till Ledger answers {url}")
        return warning(f"something other than Till Ledger listens on {host}:{port}",
                       "`till serve` could not bind there: stop that program or set TILL_PORT")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _open_to_others(mode: int) -> str:
    if mode & 0o044:
        return f"other users can read it (mode {mode:o})"
    if mode & 0o022:
        return f"other users can change it (mode {mode:o})"
    return f"other users have access to it (mode {mode:o})"


def _reason(exc: BaseException, timeout: float | None = None) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens there"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s" if timeout else "timed out"
    if isinstance(exc, socket.gaierror):
        return "the host name is unknown"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}"


def run_checks() -> Diagnosis:
    doctor = ServiceDoctor()
    return diagnose("till doctor: checking the deployment set up by this environment's TILL_* variables",
                    doctor.checks(), secrets=doctor.secrets)


def main(*, as_json: bool = False) -> int:
    """Print the diagnosis; the exit status is 1 when any check found a problem."""
    return print_diagnosis(run_checks(), as_json=as_json)
