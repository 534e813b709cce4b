"""The accountant's and the dispute handler's web pages (server-rendered, Chinese and English)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from api.services import Services
from api.web import accountant, dispute, sign_in
from api.web.session import SessionAuthority, SessionSealer, load_or_create_key


def install_pages(app: FastAPI, services: Services) -> None:
    """Add the pages under ``/ui/`` (and ``/`` → ``/ui/``) to the API's app."""
    settings = services.settings
    sealer = SessionSealer(load_or_create_key(settings.session_key_path), settings.session_hours * 3600)
    app.state.web_sessions = SessionAuthority(services.ledger, sealer, settings.token_cache_s)
    app.state.sign_in_throttle = sign_in.SignInThrottle()
    app.mount("/ui/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    for module in (sign_in, accountant, dispute):
        app.include_router(module.router)
