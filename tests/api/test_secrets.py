"""Secrets live in settings and files, never in the code, and never reach the logs.

* The source tree (domain/, adapters/, api/, projections/, terminal_agent/, infra/) holds no bearer
  token, no private key, no long hex or random-looking literal under a key-like name, no password hash
  and no password in a URL. What matches and is not a secret is allow-listed below, each with its reason.
* The keys are made per deployment: the evidence-signing key (TILL_SIGNING_KEY_FILE), the web session
  key (TILL_SESSION_KEY_FILE) and the agent's PAN-hash key (TILL_AGENT_PAN_KEY_FILE) are random files
  (mode 600), different in every data directory, and the settings that name them are honoured.
* A session of requests with every kind of token (good, unknown, malformed, expired, revoked), an
  operator sign-in and a web sign-in leaves JSON log lines (adapters/json_logging.py, everything from
  DEBUG up) holding none of the tokens, the session cookie, the passwords, the signing key's PEM or
  the session key's hex.
"""

from __future__ import annotations

import logging
import re
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from adapters.group_commit import run_alone
from adapters.json_logging import JsonFormatter
from adapters.settings import Settings
from adapters.signing import SigningKey
from api.app import build_services
from api.auth import new_token
from api.services import Services
from api.web.session import SESSION_COOKIE, SIGN_IN_CSRF_COOKIE, load_or_create_key
from domain.ledger import Ledger
from domain.stamp import Stamp
from terminal_agent.emv import pan_token
from terminal_agent.settings import AgentSettings
from tests.conftest import SteppingClock, fast_hasher
from tests.counter import Till

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("domain", "adapters", "api", "projections", "terminal_agent", "infra")
SKIPPED_SUFFIXES = (".pyc", ".png", ".jpg", ".ico", ".woff", ".woff2", ".ttf", ".gz", ".zip")

