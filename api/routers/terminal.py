"""The terminal's API: append till and transaction events; read them back with the chain checked."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, authenticate, require
from api.raw_body import body_schema, json_response, parse_body
from api.schemas import AppendOut, Envelope, TillAppend, TransactionAppend
from api.services import Services
from domain.append import AppendRequest, AppendResult
from domain.errors import AuthorizedByHost, Forbidden
from domain.ledger import Ledger
from domain.stamp import Stamp
from domain.till import TillSession
from domain.till_actions import PASSWORD_VERIFIED
from domain.transaction import Transaction
from api.transaction_view import transaction_view

router = APIRouter(tags=["terminal"])
TERMINAL = ("terminal",)
readers = require("terminal", "accountant", "dispute", "admin")


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _request(services: Services, principal: Principal, stream_id: UUID, body: Envelope, event: Any) -> AppendRequest:
    fields = event.model_dump(by_alias=True)
    event_type = fields.pop("type")
    stamp = Stamp(principal.terminal_id, body.operator_no, body.device_time, services.clock.now())
    return AppendRequest(stream_id, body.expected_version, event_type, fields, stamp)


# With an acquirer host configured these come from the host's answers, never from a terminal.
HOST_RECORDED = frozenset({"AuthorizationRequested", "Authorized", "Declined", "OutcomeUnknown", "Reversed",
                           "BatchSettled"})


def _refuse_host_events(services: Services, event_type: str) -> None:
    if services.authorizer is not None and event_type in HOST_RECORDED:
        raise AuthorizedByHost(f"{event_type} is recorded by the service from the acquirer host's answer; use "
                               "POST /v1/transactions/{id}/authorize or /v1/till-sessions/{id}/settle",
                               event_type=event_type)


def _answer(result: AppendResult) -> Response:
    return json_response({"stream_id": str(result.stream_id), "version": result.version, "type": result.event_type,
                          "recorded_at": result.recorded_at.isoformat(), "hash": result.hash,
                          "position": result.position, "replayed": result.replayed},
                         200 if result.replayed else 201)


_APPEND_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": AppendOut, "description": "Identical retry: the recorded result"},
    409: {"description": "A different event is recorded at that version (problem+json with current_version)"},
    422: {"description": "A rule or a value refused it (problem+json with a stable code)"},
}


# The append routes take the raw body (api/raw_body.py): they carry almost all of the traffic.
@router.post("/v1/transactions/{transaction_id}/events", response_model=AppendOut, status_code=201,
             responses=_APPEND_RESPONSES, openapi_extra=body_schema(TransactionAppend),
             summary="Append one till action to a transaction (idempotent by expected_version)")
async def append_transaction_event(transaction_id: UUID, request: Request) -> Response:
    principal = await authenticate(request, TERMINAL)
    body = parse_body(TransactionAppend, await request.body())
    services = _services(request)
    append = _request(services, principal, transaction_id, body, body.event)
    _refuse_host_events(services, append.event_type)
    result = await services.executor.submit(Ledger.append_transaction_event(append))
    return _answer(result)


@router.post("/v1/till-sessions/{till_session_id}/events", response_model=AppendOut, status_code=201,
             responses=_APPEND_RESPONSES, openapi_extra=body_schema(TillAppend),
             summary="Append one event to a till session (open, sign in/out, count, settle, close)")
async def append_till_event(till_session_id: UUID, request: Request) -> Response:
    principal = await authenticate(request, TERMINAL)
    body = parse_body(TillAppend, await request.body())
    services = _services(request)
    append = _request(services, principal, till_session_id, body, body.event)
    _refuse_host_events(services, append.event_type)
    if append.event_type == "OperatorSignedIn":
        fields = dict(append.fields)
        password = fields.pop("password")
        if fields["operator_no"] != body.operator_no:
            raise Forbidden("operator_no in the envelope and the event must be the same operator")
        # argon2 is slow on purpose: check it here, off the single writer thread.
        await run_in_threadpool(services.ledger.verify_operator, principal.terminal_id, fields["operator_no"],
                                password, services.hasher)
        fields[PASSWORD_VERIFIED] = True
        append = AppendRequest(append.stream_id, append.expected_version, append.event_type, fields, append.stamp)
    result = await services.executor.submit(Ledger.append_till_event(append))
    return _answer(result)


def _check_reader(principal: Principal, owner: UUID | None) -> None:
    if principal.role == "terminal" and principal.terminal_id != owner:
        raise Forbidden("a terminal reads only its own streams")


@router.get("/v1/transactions/{transaction_id}", summary="A transaction's current state")
async def get_transaction(transaction_id: UUID, request: Request,
                          principal: Principal = Depends(readers)) -> dict[str, Any]:
    txn = await run_in_threadpool(_services(request).ledger.load, transaction_id, Transaction)
    _check_reader(principal, txn.txn_terminal_id)
    return transaction_view(txn)


@router.get("/v1/transactions/{transaction_id}/events", summary="A transaction's full history, chain checked")
async def get_transaction_events(transaction_id: UUID, request: Request,
                                 principal: Principal = Depends(readers)) -> dict[str, Any]:
    return await _history(request, principal, transaction_id, Transaction)


@router.get("/v1/till-sessions/{till_session_id}", summary="A till session's current state")
async def get_till_session(till_session_id: UUID, request: Request,
                           principal: Principal = Depends(readers)) -> dict[str, Any]:
    till = await run_in_threadpool(_services(request).ledger.load, till_session_id, TillSession)
    _check_reader(principal, till.till_terminal_id)
    return {"till_session_id": str(till.id), "version": till.version, "terminal_id": str(till.till_terminal_id),
            "is_open": till.is_open, "operator_no": till.operator, "float_minor": till.float_minor,
            "currency": till.currency, "self_check": till.self_check, "counted_minor": till.counted_minor,
            "settled_batches": till.settled_batches}


@router.get("/v1/till-sessions/{till_session_id}/events", summary="A till session's full history, chain checked")
async def get_till_events(till_session_id: UUID, request: Request,
                          principal: Principal = Depends(readers)) -> dict[str, Any]:
    return await _history(request, principal, till_session_id, TillSession)


async def _history(request: Request, principal: Principal, stream_id: UUID, cls: type[Any]) -> dict[str, Any]:
    records, check = await run_in_threadpool(_services(request).ledger.history, stream_id, cls)
    _check_reader(principal, _owner(records[0]))
    return {"stream_id": str(stream_id), "version": len(records), "chain_valid": check.valid,
            "chain_broken_at_version": check.broken_at_version, "chain_problem": check.reason,
            "events": [_wire_event(r) for r in records]}


def _owner(first: dict[str, Any]) -> UUID | None:
    return UUID(first["terminal_id"]) if first.get("terminal_id") else None


_ENVELOPE_KEYS = ("topic", "originator_id", "originator_version", "timestamp", "terminal_id", "operator_no",
                  "device_time", "prev_hash", "hash")


def _wire_event(record: dict[str, Any]) -> dict[str, Any]:
    return {"version": record["originator_version"], "type": record["topic"].rsplit(".", 1)[-1],
            "recorded_at": record["timestamp"], "device_time": record["device_time"],
            "terminal_id": record["terminal_id"], "operator_no": record["operator_no"],
            "prev_hash": record["prev_hash"], "hash": record["hash"], "topic": record["topic"],
            "data": {k: v for k, v in record.items() if k not in _ENVELOPE_KEYS}}
