"""Every route of the app × every kind of caller: nobody gets through where the policy does not let them.

The routes are read from the app itself (the API, the ``/ui/`` pages, ``/metrics``, the probes, the
docs), so a new route that is not in ``POLICY`` fails ``test_every_route_of_the_app_is_in_the_policy``:
whoever adds a route must say who may call it (or why anyone may).

The callers: a bearer token of each role (admin, accountant, dispute), the terminal's own token, the
token of another terminal used on this terminal's things, no credentials, a malformed token, an
expired admin token, a revoked admin token; and a web session of each staff role, the session of an
account disabled after it signed in, and a forged session cookie. Each request is well formed and
names real objects (a sale that was authorized and settled, its Z report, an imported settlement
file, …), and every allowed caller must succeed with it — so a refusal is a refusal, not a 404 or a
422 hiding behind the wrong id or body.

A success is a 2xx, or a 3xx that leads anywhere but the sign-in page. For a caller outside the
policy the test accepts only the documented refusal: on the API 401 ``not_authenticated`` without
valid credentials (a web session is not one) and 403 ``forbidden`` for a valid token of the wrong role
or terminal; on the pages a 303 to the sign-in page without a valid session (a bearer token is not
one) and a 403 page for the wrong role. Runs on SQLite and PostgreSQL, authorizing through the
acquirer simulator (real TCP on loopback), so the host routes are exercised too.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from adapters.acquirer_simulator import AcquirerSimulator, SimulatorThread
from adapters.group_commit import run_alone
from adapters.settings import Settings
from api.app import build_services, create_app
from api.auth import new_token
from api.services import Services
from api.web.session import SESSION_COOKIE, SIGN_IN_CSRF_COOKIE, SessionSealer
from domain.ledger import Ledger
from domain.stamp import Stamp
from domain.terminal import Terminal
from domain.till import TillSession
from tests.conftest import fast_hasher
from tests.counter import Stream
from tests.host_counter import HostTill, test_pan

try:  # FastAPI ≥ 0.13x keeps included routers as branches; this walks them to the routes
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI: app.routes is already flat
    def iter_route_contexts(routes: Any) -> Iterator[Any]:  # type: ignore[misc]
        yield from routes

# ---- the callers -------------------------------------------------------------------------------------
TOKEN_CALLERS = ("admin", "accountant", "dispute", "terminal", "other terminal")
BAD_TOKENS = ("malformed token", "expired token", "revoked token")
SESSIONS = ("admin session", "accountant session", "dispute session")
BAD_SESSIONS = ("disabled account's session", "forged session")
NOBODY = "no credentials"
CALLERS = (*TOKEN_CALLERS, *BAD_TOKENS, *SESSIONS, *BAD_SESSIONS, NOBODY)
EVERYONE = frozenset(CALLERS)
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Rule:
    """Who may call a route. ``why`` is required for a public route."""

    allowed: frozenset[str]
    why: str = ""

    @property
    def public(self) -> bool:
        return self.allowed == EVERYONE


def only(*callers: str) -> Rule:
    unknown = set(callers) - EVERYONE
    assert not unknown, f"not a caller: {unknown}"
    return Rule(frozenset(callers))


def public(why: str) -> Rule:
    return Rule(EVERYONE, why)


READERS = only("admin", "accountant", "dispute", "terminal")
ACCOUNTANTS = only("admin", "accountant")
DISPUTES = only("admin", "dispute")
ACCOUNTANT_PAGES = only("admin session", "accountant session")
DISPUTE_PAGES = only("admin session", "dispute session")

# Keyed "METHOD path-template"; HEAD follows GET. "terminal" is the terminal whose objects the request names.
POLICY: dict[str, Rule] = {
    # -- operations and documentation
    "GET /healthz": public("liveness probe: orchestrators carry no token; says only 'ok'"),
    "GET /readyz": public("readiness probe: orchestrators carry no token; store head and projection lag only"),
    "GET /metrics": public("Prometheus scrape: no payment data; docs/operations.md puts it where only the "
                           "scraper reaches"),
    "GET /openapi.json": public("the API's schema, no data"),
    "GET /docs": public("Swagger UI page for the schema, no data"),
    "GET /docs/oauth2-redirect": public("Swagger UI helper page, no data"),
    "GET /redoc": public("ReDoc page for the schema, no data"),
    "GET /v1/keys/signing": public("the PUBLIC key that verifies evidence bundles; whoever checks a bundle needs it"),
    # -- the operator
    "POST /v1/terminals": only("admin"),
    "PATCH /v1/terminals/{terminal_id}": only("admin"),
    "GET /v1/terminals/{terminal_id}": only("admin", "terminal"),
    "POST /v1/terminals/{terminal_id}/operators": only("admin"),
    "POST /v1/tokens": only("admin"),
    "DELETE /v1/tokens/{token_id}": only("admin"),
    # -- the terminal
    "POST /v1/transactions/{transaction_id}/events": only("terminal"),
    "POST /v1/till-sessions/{till_session_id}/events": only("terminal"),
    "POST /v1/terminals/{terminal_id}/sign-on": only("terminal"),
    "POST /v1/transactions/{transaction_id}/authorize": only("terminal"),
    "POST /v1/till-sessions/{till_session_id}/settle": only("terminal"),
    "GET /v1/transactions/{transaction_id}": READERS,
    "GET /v1/transactions/{transaction_id}/events": READERS,
    "GET /v1/till-sessions/{till_session_id}": READERS,
    "GET /v1/till-sessions/{till_session_id}/events": READERS,
    "GET /v1/transactions/{transaction_id}/receipt": READERS,
    # -- the accountant and the dispute handler
    "GET /v1/reports/day": ACCOUNTANTS,
    "GET /v1/reports/z": ACCOUNTANTS,
    "GET /v1/reports/z/{z_report_id}": only("admin", "accountant", "terminal"),
    "POST /v1/settlements": ACCOUNTANTS,
    "GET /v1/settlements/{settlement_id}/matches": ACCOUNTANTS,
    "GET /v1/disputes/search": DISPUTES,
    "GET /v1/disputes/{transaction_id}/evidence": DISPUTES,
    "GET /v1/projections": only("admin", "accountant", "dispute"),
    # -- the web pages
    "GET /": public("a redirect to /ui/"),
    "GET /ui/": public("a redirect: to the sign-in page, or to the signed-in user's own page"),
    "GET /ui/sign-in": public("the sign-in form"),
    "POST /ui/sign-in": public("signing in: the way to get a session (double-submit CSRF, throttled)"),
    "POST /ui/sign-out": public("signing out: drops the caller's cookie, shows nothing"),
    "GET /ui/static": public("the stylesheet"),
    "GET /ui/day": ACCOUNTANT_PAGES,
    "GET /ui/day.{extension}": ACCOUNTANT_PAGES,
    "GET /ui/z/{z_report_id}": ACCOUNTANT_PAGES,
    "POST /ui/settlements": ACCOUNTANT_PAGES,
    "GET /ui/settlements/{settlement_id}": ACCOUNTANT_PAGES,
    "GET /ui/disputes": DISPUTE_PAGES,
    "GET /ui/disputes/{transaction_id}": DISPUTE_PAGES,
    "GET /ui/disputes/{transaction_id}/bundle.json": DISPUTE_PAGES,
    "GET /ui/disputes/{transaction_id}/evidence.pdf": DISPUTE_PAGES,
}


# ---- the world the requests name -------------------------------------------------------------------
class MovableClock:
    """The real clock, which a test may move forward (the service's one true edge)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class World:
    client: TestClient
    services: Services
    mine: HostTill  # the terminal whose objects every request names
    theirs: HostTill
    sale: Stream
    rrn: str
    z_report_id: str
    settlement_id: str
    day: str
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)  # caller -> headers
    sessions: dict[str, str] = field(default_factory=dict)  # caller -> session cookie value
    serial: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def sealer(self) -> SessionSealer:
        return self.client.app.state.web_sessions.sealer  # type: ignore[attr-defined, no-any-return]

    def csrf(self, caller: str) -> str:
        """The form token of the caller's session; for a caller without one, a genuine token of another
        session (the request is well formed; only the session is missing). The forged cookie carries the
        admin session's claims, and gets the admin session's genuine form token too."""
        session = "admin session" if caller == "forged session" else caller
        opened = self.sealer.open(self.sessions.get(session) or self.sessions["accountant session"])
        assert opened is not None
        return self.sealer.csrf_token(opened[2])

    def next(self) -> int:
        return next(self.serial)

    def admin_headers(self) -> dict[str, str]:
        return self.credentials["admin"]

    def sync_mine(self) -> None:
        """Bring the counter script's session version and batch up to date (requests may have moved them)."""
        ledger = self.services.ledger
        self.mine.session.version = ledger.load(UUID(self.mine.session.stream_id), TillSession).version
        self.mine.batch_no = ledger.load(UUID(self.mine.terminal_id), Terminal).batch_label


