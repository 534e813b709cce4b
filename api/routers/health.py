"""Liveness, readiness and metrics: what the orchestrator's probes and the Prometheus scraper read.

None of these ask for a token: probes and scrapers carry none. ``/metrics`` tells nothing about
payments, but it belongs on a port or path only the scraper reaches (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Any

import psycopg
from eventsourcing.persistence import PersistenceError
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from adapters.metrics import ProjectionCollector, exposition
from api.errors import problem
from api.services import Services
from domain.errors import StoreUnavailable

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])

# What a store that is down or unreachable raises (the eventsourcing recorders wrap the drivers' errors).
STORE_ERRORS = (PersistenceError, psycopg.Error, sqlite3.Error, StoreUnavailable)


@dataclass(frozen=True)
class Reading:
    """The store's head and the projections' status, or in plain words what could not be read."""

    head: int | None = None
    projections: list[dict[str, Any]] | None = None
    failures: list[str] = field(default_factory=list)


class PositionProbe:
    """``read_positions`` in a background thread, at most one at a time, awaited for a bounded time.

    A PostgreSQL that does not answer keeps a read waiting for the driver's timeouts and retries
    (tens of seconds): the probe answers at its deadline instead, and while that read is still
    waiting, later probes wait on it too rather than start more threads that would wait as long.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.part = "the event store"  # what the pending read is waiting for, to name it at the deadline
        self._lock = threading.Lock()
        self._pending: concurrent.futures.Future[Reading] | None = None

    async def read(self) -> Reading:
        deadline = self.services.settings.readiness_timeout_s
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self._start()), deadline)
        except TimeoutError:
            return Reading(failures=[f"{self.part} did not answer within {deadline:g} s"])

    def read_positions(self) -> Reading:
        """Two cheap reads: the store's last notification id, then each projection's position."""
        self.part = "the event store"
        try:
            head = self.services.ledger.recorder.max_notification_id() or 0
        except STORE_ERRORS as exc:
            log.warning("readiness: the event store did not answer: %s: %s", type(exc).__name__, exc)
            return Reading(failures=[f"the event store did not answer ({type(exc).__name__})"])
        views = self.services.read_models
        if views is None:  # a process built without the read side has nothing more to check
            return Reading(head, [])
        self.part = "the projections' positions"
        try:
            rows = views.status()
        except STORE_ERRORS as exc:
            log.warning("readiness: the projections' positions could not be read: %s: %s", type(exc).__name__, exc)
            return Reading(head, failures=[f"the projections' positions could not be read ({type(exc).__name__})"])
        return Reading(head, rows)

    def _start(self) -> concurrent.futures.Future[Reading]:
        with self._lock:
            if self._pending is None or self._pending.done():
                pending: concurrent.futures.Future[Reading] = concurrent.futures.Future()
                pending.set_running_or_notify_cancel()  # so that a caller's timeout cannot cancel it for the others
                # A daemon thread, not the loop's executor: a read stuck on a dead server must not
                # hold up the server's shutdown, nor take a thread the routes need.
                threading.Thread(target=self._run, args=(pending,), name="position-probe", daemon=True).start()
                self._pending = pending
            return self._pending

    def _run(self, pending: concurrent.futures.Future[Reading]) -> None:
        try:
            pending.set_result(self.read_positions())
        except BaseException as exc:  # a defect: logged here (its caller may have stopped waiting) and re-raised there
            log.exception("readiness check failed unexpectedly")
            pending.set_exception(exc)


def _probe(request: Request) -> PositionProbe:
    state = request.app.state
    probe: PositionProbe | None = getattr(state, "position_probe", None)
    if probe is None:  # made on first use: one per app, shared by readiness and metrics
        probe = state.position_probe = PositionProbe(state.services)
    return probe


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The event store and the projections answer", responses={
    503: {"description": "Not ready: `code` is `not_ready`, `detail` says which part failed"}})
async def readyz(request: Request) -> JSONResponse:
    reading = await _probe(request).read()
    projections = "ok" if reading.projections is not None else "failed" if reading.head is not None else "not checked"
    checks = {"event_store": {"status": "ok" if reading.head is not None else "failed", "head": reading.head},
              "projections": {"status": projections, "items": reading.projections or []}}
    if reading.failures:
        return problem(503, "not_ready", "Not ready", "; ".join(reading.failures), checks=checks)
    # Lag alone does not make the service unready: appends still work, and every API process
    # leaving the load balancer because a view is behind would stop the tills too.
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", summary="Prometheus metrics (text exposition)", include_in_schema=False)
async def metrics(request: Request) -> Response:
    reading = await _probe(request).read()
    body, content_type = await run_in_threadpool(  # multiprocess mode reads every worker's files
        exposition, request.headers.get("accept"), ProjectionCollector(reading.head, reading.projections))
    return Response(body, media_type=content_type)
