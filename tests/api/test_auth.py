"""Who may do what: bearer tokens with roles, terminal tokens bound to one terminal, tokens stored hashed."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from adapters.settings import Settings
from api.services import Services
from tests.api.stored_text import stored_text
from tests.counter import Stream, Till

PROBLEM = "application/problem+json"


@dataclass
class World:
    """Two terminals with a sale each, and a token for every role."""

    client: TestClient
    mine: Till
    theirs: Till
    my_sale: Stream
    their_sale: Stream
    tokens: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def issue(client: TestClient, admin_token: str, role: str, terminal_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"role": role, "label": f"{role} token"}
    if terminal_id:
        body["terminal_id"] = terminal_id
    response = client.post("/v1/tokens", json=body, headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def world(client: TestClient, admin_token: str, till: Till, services: Services) -> World:
    theirs = Till(client, admin_token).register().open()
    tokens = {"admin": admin_token, "terminal": till.token, "other terminal": theirs.token,
              "accountant": issue(client, admin_token, "accountant")["token"],
              "dispute": issue(client, admin_token, "dispute")["token"]}
    world = World(client, till, theirs, till.card_sale(1_000), theirs.card_sale(2_000), tokens)
    services.views().runner.catch_up()  # the dispute endpoints read the ledger view
    return world


# ---- the endpoints, each with a request that would succeed for the right caller ----------------------
Request = Callable[[World], tuple[str, str, dict[str, Any] | bytes | None]]


def _append_body(version: int, event: dict[str, Any]) -> dict[str, Any]:
    return {"expected_version": version, "operator_no": "01", "device_time": "2026-11-24T10:00:00+08:00",
            "event": event}


def _new_terminal_no() -> str:
    return f"{uuid.uuid4().int % 10**8:08d}"


ENDPOINTS: dict[str, Request] = {
    "register terminal": lambda w: ("POST", "/v1/terminals", {
        "merchant_name": "Other shop", "merchant_no": "898310048990002", "terminal_no": _new_terminal_no()}),
    "change terminal": lambda w: ("PATCH", f"/v1/terminals/{w.mine.terminal_id}", {"max_amount_minor": 900_000}),
    "read terminal": lambda w: ("GET", f"/v1/terminals/{w.mine.terminal_id}", None),
    "enroll operator": lambda w: ("POST", f"/v1/terminals/{w.mine.terminal_id}/operators", {
        "operator_no": f"{uuid.uuid4().int % 90 + 10}", "name": "李雷", "password": "counter-02"}),
    "issue token": lambda w: ("POST", "/v1/tokens", {"role": "accountant"}),
    "revoke token": lambda w: ("DELETE", f"/v1/tokens/{issue(w.client, w.tokens['admin'], 'dispute')['token_id']}",
                               None),
    "append till event": lambda w: ("POST", f"/v1/till-sessions/{w.mine.session.stream_id}/events", _append_body(
        _session_version(w, w.mine), {"type": "CashCounted", "counted_minor": 50_000})),
    "append transaction event": lambda w: ("POST", f"/v1/transactions/{uuid.uuid4()}/events", _append_body(0, {
        "type": "TransactionOpened", "kind": "sale", "payment_method": "cash",
        "till_session_id": w.mine.session.stream_id, "batch_no": "000001", "trace_no": "000900"})),
    "read transaction": lambda w: ("GET", f"/v1/transactions/{w.my_sale.stream_id}", None),
    "read transaction events": lambda w: ("GET", f"/v1/transactions/{w.my_sale.stream_id}/events", None),
    "read till session": lambda w: ("GET", f"/v1/till-sessions/{w.mine.session.stream_id}", None),
    "read till session events": lambda w: ("GET", f"/v1/till-sessions/{w.mine.session.stream_id}/events", None),
    "read receipt": lambda w: ("GET", f"/v1/transactions/{w.my_sale.stream_id}/receipt?format=text", None),
    "day report": lambda w: ("GET", "/v1/reports/day?date=2026-11-24&format=csv", None),
    "list z reports": lambda w: ("GET", "/v1/reports/z?date=2026-11-24", None),
    "import settlement": lambda w: ("POST", "/v1/settlements", _settlement_file()),
    "settlement matches": lambda w: ("GET", f"/v1/settlements/{_imported(w)}/matches", None),
    "search disputes": lambda w: ("GET", "/v1/disputes/search?rrn=000000000001", None),
    "dispute evidence": lambda w: ("GET", f"/v1/disputes/{w.my_sale.stream_id}/evidence", None),
    "evidence bundle": lambda w: ("GET", f"/v1/disputes/{w.my_sale.stream_id}/evidence?format=bundle", None),
    "projection status": lambda w: ("GET", "/v1/projections", None),
}

ALLOWED: dict[str, set[str]] = {
    "register terminal": {"admin"},
    "change terminal": {"admin"},
    "read terminal": {"admin", "terminal"},
    "enroll operator": {"admin"},
    "issue token": {"admin"},
    "revoke token": {"admin"},
    "append till event": {"terminal"},
    "append transaction event": {"terminal"},
    "read transaction": {"admin", "terminal", "accountant", "dispute"},
    "read transaction events": {"admin", "terminal", "accountant", "dispute"},
    "read till session": {"admin", "terminal", "accountant", "dispute"},
    "read till session events": {"admin", "terminal", "accountant", "dispute"},
    "read receipt": {"admin", "terminal", "accountant", "dispute"},
    "day report": {"admin", "accountant"},
    "list z reports": {"admin", "accountant"},
    "import settlement": {"admin", "accountant"},
    "settlement matches": {"admin", "accountant"},
    "search disputes": {"admin", "dispute"},
    "dispute evidence": {"admin", "dispute"},
    "evidence bundle": {"admin", "dispute"},
    "projection status": {"admin", "accountant", "dispute"},
}
ROLES = ["admin", "terminal", "other terminal", "accountant", "dispute"]


def _settlement_file() -> bytes:
    return (b"settlement_date,merchant_no,terminal_no,batch_no,trace_no,rrn,auth_code,masked_card,amount,fee,net,type\n"
            b"2026-11-24,898310048990001,30000001,000001,000001,000000000001,A1,622202******1234,1.00,0,1.00,sale\n")


def _imported(world: World) -> str:
    response = world.client.post("/v1/settlements", content=_settlement_file(), headers={
        **world.headers("admin"), "content-type": "text/csv"})
    assert response.status_code in (200, 201), response.text
    return response.json()["settlement_id"]  # type: ignore[no-any-return]


def _session_version(world: World, till: Till) -> int:
    response = world.client.get(f"/v1/till-sessions/{till.session.stream_id}", headers=till.headers)
    return response.json()["version"]  # type: ignore[no-any-return]


def send(world: World, endpoint: str, headers: dict[str, str]) -> Any:
    method, path, body = ENDPOINTS[endpoint](world)
    if isinstance(body, bytes):
        return world.client.request(method, path, content=body, headers={**headers, "content-type": "text/csv"})
    return world.client.request(method, path, json=body, headers=headers)


def assert_problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == code
    assert response.json()["status"] == status


# ---- no token, unknown token, revoked token: 401 -----------------------------------------------------
@pytest.mark.parametrize("authorization", [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer tl_no-such-token"],
                         ids=["no header", "no token", "wrong scheme", "unknown token"])
def test_every_endpoint_refuses_a_caller_without_a_valid_token(world: World, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    answers = {endpoint: send(world, endpoint, headers) for endpoint in ENDPOINTS}

    assert {e: (r.status_code, r.json()["code"]) for e, r in answers.items()} == {
        e: (401, "not_authenticated") for e in ENDPOINTS}
    for response in answers.values():
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_caller_without_a_token_learns_nothing_about_the_body_it_sent(client: TestClient) -> None:
    response = client.post(f"/v1/transactions/{uuid.uuid4()}/events", content=b"{not json",
                           headers={"content-type": "application/json"})

    assert_problem(response, 401, "not_authenticated")


def test_the_health_check_and_the_public_signing_key_need_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    key = client.get("/v1/keys/signing").json()
    assert key["algorithm"] == "Ed25519" and "PRIVATE" not in key["public_key"]


def test_a_revoked_token_is_refused_from_then_on(client: TestClient, admin_token: str, till: Till) -> None:
    issued = issue(client, admin_token, "terminal", till.terminal_id)
    headers = {"Authorization": f"Bearer {issued['token']}"}
    path = f"/v1/till-sessions/{till.session.stream_id}"
    assert client.get(path, headers=headers).status_code == 200

    revoked = client.delete(f"/v1/tokens/{issued['token_id']}", headers={"Authorization": f"Bearer {admin_token}"})

    assert revoked.status_code == 204
    response = client.get(path, headers=headers)
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get(path, headers=till.headers).status_code == 200  # other tokens of the terminal still work


def test_revoking_an_unknown_token_is_not_found(client: TestClient, admin_token: str) -> None:
    response = client.delete(f"/v1/tokens/{uuid.uuid4()}", headers={"Authorization": f"Bearer {admin_token}"})

    assert_problem(response, 404, "not_found")


# ---- roles --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_exactly_its_endpoints_and_is_forbidden_the_rest(world: World, role: str) -> None:
    answers = {endpoint: send(world, endpoint, world.headers(role)) for endpoint in ENDPOINTS}

    outcomes = {e: "allowed" if r.status_code in (200, 201, 204) else (r.status_code, r.json().get("code"))
                for e, r in answers.items()}
    assert outcomes == {e: "allowed" if role in ALLOWED[e] else (403, "forbidden") for e in ENDPOINTS}, {
        e: r.text[:200] for e, r in answers.items() if r.status_code >= 400}
    for response in answers.values():
        if response.status_code == 403:
            assert response.headers["content-type"].startswith(PROBLEM)


def test_a_terminal_cannot_append_to_another_terminals_transaction(world: World) -> None:
    response = world.client.post(f"/v1/transactions/{world.their_sale.stream_id}/events",
                                 json=_append_body(10, {"type": "ReceiptPrinted", "copy": "customer",
                                                        "printer": "escpos-test", "reprint_no": 1,
                                                        "receipt_sha256": "cd" * 32}),
                                 headers=world.headers("terminal"))

    assert_problem(response, 403, "forbidden")
    assert len(world.theirs.history(world.their_sale)["events"]) == 10


def test_a_terminal_cannot_open_a_transaction_on_another_terminals_till(world: World) -> None:
    response = world.client.post(f"/v1/transactions/{uuid.uuid4()}/events", json=_append_body(0, {
        "type": "TransactionOpened", "kind": "sale", "payment_method": "cash",
        "till_session_id": world.theirs.session.stream_id, "batch_no": "000001", "trace_no": "000901"}),
        headers=world.headers("terminal"))

    assert_problem(response, 403, "forbidden")


def test_a_terminal_cannot_append_to_another_terminals_till_session(world: World) -> None:
    version = _session_version(world, world.theirs)

    response = world.client.post(f"/v1/till-sessions/{world.theirs.session.stream_id}/events",
                                 json=_append_body(version, {"type": "CashCounted", "counted_minor": 1}),
                                 headers=world.headers("terminal"))

    assert_problem(response, 403, "forbidden")
    assert _session_version(world, world.theirs) == version


def test_a_terminal_cannot_read_another_terminals_streams_or_registration(world: World) -> None:
    theirs = [f"/v1/transactions/{world.their_sale.stream_id}", f"/v1/transactions/{world.their_sale.stream_id}/events",
              f"/v1/till-sessions/{world.theirs.session.stream_id}",
              f"/v1/till-sessions/{world.theirs.session.stream_id}/events", f"/v1/terminals/{world.theirs.terminal_id}"]

    mine = {url: world.client.get(url, headers=world.headers("terminal")) for url in theirs}
    own = {url: world.client.get(url, headers=world.headers("other terminal")) for url in theirs}

    assert {url: (r.status_code, r.json()["code"]) for url, r in mine.items()} == {
        url: (403, "forbidden") for url in theirs}
    assert all(r.headers["content-type"].startswith(PROBLEM) for r in mine.values())
    assert {url: r.status_code for url, r in own.items()} == {url: 200 for url in theirs}


def test_a_terminal_token_cannot_be_issued_without_its_terminal(client: TestClient, admin_token: str) -> None:
    response = client.post("/v1/tokens", json={"role": "terminal"}, headers={"Authorization": f"Bearer {admin_token}"})

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)


# ---- tokens at rest -----------------------------------------------------------------------------------
def test_tokens_are_stored_only_as_their_hashes(world: World, settings: Settings) -> None:
    text = stored_text(settings)

    for who, token in world.tokens.items():
        digest = hashlib.sha256(token.encode()).hexdigest()
        assert digest in text, f"the {who} token's hash should be stored"  # the scan does see the store
        found = token in text or token.removeprefix("tl_") in text
        assert not found, f"the raw {who} token is in the store"