# What a hard-coded secret looks like.
PATTERNS = {
    "bearer token": re.compile(r"tl_[A-Za-z0-9_-]{20,}"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    "long hex literal": re.compile(r"""(?<![0-9A-Za-z])[0-9a-fA-F]{32,}(?![0-9A-Za-z])"""),
    "password hash": re.compile(r"\$(?:argon2(?:id|i|d)|2[aby]|scrypt|pbkdf2[-_a-z0-9]*)\$"),
    "password in a URL": re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?!(?:password|pw)@)[^@\s/'\"]+@"),
    # A key-like name given a literal of 12+ characters with both letters and digits (an identifier
    # such as "_password_verified" or an env variable's name is not a secret).
    "literal under a key-like name": re.compile(
        r"""(?i)\b\w*(?:secret|token|passw(?:or)?d|pepper|salt|api_?key|pan_?key|signing_?key|session_?key|private)\w*"""
        r"""(?:\s*:\s*[A-Za-z_][\w\[\]|. ]*)?\s*[:=]\s*b?(["'])(?=[^"']*[0-9])(?=[^"']*[A-Za-z])[^"'\s]{12,}\1"""),
}

# (path, what matched) -> why it is not a secret.
ALLOWED = {
    ("adapters/virtual_card.py", "0110A00001220000000000000000000000FF"):
        "the virtual test card's EMV issuer application data (tag 9F10), a public profile constant",
    ("domain/ledger.py", "$argon2id$"):
        "the hash an unknown user name is verified against, so the answer's timing does not tell which "
        "names exist; no account has it and the sign-in fails whatever the result",
    ("terminal_agent/simulate.py", 'PASSWORD = "simulated-cashier-01"'):
        "`till simulate` enrolls this operator on the virtual terminals it registers itself, for a demo "
        "day; it opens nothing else (the terminal's token is issued at run time)",
}


def findings(text: str) -> list[tuple[str, str]]:
    return [(name, m.group(0)) for name, pattern in PATTERNS.items() for m in pattern.finditer(text)]


def source_files() -> list[Path]:
    files = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(SKIPPED_SUFFIXES):
                files.append(path)
    return files


def test_the_source_tree_holds_no_hard_coded_secret() -> None:
    files = source_files()
    found = []
    used = set()
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        for line_no, line in enumerate(text.splitlines(), 1):
            for name, match in findings(line):
                allowed = next((key for key in ALLOWED if key[0] == relative and key[1] in line), None)
                if allowed is None:
                    found.append(f"{relative}:{line_no}: {name}: {match[:12]}…")
                else:
                    used.add(allowed)

    assert len(files) > 100 and any(p.name == "settings.py" for p in files)  # the scan sees the tree
    assert found == [], "hard-coded secrets? (move them to settings or a file, or allow-list with a reason)\n" + \
        "\n".join(found)
    assert sorted(set(ALLOWED) - used) == [], "allow-list entries that match nothing any more: remove them"


@pytest.mark.parametrize("line", [
    f'ADMIN = "{new_token()}"',
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    'SESSION_KEY = bytes.fromhex("' + "ab" * 32 + '")',
    "pan_key = b'" + "0f" * 16 + "'",
    'HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"',
    'URL = "postgresql://till:hunter2@db:5432/till"',
    'signing_secret = "s3cr3t-v4lue-2026"',
    'api_token: str = "Zx81kQ9pLm2vB7nR"',
])
def test_the_scan_recognises_each_kind_of_hard_coded_secret(line: str) -> None:
    assert findings(line), line


@pytest.mark.parametrize("line", [
    'TILL_DATABASE_URL=postgresql://user:password@host:5432/dbname',
    'PASSWORD_VERIFIED = "_password_verified"',
    'PASSWORD_ENV = "TILL_NEW_PASSWORD"',
    'key = path.read_text().strip()',
    'ADMIN_TOKEN_FILE = "admin.token"',
])
def test_the_scan_lets_placeholders_and_names_pass(line: str) -> None:
    assert findings(line) == [], line


# ---- keys per deployment ------------------------------------------------------------------------------
def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_signing_and_session_keys_are_random_files_per_data_dir_and_their_settings_are_honoured(
        tmp_path: Path) -> None:
    one, two = Settings(data_dir=tmp_path / "one"), Settings(data_dir=tmp_path / "two")
    signing = [SigningKey.load_or_create(s.signing_key_path) for s in (one, two)]
    sessions = [load_or_create_key(s.session_key_path) for s in (one, two)]

    assert signing[0].key_id != signing[1].key_id and sessions[0] != sessions[1] and len(sessions[0]) == 32
    for s in (one, two):
        assert mode(s.signing_key_path) == 0o600 and mode(s.session_key_path) == 0o600
    assert SigningKey.load_or_create(one.signing_key_path).key_id == signing[0].key_id  # kept, not remade

    elsewhere = Settings(data_dir=tmp_path / "three", signing_key_file=one.signing_key_path,
                         session_key_file=one.session_key_path)
    services = build_services(elsewhere, clock=SteppingClock(), hasher=fast_hasher())
    try:
        assert services.signing_key is not None and services.signing_key.key_id == signing[0].key_id
        assert load_or_create_key(elsewhere.session_key_path) == sessions[0]
        assert not (tmp_path / "three" / "signing.key").exists()
    finally:
        services.close()


def test_the_agents_pan_key_is_a_random_file_per_agent_unless_the_merchants_key_file_is_named(
        tmp_path: Path) -> None:
    pan = "6222020000031234"  # the virtual UnionPay test card's number
    first = AgentSettings(data_dir=tmp_path / "a")
    second = AgentSettings(data_dir=tmp_path / "b")

    keys = [first.pan_key(), second.pan_key()]

    assert keys[0] != keys[1] and all(len(k) == 32 for k in keys)
    assert mode(tmp_path / "a" / "pan.key") == 0o600
    assert pan_token(pan, keys[0]) != pan_token(pan, keys[1])  # the token is keyed, not a plain hash
    shared = AgentSettings(data_dir=tmp_path / "c", pan_key_file=tmp_path / "a" / "pan.key")
    assert shared.pan_key() == keys[0] and not (tmp_path / "c" / "pan.key").exists()


# ---- nothing secret in the logs -----------------------------------------------------------------------
STAFF_PASSWORD = "Tr0ub4dor&3 staff"
OPERATOR_PASSWORD = "counter-77-secret"


def _sign_in(client: TestClient, user_name: str, password: str) -> Any:
    response = client.post("/ui/sign-in", data={"user_name": user_name, "password": password, "csrf": "k" * 24},
                           headers={"Cookie": f"{SIGN_IN_CSRF_COOKIE}={'k' * 24}"}, follow_redirects=False)
    client.cookies.clear()
    return response


def test_no_token_cookie_password_or_key_reaches_the_json_logs(
        services: Services, settings: Settings, client: TestClient, admin_token: str, clock: SteppingClock,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level: the most a deployment could log
    admin = {"Authorization": f"Bearer {admin_token}"}
    till = Till(client, admin_token, password=OPERATOR_PASSWORD).register().open()
    issued = {role: client.post("/v1/tokens", json={"role": role, **extra}, headers=admin).json()
              for role, extra in (("accountant", {}), ("dispute", {"expires_in_s": 60}), ("admin", {}))}
    revoked = issued["admin"]
    assert client.delete(f"/v1/tokens/{revoked['token_id']}", headers=admin).status_code == 204
    unknown = new_token()
    for token in (issued["accountant"]["token"], issued["dispute"]["token"], unknown, "tl_malformed token",
                  revoked["token"], till.token):
        client.get("/v1/projections", headers={"Authorization": f"Bearer {token}"})
        client.get(f"/v1/terminals/{till.terminal_id}", headers={"Authorization": f"Bearer {token}"})
    clock.current += timedelta(seconds=61)
    assert client.get("/v1/projections", headers={"Authorization": f"Bearer {issued['dispute']['token']}"}
                      ).json()["detail"] == "token expired"
    wrong = till.post(f"/v1/till-sessions/{till.session.stream_id}/events", till.session.version,
                      {"type": "OperatorSignedIn", "operator_no": "01", "password": OPERATOR_PASSWORD + "x"})
    assert wrong.status_code in (401, 403, 409, 422), wrong.text
    run_alone(services.ledger, Ledger.open_staff_account(Stamp(None, None, None, clock.now()), "li.kuaiji",
                                                         "accountant", "李会计", services.hasher.hash(STAFF_PASSWORD)))
    assert _sign_in(client, "li.kuaiji", STAFF_PASSWORD + "!").status_code == 401
    signed = _sign_in(client, "li.kuaiji", STAFF_PASSWORD)
    cookie = signed.cookies[SESSION_COOKIE]
    page = client.get("/ui/day?date=2026-11-24", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    assert page.status_code == 200
    client.post("/ui/sign-out", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, follow_redirects=False)
    client.cookies.clear()

    pem = settings.signing_key_path.read_text()
    secrets = {"admin token": admin_token, "terminal token": till.token, "unknown token": unknown,
               "revoked token": revoked["token"], "session cookie": cookie, "session cookie's MAC": cookie.split(".")[1],
               "staff password": STAFF_PASSWORD, "operator password": OPERATOR_PASSWORD,
               "session key": settings.session_key_path.read_text().strip(),
               **{f"{role} token": t["token"] for role, t in issued.items()},
               **{f"signing key PEM line {i}": line for i, line in enumerate(pem.splitlines()) if "-----" not in line}}
    formatter = JsonFormatter()
    log = "\n".join(formatter.format(record) for record in caplog.records)

    assert sum(r.name == "till.access" for r in caplog.records) >= 20, "the access lines were not captured"
    assert "POST /ui/sign-in 303" in log and "GET /v1/projections 401" in log
    leaked = [what for what, value in secrets.items() if value in log or value.removeprefix("tl_") in log]
    assert leaked == [], f"in the logs: {leaked}"
