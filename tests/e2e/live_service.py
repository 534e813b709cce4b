"""The ledger service on a real loopback socket (uvicorn in a thread), stoppable and restartable on
the same port: the agent talks real HTTP to it, and "the service is down" is a closed port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn

from api.app import create_app
from api.services import Services


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveService:
    """``make_services`` builds the service's object graph; each start builds it afresh (a restart)."""

    def __init__(self, make_services: Callable[[], Services]) -> None:
        self.make_services = make_services
        self.port = free_port()
        self.services: Services | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveService:
        self.services = self.make_services()
        config = uvicorn.Config(create_app(services=self.services), host="127.0.0.1", port=self.port,
                                log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="live-service", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the service did not start within 10 s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        if self.services is not None:
            self.services.close()
        self._server = self._thread = self.services = None

    def __enter__(self) -> LiveService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def recorded_events(admin: httpx.Client, transaction_id: str) -> list[dict[str, Any]]:
    """A transaction's events as the service recorded them (its hash chain checked)."""
    response = admin.get(f"/v1/transactions/{transaction_id}/events")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["chain_valid"] is True
    return body["events"]  # type: ignore[no-any-return]
