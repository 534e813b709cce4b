"""Hostile input over the whole API: schemathesis over the service's own OpenAPI document, once per role.

No case may get a 5xx, and every answer must be what the document says (status, content type, headers,
body schema); a schema-invalid request must be refused. The app runs in process (starlette's TestClient,
lifespan and all) over a real store, SQLite and PostgreSQL, with the acquirer host simulator on
127.0.0.1 so the host routes reach their handlers. Each role has a valid token (the terminal's bound to
a registered terminal that signed on, its till open), so requests get past 401 into the handlers, and
two positive cases in three name real resources (the terminal, its till session, a cash and a card sale)
in their path, so they get past 404 too. The view follows the log (embedded projection), so a
``wait_for_position`` the log has reached is met.

Hostile values are mixed in: strings and integers are drawn now and then from HOSTILE_TEXT and
HOSTILE_INT (schemathesis' fuzzing dictionaries), and a sweep puts each of SWEEP_TEXT / SWEEP_INT into
each query parameter in turn, the rest generated: query parameters reach the view's SQL as they are.

Bounded and reproducible: ``MAX_EXAMPLES`` positive and as many negative cases per operation and role,
``SWEEP_EXAMPLES`` per swept value; derandomized (the same cases on every run), no shrinking, no example
database.

``positive_data_acceptance`` is left out on purpose: the ledger's rules refuse many schema-valid values
with a 422 and a stable code (15-digit merchant numbers, ISO 4217 currencies, the terminal's amount
limits, the PCI guard on every text field); the schema does not, and need not, carry them all.

What the fuzzing found is pinned by the regular tests at the end.
"""

from __future__ import annotations

import copy
import importlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks
from starlette.testclient import TestClient

from adapters.acquirer_simulator import AcquirerSimulator, SimulatorThread
from adapters.settings import Settings
from api.app import build_services
from api.services import Services
from tests.api.test_bad_input import assert_not_echoed, assert_problem
from tests.conftest import SteppingClock, fast_hasher
from tests.host_counter import HostTill, test_pan

# Per operation, role and generation mode. PostgreSQL runs fewer: the handlers are the same, only what
# the store refuses differs (a NUL in text, an integer past 64 bits).
MAX_EXAMPLES = {"sqlite": 20, "postgres": 10}
ROLES = ("admin", "accountant", "dispute", "terminal")
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance, checks.negative_data_rejection]
# Besides what hypothesis makes up, strings and integers are drawn from these now and then: values that
# break services like this one (a NUL, which PostgreSQL cannot store; card data, which the PCI guard must
# refuse without echoing it; numbers past 64 bits, which no SQL integer holds; markup, bidi and 4-byte
# characters). No schemathesis.toml is looked for: this configuration is the whole of it.
HOSTILE_TEXT = ["\x00", "a\x00b", "9" * 40, test_pan(42), f";{test_pan(42)}=30122010000000000000?",
                "' OR '1'='1", "<script>alert(1)</script>", "\u202e1234", "𠜎𠜱", " ", "../../etc/passwd"]
HOSTILE_INT = [2**63 - 1, 2**63, 2**64, -(2**63) - 1, -1, 0, 2**53 + 1]
# And a sweep: each query parameter in turn gets each of these (the rest generated), SWEEP_EXAMPLES times.
# Query parameters go to the view's SQL as they are; bodies pass the event guard first.
SWEEP_TEXT = ["\x00", "a\x00b", test_pan(42), "9" * 40]
SWEEP_INT = [2**63 - 1, 2**63, 2**64, -(2**63) - 1]
SWEEP_EXAMPLES = 3
CONFIG = schemathesis.Config.from_dict({
    "dictionaries": {"hostile-text": {"values": HOSTILE_TEXT}, "hostile-int": {"values": HOSTILE_INT}},
    "generation": {"dictionaries": {"string": {"dictionary": "hostile-text", "probability": 0.2},
                                    "integer": {"dictionary": "hostile-int", "probability": 0.2}}}})


