"""Settings → eventsourcing environment (SQLite or PostgreSQL), and the one-time schema setup."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from adapters.settings import Settings
from domain.errors import StoreUnavailable


def ledger_environment(settings: Settings, *, create_tables: bool = True) -> dict[str, str]:
    """The eventsourcing environment for the Ledger application (and, with its name as prefix, the views').

    ``TILL_CREATE_TABLES=false`` wins over ``create_tables``: a least-privilege role may not even run
    ``CREATE TABLE IF NOT EXISTS`` on a table that exists (PostgreSQL checks CREATE on the schema first).
    """
    create = "y" if create_tables and settings.create_tables else "n"
    if not settings.uses_postgres:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(settings.data_dir / "ledger.sqlite"),
            "SQLITE_LOCK_TIMEOUT": str(settings.lock_timeout_s),
            "CREATE_TABLE": create,
        }
    url = urlsplit(settings.database_url or "")
    if url.scheme not in ("postgresql", "postgres"):
        raise ValueError("TILL_DATABASE_URL must start with postgresql://")
    return {
        "PERSISTENCE_MODULE": "adapters.postgres_recorder:LedgerPostgresFactory",
        "POSTGRES_DBNAME": unquote(url.path.lstrip("/")) or "postgres",
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": unquote(url.username or "postgres"),
        "POSTGRES_PASSWORD": _password(settings, url.password),
        "POSTGRES_SCHEMA": settings.database_schema,
        # The library's table lock keeps insert order = commit order for readers; bound the wait for it.
        "POSTGRES_LOCK_TIMEOUT": str(settings.lock_timeout_s),
        # Its DB-function insert path skips that lock and the tracking row: keep it off.
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "POSTGRES_POOL_SIZE": str(settings.pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.max_overflow),
        "POSTGRES_CONNECT_TIMEOUT": "5",
        # No pre-ping: it costs a round trip per checkout; the recorder already retries a dead connection.
        "POSTGRES_PRE_PING": "n",
        "CREATE_TABLE": create,
    }


def _password(settings: Settings, in_url: str | None) -> str:
    if settings.database_password_file is not None:
        try:
            return settings.database_password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:  # named, where a traceback would bury it
            raise StoreUnavailable(f"cannot read TILL_DATABASE_PASSWORD_FILE: {exc.strerror}: "
                                   f"{settings.database_password_file}") from exc
    return unquote(in_url or "")


def libpq_conninfo(settings: Settings) -> str:
    env = ledger_environment(settings)
    return psycopg.conninfo.make_conninfo(
        dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None, connect_timeout=5)


def prepare_store(settings: Settings) -> None:
    """Create what the store needs before the first application starts: the data dir or the schema."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.uses_postgres:
        return
    try:
        with psycopg.connect(libpq_conninfo(settings), autocommit=True) as conn:
            if settings.create_tables:  # IF NOT EXISTS still needs CREATE on the database: skip it when told
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(settings.database_schema)))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise StoreUnavailable(f"PostgreSQL refused to create schema {settings.database_schema!r} ({exc}): a role "
                               "that may not create tables runs with TILL_CREATE_TABLES=false, after `till db "
                               "init` as the database owner") from exc
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot reach PostgreSQL: {exc.__class__.__name__}: {exc}") from exc
