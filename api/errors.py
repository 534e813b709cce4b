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


# The answer every error shares, declared once in the OpenAPI document. Some codes add fields of their
# own (``current_version``, ``field``, ``errors``, ``checks``): the object stays open to them.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem", "type": "object", "additionalProperties": True,
    "description": "RFC 9457 problem details; `code` is stable, `detail` is for people.",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599}, "code": {"type": "string"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "loc": {"type": "array", "items": {"type": "string"}}, "msg": {"type": "string"},
            "type": {"type": "string"}}}}}}

# What any /v1/ route may answer besides its own responses (a route adds others, e.g. 502/504 from the host).
API_PROBLEMS: dict[int, str] = {
    400: "The body could not be read (problem+json)",
    401: "No valid bearer token (problem+json)",
    403: "This token's role or terminal may not do this (problem+json)",
    404: "No such resource (problem+json)",
    409: "It conflicts with what is recorded (problem+json)",
    422: "The request or a rule refused it (problem+json with a stable code)",
    503: "The store, the acquirer host or the view cannot answer now; retry (problem+json)",
}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare the problem+json answers in an OpenAPI document (in place): the shared Problem schema,
    the statuses every API route may answer, and problem+json as the content of every 4xx/5xx."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape, which we never send
        components.pop(unused, None)
    content = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if path.startswith("/v1/"):
                for status, description in API_PROBLEMS.items():
                    responses.setdefault(str(status), {"description": description})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = content
    return schema


def install_error_handlers(app: FastAPI) -> None:
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

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
