"""No-op FastAPI app: the ceiling for the append benchmark.

It serves the same route as the real service, ``POST /v1/transactions/{transaction_id}/events``,
and does the work every HTTP request of the real service must do anyway -- routing, reading the
bearer token, validating the envelope with pydantic, serialising a reply of the same shape -- but
touches no database.  ``bench/append.py`` runs it with the same uvicorn settings and worker count
as the real service, so "group commit ÷ no-op" measures what the ledger itself costs.

Run: ``uvicorn bench.noop_app:app --host 127.0.0.1 --port 8001 --no-access-log --log-level warning``
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

app = FastAPI(title="till-ledger bench no-op", docs_url=None, redoc_url=None, openapi_url=None)

# A process-local counter stands in for the global notification position.
_positions = itertools.count(1)


class Envelope(BaseModel):
    """Same fields as the real append envelope; the event payload is validated only as an object
    with a string ``type`` (the real service's per-type models cost a little more)."""

    expected_version: int = Field(ge=0)
    operator_no: str | None = None
    device_time: datetime
    event: dict[str, Any]


class AppendResult(BaseModel):
    stream_id: uuid.UUID
    version: int
    type: str
    recorded_at: datetime
    hash: str
    position: int
    replayed: bool


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/transactions/{transaction_id}/events", status_code=201)
async def append(
    transaction_id: uuid.UUID,
    envelope: Envelope,
    authorization: str = Header(),
) -> AppendResult:
    if not authorization.startswith("Bearer "):
        raise HTTPException(status_code=401, detail="missing bearer token")
    event_type = envelope.event.get("type")
    if not isinstance(event_type, str):
        raise HTTPException(status_code=422, detail="event.type must be a string")
    return AppendResult(
        stream_id=transaction_id,
        version=envelope.expected_version + 1,
        type=event_type,
        recorded_at=datetime.now(UTC),
        # The real service returns a SHA-256 chain hash; hashing the token is the same amount of work
        # as hashing a small event and gives a reply of the same size.
        hash=hashlib.sha256(authorization.encode()).hexdigest(),
        position=next(_positions),
        replayed=False,
    )
