"""The single mapping from errors to HTTP: problem+json (RFC 9457) with a stable ``code``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.json_logging import REQUEST_ID_HEADER, request_id
from adapters.metrics import record_error
from domain import errors as e
from domain.acquirer import AcquirerNoReply, AcquirerNotConfigured, AcquirerRefused, AcquirerUnavailable

log = logging.getLogger(__name__)

STATUS: dict[type[e.LedgerError], int] = {
    e.ProjectionBehind: 503,
    e.InvalidInput: 422,
    e.RuleViolation: 422,
    e.NotAuthenticated: 401,
    e.Forbidden: 403,
    e.OperatorCredentialsInvalid: 403,
    e.StaffCredentialsInvalid: 401,
    e.NotFound: 404,
    e.Conflict: 409,
    e.StoreUnavailable: 503,
    AcquirerUnavailable: 503,
    AcquirerNotConfigured: 503,
    AcquirerNoReply: 504,
    AcquirerRefused: 502,
}

PROBLEM = "application/problem+json"


def status_of(error: e.LedgerError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": f"https://till-ledger.dev/problems/{code}", "title": title, "status": status,
            "code": code, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    record_error(code)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(e.LedgerError)
    async def ledger_error(request: Request, exc: e.LedgerError) -> JSONResponse:
        return problem(status_of(exc), exc.code, exc.title, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Say where and why, never echo what was sent (it could be card data): not the value, not an
        # unknown key in the location, not an unknown discriminator in the message.
        errors = []
        for err in exc.errors():
            kind = err.get("type", "")
            loc = [str(part) for part in err.get("loc", ())]
            if kind == "extra_forbidden" and loc:
                loc[-1] = "<unexpected field>"
            message = err.get("msg", "")
            if kind in ("union_tag_invalid", "literal_error", "enum"):
                message = "not one of the allowed values (see the API schema)"
            errors.append({"loc": loc, "msg": message, "type": kind})
        return problem(422, "invalid_request", "Invalid request", "the request body or parameters are invalid",
                       errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s: %s", request.method, request.url.path, exc.__class__.__name__,
                  exc_info=exc)
        response = problem(500, "internal_error", "Internal error", "an unexpected error occurred; it was logged")
        # This answer is sent outside the request-id middleware: give the caller the id to quote.
        if (current := request_id.get()) is not None:
            response.headers[REQUEST_ID_HEADER] = current
        return response
