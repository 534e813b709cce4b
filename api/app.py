"""The service's composition root: ``create_app(settings)`` builds every object the API uses."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from adapters.acquirer_client import Iso8583AcquirerHost
from adapters.clock import SystemClock
from adapters.gc_tuning import tune_for_server
from adapters.group_commit import GroupCommitter, SingleSaveExecutor
from adapters.passwords import Argon2PasswordHasher
from adapters.settings import Settings
from adapters.signing import SigningKey
from adapters.store import ledger_environment, prepare_store
from api.auth import TokenAuthority, new_token
from api.database_setup import require_tables
from api.errors import install_error_handlers
from api.raw_body import install_raw_body_schemas
from api.request_id import RequestIdMiddleware
from api.routers import acquirer, admin, health, reports, terminal
from api.services import Executor, Services
from api.web import install_pages
from projections.in_doubt import ViewInDoubtSource
from projections.read_models import ReadModels
from domain.authorization import Authorizer, ReversalWorker
from domain.ledger import Ledger
from domain.ports import Clock, PasswordHasher
from domain.stamp import Stamp

log = logging.getLogger(__name__)
ADMIN_TOKEN_FILE = "admin.token"


def build_services(settings: Settings, *, clock: Clock | None = None, hasher: PasswordHasher | None = None,
                   create_tables: bool = True, read_models: bool = True) -> Services:
    """Everything the API and the CLI need, from one settings object."""
    prepare_store(settings)
    if not settings.create_tables:  # a role that may not create them: say which are missing, up front
        require_tables(settings)
    ledger = Ledger(env=ledger_environment(settings, create_tables=create_tables))
    executor: Executor
    if settings.group_commit:
        executor = GroupCommitter(ledger, settings.group_commit_max_batch, settings.cache_size)
    else:
        executor = SingleSaveExecutor(ledger)
    clock = clock or SystemClock()
    views = ReadModels.open(settings, ledger) if read_models else None
    return Services(settings=settings, ledger=ledger, executor=executor, clock=clock,
                    hasher=hasher or Argon2PasswordHasher(), tokens=TokenAuthority(ledger, settings.token_cache_s),
                    read_models=views,
                    signing_key=SigningKey.load_or_create(settings.signing_key_path) if read_models else None,
                    authorizer=build_authorizer(settings, ledger, executor, clock, views))


def build_authorizer(settings: Settings, ledger: Ledger, executor: Executor, clock: Clock,
                     views: ReadModels | None) -> Authorizer | None:
    """The acquirer host and the reversal worker, when TILL_ACQUIRER_URL is set (needs the read view,
    which remembers in-doubt transactions across restarts)."""
    address = settings.acquirer_address
    if address is None or views is None:
        return None
    host = Iso8583AcquirerHost(*address, timeout_s=settings.acquirer_timeout_s,
                               connect_timeout_s=settings.acquirer_connect_timeout_s)
    reversals = ReversalWorker(executor, host, clock, ledger.load, ViewInDoubtSource(ledger, views),
                               host_timeout_s=settings.acquirer_timeout_s, scan_interval_s=settings.reversal_scan_s,
                               retry_max_s=settings.reversal_retry_max_s)
    return Authorizer(executor, host, clock, ledger.load, reversals)


def ensure_first_admin_token(services: Services) -> Path | None:
    """On an empty store, issue one admin token and write it (mode 600) under the data dir."""
    path = services.settings.data_dir / ADMIN_TOKEN_FILE
    if services.ledger.recorder.max_notification_id():
        return path if path.exists() else None
    token = new_token()
    services.executor.run(Ledger.issue_token(Stamp(None, None, None, services.clock.now()), token, "admin", None,
                                             "first admin (created by till serve)"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return path


def create_app(settings: Settings | None = None, *, services: Services | None = None,
               server_process: bool = False) -> FastAPI:
    """The FastAPI app. Pass ``services`` to share them with a test; otherwise they are built here.

    ``server_process``: this process only serves the app (``till serve``), so it may tune the GC.
    """
    settings = settings or (services.settings if services else Settings())
    built = services or build_services(settings, create_tables=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if server_process:
            tune_for_server()
        built.executor.start()
        if built.read_models is not None:
            built.read_models.start(embedded=built.settings.embedded_projections)
        if built.authorizer is not None:
            built.authorizer.reversals.start()
        try:
            yield
        finally:
            if built.authorizer is not None:
                await built.authorizer.reversals.stop()
            built.executor.stop()
            if built.read_models is not None:
                built.read_models.runner.stop()

    app = FastAPI(title="Till Ledger", version="0.1.0", lifespan=lifespan,
                  description="Event-sourced ledger of in-store card payments. Errors are problem+json "
                              "with a stable `code`. Money is integer minor units.")
    app.state.services = built
    install_error_handlers(app)
    install_raw_body_schemas(app)
    app.include_router(health.router)
    app.include_router(terminal.router)
    app.include_router(acquirer.router)
    app.include_router(admin.router)
    app.include_router(reports.router)
    if built.read_models is not None:  # the pages read the views
        install_pages(app, built)
    # Added last, so it is the outermost middleware: every answer carries the id and is counted.
    app.add_middleware(RequestIdMiddleware)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn workers (``--factory``): settings from the environment, tables already made."""
    return create_app(Settings(), server_process=True)
