"""The agent's client of the ledger service (HTTP + JSON), with httpx's errors translated.

    ServiceUnreachable   nothing answered, the connection broke, or the service said 5xx: try later
    ServiceRefused       the service answered 4xx with a problem document: ``code`` says which rule

A card number goes out only in the body of ``authorize`` and is never kept by this module.
"""

from __future__ import annotations

from typing import Any

import httpx


class ServiceUnreachable(Exception):
    """The ledger service did not answer (or answered 5xx): the agent works offline until it does."""

    code = "service_unreachable"

    def __init__(self, detail: str, *, sent: bool = False, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.sent = sent  # the request may have arrived: a read timeout or a broken reply
        if code:  # the service answered 5xx with its own code (e.g. acquirer_unavailable, store_unavailable)
            self.code = code


class ServiceRefused(Exception):
    """The service answered with a 4xx problem: a rule said no (``code`` is the ledger's stable code)."""

    def __init__(self, status: int, code: str, detail: str, problem: dict[str, Any]) -> None:
        super().__init__(f"{code}: {detail}")
        self.status, self.code, self.detail, self.problem = status, code, detail, problem


class ServiceClient:
    """One agent's session with the service: bearer token, bounded timeouts, one connection pool."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 5.0, authorize_timeout_s: float = 45.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._authorize_timeout_s = authorize_timeout_s
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout_s, connect=2.0),
                                  headers={"Authorization": f"Bearer {token}"}, transport=transport)

    def close(self) -> None:
        self._http.close()

    # ---- calls ---------------------------------------------------------------------------------------
    def healthy(self) -> bool:
        try:
            return self._http.get("/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def append(self, path: str, envelope: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, json=envelope)

    def terminal(self, terminal_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/terminals/{terminal_id}")

    def till_session(self, till_session_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/till-sessions/{till_session_id}")

    def transaction(self, transaction_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/transactions/{transaction_id}")

    def sign_on(self, terminal_id: str, operator_no: str, device_time: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/terminals/{terminal_id}/sign-on",
                          json={"operator_no": operator_no, "device_time": device_time})

    def authorize(self, transaction_id: str, envelope: dict[str, Any]) -> dict[str, Any]:
        # The service may wait for the acquirer host up to its own timeout; ours must be longer.
        return self._call("POST", f"/v1/transactions/{transaction_id}/authorize", json=envelope,
                          timeout=self._authorize_timeout_s)

    def settle(self, till_session_id: str, envelope: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/v1/till-sessions/{till_session_id}/settle", json=envelope,
                          timeout=self._authorize_timeout_s)

    def receipt(self, transaction_id: str, copy: str, reprint_no: int = 0) -> dict[str, Any]:
        return self._call("GET", f"/v1/transactions/{transaction_id}/receipt",
                          params={"copy": copy, "reprint_no": reprint_no})

    def z_report(self, z_report_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/reports/z/{z_report_id}")

    # ---- plumbing ------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, timeout=timeout if timeout is not None else
                                          httpx.USE_CLIENT_DEFAULT, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ServiceUnreachable(f"the ledger service at {self._http.base_url} does not answer") from exc
        except httpx.TransportError as exc:  # read timeout, broken reply: it may have been recorded
            raise ServiceUnreachable(f"no complete answer from the ledger service ({type(exc).__name__})",
                                     sent=True) from exc
        if response.status_code >= 500:
            problem = _problem(response)
            raise ServiceUnreachable(str(problem.get("detail") or f"the ledger service answered "
                                         f"{response.status_code}"), sent=True, code=problem.get("code"))
        if response.status_code >= 400:
            problem = _problem(response)
            raise ServiceRefused(response.status_code, str(problem.get("code", "refused")),
                                 str(problem.get("detail", response.reason_phrase)), problem)
        body = response.json() if response.content else {}
        return body if isinstance(body, dict) else {"items": body}


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