# What schemathesis replaces in Hypothesis, for the whole process, once it builds its first strategy
# (generation/hypothesis/__init__.py: setup). Put back after this module: the suite's other property tests
# must print their falsifying examples and draw from Hypothesis' own buffer size.
HYPOTHESIS_PATCHED = [("hypothesis.core", "RepresentationPrinter"), ("hypothesis.core", "BUFFER_SIZE"),
                      ("hypothesis.internal.conjecture.engine", "BUFFER_SIZE"),
                      ("hypothesis.strategies._internal.collections", "BUFFER_SIZE"),
                      ("hypothesis.strategies._internal.core", "is_first_param_referenced_in_function"),
                      ("hypothesis.internal.entropy", "register_random")]


@pytest.fixture(scope="module", autouse=True)
def hypothesis_left_as_found() -> Iterator[None]:
    found = [(module, name, getattr(importlib.import_module(module), name)) for module, name in HYPOTHESIS_PATCHED]
    yield
    for module, name, value in found:
        setattr(importlib.import_module(module), name, value)


def fuzz_settings(max_examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples, derandomize=True, database=None, deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found, with its curl
        # The append bodies are large unions (23 event types): generating them can be slow, and schemathesis
        # filters what it generates. Neither says anything about the service under test.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "host-files").mkdir()
    sim = AcquirerSimulator(tmp_path / "host-journal.sqlite", settlement_dir=tmp_path / "host-files")
    with SimulatorThread(sim) as port:
        yield port
    sim.close()


@pytest.fixture
def services(settings: Settings, simulator: int, clock: SteppingClock) -> Iterator[Services]:
    host = settings.model_copy(update={
        "acquirer_url": f"127.0.0.1:{simulator}", "acquirer_timeout_s": 1.0, "acquirer_connect_timeout_s": 1.0,
        "reversal_scan_s": 0.3, "reversal_retry_max_s": 0.4, "embedded_projections": True})
    built = build_services(host, clock=clock, hasher=fast_hasher())
    try:
        yield built
    finally:
        built.close()


@dataclass
class Known:
    """Real resources in the store, by the path parameter that names them."""

    ids: dict[str, list[str]]

    def substitute(self, case: schemathesis.Case, pick: int) -> None:
        """Put the ``pick``-th known id (0: keep the generated one) into each path parameter we know."""
        if not pick:
            return
        for name in case.path_parameters or {}:
            choices = self.ids.get(name)
            if choices:
                case.path_parameters[name] = choices[(pick - 1) % len(choices)]  # type: ignore[index]


@pytest.fixture
def store(client: TestClient, admin_token: str) -> tuple[dict[str, str], Known]:
    """A token per role, and a terminal that signed on, opened its till and sold once for cash, once by card."""
    till = HostTill(client, admin_token).register().open()
    till.sign_on()
    cash = till.cash_sale(1_200, 2_000)
    card, answer = till.sale_through_host(12_345, test_pan(1))
    assert answer["outcome"] == "authorized", answer
    tokens = {"admin": admin_token, "terminal": till.token}
    for role in ("accountant", "dispute"):
        response = client.post("/v1/tokens", json={"role": role}, headers={"Authorization": f"Bearer {admin_token}"})
        assert response.status_code == 201, response.text
        tokens[role] = response.json()["token"]
    # Never a token id: a DELETE /v1/tokens/{id} would revoke a token the run goes on with.
    return tokens, Known({"terminal_id": [till.terminal_id], "till_session_id": [till.session.stream_id],
                          "transaction_id": [cash.stream_id, card.stream_id]})


def send(client: TestClient, case: schemathesis.Case, token: str) -> tuple[Any, dict[str, str] | None]:
    """The case over the TestClient (httpx2), and the headers sent: schemathesis gives requests-style arguments."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url), headers={"Authorization": f"Bearer {token}"})
    for unused in ("timeout", "allow_redirects", "verify"):
        kwargs.pop(unused, None)
    cookies = kwargs.pop("cookies", None)
    assert not cookies, "the API declares no cookies"
    data = kwargs.pop("data", None)
    if data is not None:  # a raw body: text/csv, or JSON sent as it is
        kwargs["content"] = data
    return client.request(kwargs.pop("method"), kwargs.pop("url"), **kwargs), kwargs.get("headers")


def hostile_values(schema: dict[str, Any]) -> list[Any]:
    """What the sweep puts into a query parameter of this schema."""
    kinds = {schema.get("type")} | {option.get("type") for option in schema.get("anyOf", [])}
    return (SWEEP_INT if "integer" in kinds else []) + (SWEEP_TEXT if "string" in kinds else [])


def fuzz(client: TestClient, token: str, known: Known, max_examples: int) -> tuple[dict[str, str], int]:
    """Every operation in both generation modes, then the sweep of its query parameters: the failures by
    operation and what was fuzzed, and how many requests were sent."""
    schema = schemathesis.openapi.from_dict(copy.deepcopy(client.app.openapi()), config=CONFIG)  # type: ignore[attr-defined]
    failures: dict[str, str] = {}
    sent = 0

    def run(strategy: st.SearchStrategy[schemathesis.Case], label: str, examples: int, substitute: bool) -> None:
        @fuzz_settings(examples)
        @given(case=strategy, pick=st.integers(0, 2))
        def exchange(case: schemathesis.Case, pick: int) -> None:
            nonlocal sent
            if substitute:
                known.substitute(case, pick)
            response, headers = send(client, case, token)
            sent += 1
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            exchange()
        except hypothesis.errors.Unsatisfiable:
            pass  # nothing in this operation can be made invalid (no parameters, no body)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, all reported at the end
            failures[label] = str(exc)[:3_000]

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # A negative case may have made its path invalid on purpose: only positive ones get real ids.
            run(operation.as_strategy(generation_mode=mode), f"{operation.label} ({mode.value})", max_examples,
                substitute=mode is GenerationMode.POSITIVE)
        for parameter in operation.query:
            for value in hostile_values(parameter.definition.get("schema", {})):
                run(operation.as_strategy(query={parameter.name: value}),
                    f"{operation.label} ({parameter.name}={value!r:.24})", SWEEP_EXAMPLES, substitute=True)
    return failures, sent


@pytest.mark.parametrize("role", ROLES)
def test_no_case_gets_a_5xx_or_an_answer_the_openapi_document_does_not_describe(
        client: TestClient, store: tuple[dict[str, str], Known], settings: Settings, role: str) -> None:
    tokens, known = store
    started = time.monotonic()

    failures, sent = fuzz(client, tokens[role], known, MAX_EXAMPLES["postgres" if settings.uses_postgres else "sqlite"])

    elapsed = time.monotonic() - started
    assert sent > 0
    assert not failures, (f"{len(failures)} operation(s) failed for the {role} role ({sent} requests, "
                          f"{elapsed:.1f} s):\n\n" + "\n\n".join(f"== {k}\n{v}" for k, v in failures.items()))


def test_every_error_answer_in_the_document_is_problem_json_with_one_shared_schema(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    errors = {(path, method, status): response for path, operations in document["paths"].items()
              for method, operation in operations.items() for status, response in operation["responses"].items()
              if int(status) >= 400}

    assert errors and {tuple(r["content"]) for r in errors.values()} == {("application/problem+json",)}
    assert {r["content"]["application/problem+json"]["schema"]["$ref"] for r in errors.values()} == {
        "#/components/schemas/Problem"}
    api_routes = {(path, method) for path, method, _ in errors if path.startswith("/v1/")}
    assert all((path, method, status) in errors for path, method in api_routes
               for status in ("400", "401", "403", "404", "409", "422", "503"))
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's 422 body, never sent


# ---- what the fuzzing found ------------------------------------------------------------------------------
@pytest.fixture
def staff(client: TestClient, admin_token: str) -> dict[str, str]:
    response = client.post("/v1/tokens", json={"role": "dispute"}, headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


READS_THAT_WAIT = ["/v1/reports/day?date=2026-11-24", "/v1/reports/z?date=2026-11-24", "/v1/disputes/search?rrn=1",
                   "/v1/settlements/00000000-0000-4000-8000-000000000000/matches",
                   "/v1/disputes/00000000-0000-4000-8000-000000000000/evidence"]


def answers(responses: dict[Any, Any]) -> dict[Any, tuple[int, str]]:
    return {case: (r.status_code, r.json().get("code", "")) for case, r in responses.items()}


def test_a_wait_for_position_past_the_logs_head_is_refused_at_once_instead_of_a_503_after_5_s(
        client: TestClient, admin_token: str) -> None:
    # It was a 503 projection_behind ("retry shortly") after waiting 5 s, for a position no append answered.
    admin = {"Authorization": f"Bearer {admin_token}"}
    started = time.monotonic()

    responses = {path: client.get(f"{path}{'&' if '?' in path else '?'}wait_for_position=7952", headers=admin)
                 for path in READS_THAT_WAIT}

    assert answers(responses) == {path: (422, "invalid_input") for path in READS_THAT_WAIT}
    assert {r.json()["field"] for r in responses.values()} == {"wait_for_position"}
    assert time.monotonic() - started < 3.0


def test_a_search_amount_past_64_bits_is_refused_instead_of_a_500(client: TestClient, staff: dict[str, str]) -> None:
    # SQLite raised OverflowError binding 2**63: a 500.
    search = "/v1/disputes/search?last4=1234&date=2026-11-24&amount_minor="

    assert_problem(client.get(search + str(2**63), headers=staff), 422, "invalid_request")
    assert_problem(client.get(search + str(2**64 + 12_345), headers=staff), 422, "invalid_request")
    assert client.get(search + str(2**63 - 1), headers=staff).json() == {"matches": [], "truncated": False}


def test_a_nul_in_search_or_report_text_is_refused_instead_of_a_500(
        client: TestClient, admin_token: str, staff: dict[str, str]) -> None:
    # PostgreSQL refuses a NUL in a text parameter: these were 500s there.
    admin = {"Authorization": f"Bearer {admin_token}"}
    pan = test_pan(9)
    responses = {
        "rrn": client.get("/v1/disputes/search?rrn=12%00", headers=staff),
        "auth code": client.get("/v1/disputes/search?auth_code=%00", headers=staff),
        "terminal + trace": client.get("/v1/disputes/search?terminal_no=1%00&trace_no=000001", headers=staff),
        "day report store": client.get(f"/v1/reports/day?date=2026-11-24&store_id=main%00{pan}", headers=admin),
        "z reports store": client.get(f"/v1/reports/z?date=2026-11-24&store_id=main%00{pan}", headers=admin),
    }

    assert answers(responses) == {case: (422, "invalid_request") for case in responses}
    for response in responses.values():
        assert_not_echoed(response, pan)


def test_a_business_day_that_is_not_yyyy_mm_dd_is_refused_not_read_as_a_unix_time(
        client: TestClient, admin_token: str, staff: dict[str, str]) -> None:
    # "date=0" was the report of 1970-01-01: pydantic reads a number as a Unix time.
    admin = {"Authorization": f"Bearer {admin_token}"}
    days = ["0", "0.0", "1764000000", "2026-11-24T00:00", "24.11.2026", "2026-1-2"]
    responses = {(route, day): client.get(path + day, headers=headers) for day in days for route, path, headers in (
        ("day report", "/v1/reports/day?date=", admin), ("z reports", "/v1/reports/z?date=", admin),
        ("search", "/v1/disputes/search?last4=1234&date=", staff))}

    assert answers(responses) == {case: (422, "invalid_request") for case in responses}
    assert client.get("/v1/reports/z?date=2026-11-24", headers=admin).status_code == 200
