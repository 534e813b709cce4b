"""The terminal's requests that go through the acquirer host: sign-on, authorize, settle."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.auth import authenticate
from api.raw_body import body_schema, json_response, parse_body
from api.schemas import AuthorizeOut, AuthorizeRequest, Envelope, SettleRequest, SignOnRequestBody
from api.services import Services
from domain.acquirer import AcquirerNotConfigured, CardData
from domain.authorization import Authorizer
from domain.errors import Forbidden
from domain.stamp import Stamp, check_operator_no
from domain.terminal import Terminal
from domain.till import TillSession

router = APIRouter(tags=["acquirer host"])
TERMINAL = ("terminal",)
E = TypeVar("E", bound=Envelope)


def _authorizer(request: Request) -> tuple[Services, Authorizer]:
    services: Services = request.app.state.services
    if services.authorizer is None:
        raise AcquirerNotConfigured("this service has no acquirer host (TILL_ACQUIRER_URL is not set); "
                                    "record the outcome from your payment terminal as an event instead")
    return services, services.authorizer


async def _enveloped(request: Request, model: type[E]) -> tuple[Services, Authorizer, E, Stamp]:
    """A terminal's stream request: its principal, body and the stamp the recorded events carry."""
    principal = await authenticate(request, TERMINAL)
    body = parse_body(model, await request.body())
    services, authorizer = _authorizer(request)
    return services, authorizer, body, Stamp(principal.terminal_id, body.operator_no, body.device_time,
                                             services.clock.now())


@router.post("/v1/terminals/{terminal_id}/sign-on", openapi_extra=body_schema(SignOnRequestBody),
             summary="Sign on (签到) with the acquirer host for today; opens the terminal's batch",
             responses={502: {"description": "The host refused (acquirer_refused)"},
                        503: {"description": "Host unreachable (acquirer_unavailable)"},
                        504: {"description": "No reply in time (acquirer_no_reply); sign on again"}})
async def sign_on(terminal_id: UUID, request: Request) -> Response:
    principal = await authenticate(request, TERMINAL)
    if principal.terminal_id != terminal_id:
        raise Forbidden("a terminal signs on for itself only")
    body = parse_body(SignOnRequestBody, await request.body())
    services, authorizer = _authorizer(request)
    terminal = await authorizer.sign_on(terminal_id, check_operator_no(body.operator_no))
    return json_response({"terminal_id": str(terminal.id), "batch_no": terminal.batch_label,
                          "signed_on_day": terminal.signed_on_day, "version": terminal.version}, 200)


@router.post("/v1/transactions/{transaction_id}/authorize", response_model=AuthorizeOut,
             openapi_extra=body_schema(AuthorizeRequest),
             summary="Send the transaction to the acquirer host and record its answer",
             description=(
                 "Records AuthorizationRequested, sends the request (the card number goes to the host only; "
                 "it is never stored or logged) and records the answer. `outcome` is `authorized` or "
                 "`declined`; `unknown` when no reply came in time: the service then reverses it (冲正) on "
                 "its own and the till takes no card sale until GET /v1/transactions/{id} shows "
                 "`reversed`. 503 `acquirer_unavailable`: the host could not be reached, nothing was sent "
                 "or charged; ask again or take another payment. A retry with the same expected_version "
                 "answers the recorded outcome without sending again."))
async def authorize(transaction_id: UUID, request: Request) -> Response:
    services, authorizer, body, stamp = await _enveloped(request, AuthorizeRequest)
    outcome = await authorizer.authorize(transaction_id, body.expected_version, stamp,
                                         CardData(body.card.pan, body.card.expiry))
    response = json_response({
        "transaction_id": str(outcome.transaction_id), "version": outcome.version, "outcome": outcome.outcome,
        "response_code": outcome.response_code, "auth_code": outcome.auth_code, "rrn": outcome.rrn,
        "reason": outcome.reason, "reversal_pending": outcome.outcome == "unknown", "replayed": outcome.replayed},
        200)
    if outcome.host_ms is not None:  # lets a client (and bench/authorize.py) tell host time from ours
        response.headers["Server-Timing"] = f"host;dur={outcome.host_ms:.3f}"
    return response


@router.post("/v1/till-sessions/{till_session_id}/settle", openapi_extra=body_schema(SettleRequest),
             responses={502: {"description": "The host refused (acquirer_refused); the batch stays open"},
                        504: {"description": "No reply in time (acquirer_no_reply); nothing recorded: settle again"}},
             summary="Batch settlement (结算): send the batch totals to the host, record its answer, close the batch",
             description=(
                 "The service totals the batch from the ledger (debits: approved sales not voided or reversed; "
                 "credits: approved refunds), sends them, records BatchSettled and the host's answer "
                 "(balanced, or not with both totals), and opens the next batch. Refused while a transaction "
                 "is pending or in doubt (till_blocked)."))
async def settle(till_session_id: UUID, request: Request) -> Response:
    services, authorizer, body, stamp = await _enveloped(request, SettleRequest)
    result, _ = await authorizer.settle(till_session_id, body.expected_version, stamp, body.batch_no)
    terminal = await run_in_threadpool(_terminal_of, services, till_session_id)
    answer = getattr(terminal, "last_host_settlement", None)
    if answer is None or answer["batch_no"] != body.batch_no:
        answer = None  # a replay after later settlements: the till's history has it
    return json_response({"stream_id": str(result.stream_id), "version": result.version, "batch_no": body.batch_no,
                          "replayed": result.replayed, "host": answer, "open_batch_no": terminal.batch_label},
                         200 if result.replayed else 201)


def _terminal_of(services: Services, till_session_id: UUID) -> Terminal:
    till = services.ledger.load(till_session_id, TillSession)
    return services.ledger.load(till.till_terminal_id, Terminal)
