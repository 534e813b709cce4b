"""The operator of the service: register terminals and their parameters, enroll operators, issue tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, new_token, require
from api.schemas import OperatorEnrollment, TerminalChange, TerminalRegistration, TokenOut, TokenRequest
from api.services import Services
from domain.errors import Forbidden
from domain.ledger import Ledger
from domain.stamp import Stamp
from domain.terminal import Terminal

router = APIRouter(tags=["admin"])
admin = require("admin")
admin_or_terminal = require("admin", "terminal")


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _stamp(services: Services) -> Stamp:
    return Stamp(None, None, None, services.clock.now())


def terminal_out(terminal: Terminal) -> dict[str, Any]:
    return {"terminal_id": str(terminal.id), "version": terminal.version, "merchant_name": terminal.merchant_name,
            "merchant_no": terminal.merchant_no, "terminal_no": terminal.terminal_no,
            "parameters": terminal.parameters, "batch_no": terminal.batch_label,
            "till_session_id": str(terminal.till_session_id) if terminal.till_session_id else None,
            "operators": sorted(terminal.operators),
            "blocked_by": [str(t) for t in terminal.blocked_by], "transactions_in_batch": len(terminal.traces)}


@router.post("/v1/terminals", status_code=201, summary="Register a terminal with its parameters")
async def register_terminal(body: TerminalRegistration, request: Request,
                            _: Principal = Depends(admin)) -> dict[str, Any]:
    services = _services(request)
    params = body.given()
    for key in ("merchant_name", "merchant_no", "terminal_no"):
        params.pop(key)
    terminal = await services.executor.submit(Ledger.register_terminal(
        _stamp(services), body.merchant_name, body.merchant_no, body.terminal_no, params))
    return terminal_out(terminal)


@router.patch("/v1/terminals/{terminal_id}", summary="Change some of a terminal's parameters")
async def change_terminal(terminal_id: UUID, body: TerminalChange, request: Request,
                          _: Principal = Depends(admin)) -> dict[str, Any]:
    services = _services(request)
    terminal = await services.executor.submit(
        Ledger.change_terminal_parameters(_stamp(services), terminal_id, body.given()))
    return terminal_out(terminal)


@router.get("/v1/terminals/{terminal_id}", summary="A terminal's registration, parameters and open batch")
async def get_terminal(terminal_id: UUID, request: Request,
                       principal: Principal = Depends(admin_or_terminal)) -> dict[str, Any]:
    if principal.role == "terminal" and principal.terminal_id != terminal_id:
        raise Forbidden("a terminal reads only its own registration")
    terminal = await run_in_threadpool(_services(request).ledger.load, terminal_id, Terminal)
    return terminal_out(terminal)


@router.post("/v1/terminals/{terminal_id}/operators", status_code=201, summary="Enroll an operator (收银员)")
async def enroll_operator(terminal_id: UUID, body: OperatorEnrollment, request: Request,
                          _: Principal = Depends(admin)) -> dict[str, Any]:
    services = _services(request)
    password_hash = await run_in_threadpool(services.hasher.hash, body.password)
    terminal = await services.executor.submit(Ledger.enroll_operator(
        _stamp(services), terminal_id, body.operator_no, body.name, password_hash))
    return {"terminal_id": str(terminal.id), "operator_no": body.operator_no, "name": body.name}


@router.post("/v1/tokens", status_code=201, response_model=TokenOut, summary="Issue a bearer token (shown once)")
async def issue_token(body: TokenRequest, request: Request, _: Principal = Depends(admin)) -> TokenOut:
    services = _services(request)
    token = new_token()
    stamp = _stamp(services)
    expires_at = stamp.server_time + timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
    issued = await services.executor.submit(
        Ledger.issue_token(stamp, token, body.role, body.terminal_id, body.label, expires_at))
    return TokenOut(token_id=issued.id, token=token, role=issued.role, terminal_id=issued.bound_terminal_id,
                    label=issued.label, expires_at=issued.expires_at)


@router.delete("/v1/tokens/{token_id}", status_code=204, summary="Revoke a token")
async def revoke_token(token_id: UUID, request: Request, _: Principal = Depends(admin)) -> Response:
    services = _services(request)
    await services.executor.submit(Ledger.revoke_token(_stamp(services), token_id))
    services.tokens.forget(token_id)
    return Response(status_code=204)