def settlement_csv(day: str, terminal_no: str) -> bytes:
    return ("settlement_date,merchant_no,terminal_no,batch_no,trace_no,rrn,auth_code,masked_card,amount,fee,net,type\n"
            f"{day},898310048990001,{terminal_no},000001,000001,000000000001,A1,622202******1234,1.00,0,1.00,sale\n"
            ).encode()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # No account cache: the disabled account is refused at once (as it is after TILL_TOKEN_CACHE_S).
    return settings.model_copy(update={"token_cache_s": 0.0})


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "host").mkdir()
    sim = AcquirerSimulator(tmp_path / "host" / "journal.sqlite", settlement_dir=tmp_path / "host")
    with SimulatorThread(sim) as port:
        yield port
    sim.close()


@pytest.fixture
def services(settings: Settings, simulator: int) -> Iterator[Services]:
    host = settings.model_copy(update={"acquirer_url": f"127.0.0.1:{simulator}", "acquirer_timeout_s": 2.0,
                                       "reversal_scan_s": 30.0})
    built = build_services(host, clock=MovableClock(), hasher=fast_hasher(), create_tables=True)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def app(services: Services) -> FastAPI:
    return create_app(services=services)


def _issue(client: TestClient, admin: dict[str, str], role: str) -> dict[str, Any]:
    response = client.post("/v1/tokens", json={"role": role, "label": f"matrix {role}"}, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _session(client: TestClient, services: Services, user_name: str, role: str) -> str:
    run_alone(services.ledger, Ledger.open_staff_account(Stamp(None, None, None, services.clock.now()), user_name,
                                                         role, user_name, services.hasher.hash(PASSWORD)))
    response = client.post("/ui/sign-in", data={"user_name": user_name, "password": PASSWORD, "csrf": "c" * 24},
                           headers={"Cookie": f"{SIGN_IN_CSRF_COOKIE}={'c' * 24}"})
    assert response.status_code == 303, response.text
    cookie = response.cookies.get(SESSION_COOKIE)
    client.cookies.clear()
    assert cookie
    return cookie


@pytest.fixture
def world(app: FastAPI, services: Services, admin_token: str) -> Iterator[World]:
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        admin = {"Authorization": f"Bearer {admin_token}"}
        mine, theirs = HostTill(client, admin_token).register().open(), HostTill(client, admin_token).register().open()
        mine.sign_on()
        theirs.sign_on()
        sale, answer = mine.sale_through_host(1_234, test_pan(1))
        assert answer["outcome"] == "authorized", answer
        mine.settle_through_host()
        for _ in range(2):  # the view issues the Z report from BatchSettled, then applies it
            services.views().runner.catch_up()
        day = services.clock.now().astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
        z_reports = client.get(f"/v1/reports/z?date={day}", headers=admin).json()["z_reports"]
        [z_report] = [z for z in z_reports if z["terminal_no"] == mine.terminal_no]
        imported = client.post("/v1/settlements", content=settlement_csv(day, mine.terminal_no),
                               headers={**admin, "content-type": "text/csv"})
        assert imported.status_code == 201, imported.text

        # An admin token that expired an hour ago, and one revoked: the most powerful role, turned bad.
        expired = new_token()
        now = services.clock.now()
        run_alone(services.ledger, Ledger.issue_token(Stamp(None, None, None, now - timedelta(hours=2)), expired,
                                                      "admin", None, "expired", expires_at=now - timedelta(hours=1)))
        revoked = _issue(client, admin, "admin")
        assert client.delete(f"/v1/tokens/{revoked['token_id']}", headers=admin).status_code == 204

        w = World(client, services, mine, theirs, sale, answer["rrn"], z_report["id"], imported.json()["settlement_id"],
                  day)
        bearer = {"admin": admin_token, "accountant": _issue(client, admin, "accountant")["token"],
                  "dispute": _issue(client, admin, "dispute")["token"], "terminal": mine.token,
                  "other terminal": theirs.token, "malformed token": "tl_<not a token>; DROP",
                  "expired token": expired, "revoked token": revoked["token"]}
        w.credentials = {caller: {"Authorization": f"Bearer {token}"} for caller, token in bearer.items()}
        for caller, role in (("admin session", "admin"), ("accountant session", "accountant"),
                             ("dispute session", "dispute"), ("disabled account's session", "accountant")):
            w.sessions[caller] = _session(client, services, caller.split()[0].replace("'s", "") + "-user", role)
        run_alone(services.ledger, Ledger.change_staff_account(Stamp(None, None, None, services.clock.now()),
                                                               "disabled-user", disable_reason="left the company"))
        payload = w.sessions["admin session"].partition(".")[0]
        w.sessions["forged session"] = f"{payload}.{'0' * 64}"  # a real session's claims under a made-up MAC
        for caller, cookie in w.sessions.items():
            w.credentials[caller] = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
        w.credentials[NOBODY] = {}
        services.views().runner.catch_up()
        yield w


# ---- one well-formed request per route ---------------------------------------------------------------
@dataclass
class Req:
    method: str
    url: str
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    form: dict[str, str] | None = None
    files: dict[str, Any] | None = None
    cookies: dict[str, str] = field(default_factory=dict)


Build = Callable[[World, str], Req]


def _envelope(w: World, version: int, **more: Any) -> dict[str, Any]:
    return {"expected_version": version, "operator_no": "01", "device_time": datetime.now(UTC).isoformat(), **more}


def _till_append(w: World, caller: str) -> Req:
    w.sync_mine()
    return Req("POST", f"/v1/till-sessions/{w.mine.session.stream_id}/events",
               json=_envelope(w, w.mine.session.version, event={"type": "CashCounted", "counted_minor": 50_000}))


def _transaction_open(w: World, caller: str) -> Req:
    w.sync_mine()
    return Req("POST", f"/v1/transactions/{uuid.uuid4()}/events", json=_envelope(w, 0, event={
        "type": "TransactionOpened", "kind": "sale", "payment_method": "cash", "till_session_id": w.mine.session.stream_id,
        "batch_no": w.mine.batch_no, "trace_no": f"{500 + w.next():06d}"}))


def _authorize(w: World, caller: str) -> Req:
    w.sync_mine()
    pan = test_pan(100 + w.next())
    txn = w.mine.ready(2_000, pan)  # a sale of this terminal, read and ready: only the host is missing
    return Req("POST", f"/v1/transactions/{txn.stream_id}/authorize",
               json=_envelope(w, txn.version, card={"pan": pan, "expiry": "3012"}))


def _settle(w: World, caller: str) -> Req:
    w.sync_mine()
    return Req("POST", f"/v1/till-sessions/{w.mine.session.stream_id}/settle",
               json=_envelope(w, w.mine.session.version, batch_no=w.mine.batch_no))


def _revoke(w: World, caller: str) -> Req:
    token_id = _issue(w.client, w.admin_headers(), "dispute")["token_id"]
    return Req("DELETE", f"/v1/tokens/{token_id}")


def _sign_in(w: World, caller: str) -> Req:
    return Req("POST", "/ui/sign-in", form={"user_name": "accountant-user", "password": PASSWORD, "csrf": "s" * 24},
               cookies={SIGN_IN_CSRF_COOKIE: "s" * 24})


REQUESTS: dict[str, Build] = {
    "GET /healthz": lambda w, c: Req("GET", "/healthz"),
    "GET /readyz": lambda w, c: Req("GET", "/readyz"),
    "GET /metrics": lambda w, c: Req("GET", "/metrics"),
    "GET /openapi.json": lambda w, c: Req("GET", "/openapi.json"),
    "GET /docs": lambda w, c: Req("GET", "/docs"),
    "GET /docs/oauth2-redirect": lambda w, c: Req("GET", "/docs/oauth2-redirect"),
    "GET /redoc": lambda w, c: Req("GET", "/redoc"),
    "GET /v1/keys/signing": lambda w, c: Req("GET", "/v1/keys/signing"),
    "POST /v1/terminals": lambda w, c: Req("POST", "/v1/terminals", json={
        "merchant_name": "Other shop", "merchant_no": "898310048990002", "terminal_no": f"{70_000_000 + w.next():08d}"}),
    "PATCH /v1/terminals/{terminal_id}": lambda w, c: Req("PATCH", f"/v1/terminals/{w.mine.terminal_id}",
                                                          json={"max_amount_minor": 900_000}),
    "GET /v1/terminals/{terminal_id}": lambda w, c: Req("GET", f"/v1/terminals/{w.mine.terminal_id}"),
    "POST /v1/terminals/{terminal_id}/operators": lambda w, c: Req(
        "POST", f"/v1/terminals/{w.mine.terminal_id}/operators",
        json={"operator_no": f"{1000 + w.next()}", "name": "李雷", "password": "counter-02"}),
    "POST /v1/tokens": lambda w, c: Req("POST", "/v1/tokens", json={"role": "accountant", "expires_in_s": 3600}),
    "DELETE /v1/tokens/{token_id}": _revoke,
    "POST /v1/transactions/{transaction_id}/events": _transaction_open,
    "POST /v1/till-sessions/{till_session_id}/events": _till_append,
    "POST /v1/terminals/{terminal_id}/sign-on": lambda w, c: Req(
        "POST", f"/v1/terminals/{w.mine.terminal_id}/sign-on", json={"operator_no": "01"}),
    "POST /v1/transactions/{transaction_id}/authorize": _authorize,
    "POST /v1/till-sessions/{till_session_id}/settle": _settle,
    "GET /v1/transactions/{transaction_id}": lambda w, c: Req("GET", f"/v1/transactions/{w.sale.stream_id}"),
    "GET /v1/transactions/{transaction_id}/events": lambda w, c: Req("GET", f"/v1/transactions/{w.sale.stream_id}/events"),
    "GET /v1/till-sessions/{till_session_id}": lambda w, c: Req("GET", f"/v1/till-sessions/{w.mine.session.stream_id}"),
    "GET /v1/till-sessions/{till_session_id}/events": lambda w, c: Req(
        "GET", f"/v1/till-sessions/{w.mine.session.stream_id}/events"),
    "GET /v1/transactions/{transaction_id}/receipt": lambda w, c: Req(
        "GET", f"/v1/transactions/{w.sale.stream_id}/receipt?format=text"),
    "GET /v1/reports/day": lambda w, c: Req("GET", f"/v1/reports/day?date={w.day}&format=csv"),
    "GET /v1/reports/z": lambda w, c: Req("GET", f"/v1/reports/z?date={w.day}"),
    "GET /v1/reports/z/{z_report_id}": lambda w, c: Req("GET", f"/v1/reports/z/{w.z_report_id}"),
    "POST /v1/settlements": lambda w, c: Req("POST", "/v1/settlements", content=settlement_csv(w.day, w.mine.terminal_no),
                                             content_type="text/csv"),
    "GET /v1/settlements/{settlement_id}/matches": lambda w, c: Req("GET", f"/v1/settlements/{w.settlement_id}/matches"),
    "GET /v1/disputes/search": lambda w, c: Req("GET", f"/v1/disputes/search?rrn={w.rrn}"),
    "GET /v1/disputes/{transaction_id}/evidence": lambda w, c: Req(
        "GET", f"/v1/disputes/{w.sale.stream_id}/evidence?format=bundle"),
    "GET /v1/projections": lambda w, c: Req("GET", "/v1/projections"),
    "GET /": lambda w, c: Req("GET", "/"),
    "GET /ui/": lambda w, c: Req("GET", "/ui/"),
    "GET /ui/sign-in": lambda w, c: Req("GET", "/ui/sign-in"),
    "POST /ui/sign-in": _sign_in,
    "POST /ui/sign-out": lambda w, c: Req("POST", "/ui/sign-out", form={"csrf": w.csrf(c)}),
    "GET /ui/static": lambda w, c: Req("GET", "/ui/static/till.css"),
    "GET /ui/day": lambda w, c: Req("GET", f"/ui/day?date={w.day}"),
    "GET /ui/day.{extension}": lambda w, c: Req("GET", f"/ui/day.csv?date={w.day}"),
    "GET /ui/z/{z_report_id}": lambda w, c: Req("GET", f"/ui/z/{w.z_report_id}"),
    "POST /ui/settlements": lambda w, c: Req("POST", "/ui/settlements", form={"csrf": w.csrf(c)}, files={
        "file": ("settlement.csv", settlement_csv(w.day, w.mine.terminal_no), "text/csv")}),
    "GET /ui/settlements/{settlement_id}": lambda w, c: Req("GET", f"/ui/settlements/{w.settlement_id}"),
    "GET /ui/disputes": lambda w, c: Req("GET", f"/ui/disputes?rrn={w.rrn}"),
    "GET /ui/disputes/{transaction_id}": lambda w, c: Req("GET", f"/ui/disputes/{w.sale.stream_id}"),
    "GET /ui/disputes/{transaction_id}/bundle.json": lambda w, c: Req(
        "GET", f"/ui/disputes/{w.sale.stream_id}/bundle.json"),
    "GET /ui/disputes/{transaction_id}/evidence.pdf": lambda w, c: Req(
        "GET", f"/ui/disputes/{w.sale.stream_id}/evidence.pdf"),
}


# ---- the routes as the app has them ------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    method: str  # as sent
    path: str  # the template
    regex: re.Pattern[str]

    @property
    def key(self) -> str:
        return f"{'GET' if self.method == 'HEAD' else self.method} {self.path}"


def app_routes(app: FastAPI) -> list[Route]:
    """Every (method, path) the app answers, walked from ``app.routes`` (mounts answer GET)."""
    found = []
    for route in iter_route_contexts(app.routes):
        methods = route.methods or {"GET"}  # a Mount (static files) has none
        for method in sorted(methods):
            found.append(Route(method, route.path, route.path_regex))
    return found


def is_success(status: int, location: str | None) -> bool:
    """2xx, or a redirect into content (anywhere but the sign-in page)."""
    if 200 <= status < 300:
        return True
    return 300 <= status < 400 and not (location or "").startswith("/ui/sign-in")


def expected_refusal(route: Route, caller: str) -> str:
    if route.path == "/" or route.path.startswith("/ui/"):
        return "403 page" if caller in SESSIONS else "303 to sign-in"
    return "403 forbidden" if caller in TOKEN_CALLERS else "401 not_authenticated"


def outcome(response: Any) -> str:
    status = response.status_code
    if status in (401, 403) and response.headers.get("content-type", "").startswith("application/problem+json"):
        code = response.json()["code"]
        return f"{status} {code}"
    if status == 303 and response.headers.get("location", "").startswith("/ui/sign-in"):
        return "303 to sign-in"
    if status == 403 and response.headers.get("content-type", "").startswith("text/html"):
        return "403 page"
    return f"{status}"


def send(w: World, route: Route, caller: str) -> Any:
    req = REQUESTS[route.key](w, caller)
    assert route.regex.match(req.url.split("?")[0]), f"{route.key}: the request {req.url} is not for this route"
    headers = dict(w.credentials[caller])
    if req.cookies:
        extra = "; ".join(f"{k}={v}" for k, v in req.cookies.items())
        headers["Cookie"] = f"{headers['Cookie']}; {extra}" if "Cookie" in headers else extra
    if req.content_type:
        headers["content-type"] = req.content_type
    response = w.client.request(route.method, req.url, json=req.json, content=req.content, data=req.form,
                                files=req.files, headers=headers)
    w.client.cookies.clear()  # nothing a response set may ride along with the next caller's request
    return response


# ---- the tests ---------------------------------------------------------------------------------------
def test_every_route_of_the_app_is_in_the_policy_and_has_a_request(app: FastAPI) -> None:
    keys = {route.key for route in app_routes(app)}

    assert len(keys) >= 45, sorted(keys)  # the walk sees the included routers, the pages and the mount
    assert sorted(keys - POLICY.keys()) == [], "routes nobody classified: add them to POLICY (who may call them)"
    assert sorted(POLICY.keys() - keys) == [], "POLICY names routes the app no longer has"
    assert sorted(keys - REQUESTS.keys()) == [], "routes without a well-formed request in REQUESTS"
    assert all(rule.why for rule in POLICY.values() if rule.public), "a public route needs its reason"


def test_no_caller_gets_through_a_route_the_policy_does_not_open_to_them(app: FastAPI, world: World) -> None:
    started = time.monotonic()
    # Signing out last: it ends the caller's session (on purpose), which every later page would see.
    routes = sorted((r for r in app_routes(app) if r.key in POLICY and r.key in REQUESTS),
                    key=lambda r: r.key == "POST /ui/sign-out")
    unauthorized: list[str] = []
    refused_wrongly: list[str] = []
    failed_for_allowed: list[str] = []
    tried = 0
    for route in routes:
        rule = POLICY[route.key]
        for caller in CALLERS:
            response = send(world, route, caller)
            tried += 1
            got = outcome(response)
            line = f"{route.method} {route.path} as {caller}: {got} {response.text[:160]!r}"
            success = is_success(response.status_code, response.headers.get("location"))
            if caller in rule.allowed:
                # A public redirect (/ui/, signing out) may lead to the sign-in page: it must only answer.
                if not (success or (rule.public and response.status_code < 400)):
                    failed_for_allowed.append(line)
            elif success:
                unauthorized.append(line)
            elif got != expected_refusal(route, caller):
                refused_wrongly.append(f"{line} (expected {expected_refusal(route, caller)})")
            elif caller == "expired token" and got.startswith("401") and response.json()["detail"] != "token expired":
                refused_wrongly.append(f"{line} (expected the detail 'token expired')")

    assert unauthorized == [], "UNAUTHORIZED SUCCESSES:\n" + "\n".join(unauthorized)
    assert failed_for_allowed == [], "allowed callers failed (the request is not well formed, so a refusal " \
                                     "proves nothing):\n" + "\n".join(failed_for_allowed)
    assert refused_wrongly == [], "refused, but not as documented:\n" + "\n".join(refused_wrongly)
    assert tried == len(routes) * len(CALLERS) >= 45 * 14
    print(f"access matrix: {len(routes)} routes × {len(CALLERS)} callers = {tried} requests in "
          f"{time.monotonic() - started:.1f} s, 0 unauthorized successes")
