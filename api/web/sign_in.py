"""Signing in and out of the web pages, and the way in (``/`` and ``/ui/``)."""

from __future__ import annotations

import secrets
import time
from collections import deque
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from api.services import Services
from api.web.i18n import choose_language, translator
from api.web.page import PageRoute, render, web_user
from api.web.session import SESSION_COOKIE, SIGN_IN_CSRF_COOKIE, SessionAuthority
from domain.errors import StaffCredentialsInvalid
from domain.ledger import Ledger
from domain.stamp import Stamp

router = APIRouter(route_class=PageRoute, include_in_schema=False)
HOME = {"accountant": "/ui/day", "dispute": "/ui/disputes", "admin": "/ui/day"}


class SignInThrottle:
    """At most ``limit`` failed sign-ins per user name and address in ``window_s`` (per process).

    Argon2 already makes each guess slow; this stops one address from trying a list of passwords."""

    def __init__(self, limit: int = 5, window_s: float = 900.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and time.monotonic() - failures[0] > self.window_s:
            failures.popleft()
        return failures

    def wait_s(self, key: tuple[str, str]) -> float:
        failures = self._recent(key)
        return self.window_s - (time.monotonic() - failures[0]) if len(failures) >= self.limit else 0.0

    def failed(self, key: tuple[str, str]) -> None:
        if len(self._failures) > 50_000:
            self._failures.clear()
        self._recent(key).append(time.monotonic())

    def succeeded(self, key: tuple[str, str]) -> None:
        self._failures.pop(key, None)


def _safe_next(target: str | None) -> str | None:
    """Only a path of our own pages: never another site (an open redirect)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/ui/", status_code=303)


@router.get("/ui/")
async def home(request: Request) -> Response:
    user = await run_in_threadpool(web_user, request)
    return RedirectResponse(HOME[user.role] if user else "/ui/sign-in", status_code=303)


def _sign_in_form(request: Request, status: int = 200, message: str | None = None,
                  user_name: str = "", next_page: str | None = None) -> Response:
    token = request.cookies.get(SIGN_IN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    # The page asked for survives a failed attempt: it comes back in the form, not the query.
    wanted = _safe_next(next_page if next_page is not None else request.query_params.get("next"))
    response = render(request, "sign_in.html", status=status, sign_in_csrf=token, message=message,
                      user_name=user_name, next=wanted or "")
    response.set_cookie(SIGN_IN_CSRF_COOKIE, token, samesite="strict", httponly=True, path="/ui/sign-in",
                        secure=_secure(request))
    return response


def _secure(request: Request) -> bool:
    services: Services = request.app.state.services
    return services.settings.cookie_secure or request.url.scheme == "https"


@router.get("/ui/sign-in")
async def sign_in_page(request: Request) -> Response:
    return _sign_in_form(request)


@router.post("/ui/sign-in")
async def sign_in(request: Request, user_name: Annotated[str, Form(max_length=64)],
                  password: Annotated[str, Form(max_length=256)], csrf: Annotated[str, Form(max_length=64)] = "",
                  next: Annotated[str, Form(max_length=500)] = "") -> Response:  # noqa: A002 - the form field
    t = translator(choose_language(request))
    cookie = request.cookies.get(SIGN_IN_CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie, csrf):
        return _sign_in_form(request, 403, t("form_expired"), user_name, next)
    throttle: SignInThrottle = request.app.state.sign_in_throttle
    key = (user_name.lower(), request.client.host if request.client else "")
    wait = throttle.wait_s(key)
    if wait > 0:
        return _sign_in_form(request, 429, f"{t('too_many')} ({int(wait // 60) + 1} min)", user_name, next)
    services: Services = request.app.state.services
    try:
        account = await run_in_threadpool(services.ledger.verify_staff, user_name, password, services.hasher)
    except StaffCredentialsInvalid as exc:
        throttle.failed(key)
        return _sign_in_form(request, 401, t("wrong_credentials") if "disabled" not in exc.detail
                             else t("account_disabled"), user_name, next)
    throttle.succeeded(key)
    sessions: SessionAuthority = request.app.state.web_sessions
    response = RedirectResponse(_safe_next(next) or HOME[account.role], status_code=303)
    response.set_cookie(SESSION_COOKIE, sessions.sealer.seal(account), max_age=int(sessions.sealer.lifetime_s),
                        httponly=True, samesite="lax", secure=_secure(request), path="/")
    response.delete_cookie(SIGN_IN_CSRF_COOKIE, path="/ui/sign-in")
    return response


@router.post("/ui/sign-out")
async def sign_out(request: Request, csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    user = await run_in_threadpool(web_user, request)
    sessions: SessionAuthority = request.app.state.web_sessions
    response = RedirectResponse("/ui/sign-in", status_code=303)
    if user is not None and sessions.sealer.csrf_ok(user.nonce, csrf):
        # Recorded, so that the cookie, wherever a copy of it is, stops working (on every process
        # within TILL_TOKEN_CACHE_S): a sealed cookie cannot be taken back otherwise.
        services: Services = request.app.state.services
        await services.executor.submit(Ledger.change_staff_account(
            Stamp(None, None, None, services.clock.now()), user.user_name, sign_out=True))
        sessions.forget(user.account_id)
    if user is None or sessions.sealer.csrf_ok(user.nonce, csrf):
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response
