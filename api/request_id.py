"""Every request gets an id, answers with it, is counted, and leaves one access line in the log.

The id is the caller's ``X-Request-ID`` when it is a sane token (up to 64 of ``A-Z a-z 0-9 . _ -``),
so a terminal agent or a proxy can follow one request through its own logs and ours; otherwise a
new one. It sits in a context variable for the request's lifetime, so every line logged while
serving it carries it (``adapters.json_logging``).

A pure ASGI middleware rather than Starlette's BaseHTTPMiddleware: it adds a header and reads the
status on the way out without wrapping the body in another stream, which costs every append.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.json_logging import ACCESS_LOGGER, REQUEST_ID_HEADER, request_id
from adapters.metrics import record_request

access_log = logging.getLogger(ACCESS_LOGGER)
_SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEADER = REQUEST_ID_HEADER.lower().encode("latin-1")
# Probes and scrapes come every few seconds: counted, but logged only when they fail.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
UNMATCHED = "<unmatched>"  # the route label of a request no route took (404s), so paths cannot flood the metric


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == _HEADER:
            text = value.decode("latin-1")
            return text if _SANE.fullmatch(text) else None
    return None


class RequestIdMiddleware:
    """Request id in, ``X-Request-ID`` out, ``till_http_requests_total`` counted, one access line logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        current = _incoming_id(scope) or uuid.uuid4().hex
        token = request_id.set(current)
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = current
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # The id stays set: the server-error handler answers outside this middleware (api.errors)
            # and logs with it; this request's context ends there anyway.
            self._record(scope, status, time.perf_counter() - started)
            raise
        self._record(scope, status, time.perf_counter() - started)
        request_id.reset(token)

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or UNMATCHED
        record_request(scope["method"], route, status, seconds)
        if scope["path"] in QUIET_PATHS and status < 400 or not access_log.isEnabledFor(logging.INFO):
            return
        client = scope.get("client")
        # The path without its query string: a query may carry what a log must not (search terms).
        access_log.info("%s %s %d", scope["method"], scope["path"], status, extra={
            "method": scope["method"], "path": scope["path"], "status": status,
            "duration_ms": round(seconds * 1000, 2), "client": client[0] if client else None})
