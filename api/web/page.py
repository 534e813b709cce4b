"""What every web page shares: the templates, who is signed in, and errors shown as pages.

``PageRoute`` is the route class of the web routers: a ``LedgerError`` or a malformed query becomes
an HTML page in the reader's language (never problem+json, never a stack trace), and a request
without a session is sent to the sign-in page and back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api.errors import status_of
from api.web.i18n import LANG_COOKIE, LANGUAGES, choose_language, labeller, translator
from api.web.session import SESSION_COOKIE, SessionAuthority, WebUser
from domain import errors
from domain.money import decimal_text

TEMPLATES = Path(__file__).parent / "templates"
ONE_YEAR_S = 365 * 24 * 3600


def money(minor: int | None, currency: str | None = None) -> str:
    """``12345, "CNY"`` -> ``"123.45"`` (minor units in, text out; no floats anywhere)."""
    return "" if minor is None else decimal_text(minor, currency)


@pass_context
def short_time(context: Any, moment: str | None, as_recorded: bool = False) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS±HH:MM`` in the display time zone, or ``as_recorded`` (a
    terminal's clock keeps its own offset: that is the evidence)."""
    if not moment:
        return ""
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        return moment
    if not as_recorded and parsed.tzinfo is not None:
        parsed = parsed.astimezone(_zone(context["display_timezone"]))
    return parsed.isoformat(sep=" ", timespec="seconds")


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def shown(value: Any) -> str:
    """A recorded value as text: JSON for nested data (not Python's repr), a dash for nothing."""
    if value is None:
        return "—"
    if isinstance(value, bool | dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(("html",)),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["money"] = money
    env.filters["time"] = short_time
    env.filters["shown"] = shown
    return env


ENVIRONMENT = _environment()


class SignInRequired(Exception):
    """No valid session: the reader is sent to the sign-in page."""


def web_user(request: Request) -> WebUser | None:
    sessions: SessionAuthority = request.app.state.web_sessions
    return sessions.user(request.cookies.get(SESSION_COOKIE))


def signed_in(*roles: str) -> Callable[[Request], Coroutine[Any, Any, WebUser]]:
    """A dependency: the signed-in user, if their role is one of ``roles``."""

    async def dependency(request: Request) -> WebUser:
        user = await run_in_threadpool(web_user, request)
        if user is None:
            raise SignInRequired()
        request.state.web_user = user  # the error page, too, shows who is signed in
        if user.role not in roles:
            raise errors.Forbidden(f"this page needs one of the roles: {', '.join(roles)}")
        return user

    return dependency


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` with the reader's language, the signed-in user and their CSRF token."""
    language = choose_language(request)
    user: WebUser | None = getattr(request.state, "web_user", None)
    sealer = request.app.state.web_sessions.sealer
    others = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    lang_links = {code: f"{request.url.path}?{urlencode([*others, ('lang', code)])}" for code in LANGUAGES}
    html = ENVIRONMENT.get_template(template).render(
        t=translator(language), label=labeller(language), lang=language, lang_links=lang_links, user=user, csrf=sealer.csrf_token(user.nonce) if user else "",
        path=request.url.path, display_timezone=request.app.state.services.settings.display_timezone, **context)
    response = HTMLResponse(html, status_code=status, headers={
        # The pages show financial data: not cached, not framed, not sniffed.
        "Cache-Control": "no-store", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                   "script-src 'none'; frame-ancestors 'none'; form-action 'self'"})
    if request.query_params.get("lang") == language:
        response.set_cookie(LANG_COOKIE, language, max_age=ONE_YEAR_S, samesite="lax", httponly=True)
    return response


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status=status, status_code=status, message=message)


class PageRoute(APIRoute):
    """Routes whose errors are pages, and whose missing session is a trip to the sign-in page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/ui/sign-in?next={quote(back, safe='')}", status_code=303)
            except errors.LedgerError as exc:
                return error_page(request, status_of(exc), f"{exc.title}: {exc.detail}")
            except RequestValidationError as exc:
                # Say which field, never echo the value (it could be anything a reader typed).
                where = ", ".join(str(err["loc"][-1]) for err in exc.errors() if err.get("loc"))
                return error_page(request, 422, f"Invalid input: {where}")

        return page_handler
