"""Typed settings for the service, read from ``TILL_*`` environment variables (built once per process)."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the ledger keeps its events and how the service runs.

    With no ``TILL_DATABASE_URL`` the ledger is an embedded SQLite file under ``TILL_DATA_DIR``;
    ``TILL_DATABASE_URL=postgresql://user:password@host:5432/dbname`` switches to PostgreSQL.
    """

    model_config = SettingsConfigDict(env_prefix="TILL_", extra="ignore")

    data_dir: Path = Field(Path("till-data"), description="Directory for SQLite files and the first admin token.")
    database_url: str | None = Field(None, description="postgresql://… to use PostgreSQL instead of SQLite.")
    database_password_file: Path | None = Field(None, description="A file holding the PostgreSQL password (a "
                                                "Docker secret, a systemd credential); it wins over one in "
                                                "TILL_DATABASE_URL, so the URL itself holds no secret.")
    database_schema: str = Field("public", pattern=r"^[a-z_][a-z0-9_]{0,62}$",
                                 description="PostgreSQL schema holding the ledger tables.")
    lock_timeout_s: int = Field(5, ge=1, le=60, description="PostgreSQL lock timeout for an append, seconds.")
    pool_size: int = Field(5, ge=1, le=100)
    max_overflow: int = Field(10, ge=0, le=100)
    group_commit: bool = Field(True, description="Group concurrent appends into one store transaction.")
    group_commit_max_batch: int = Field(500, ge=1, le=10_000)
    # Active streams are a few per terminal; a bigger cache mostly holds finished sales and makes the
    # garbage collector's full passes (which pause the writer) longer.
    cache_size: int = Field(2_048, ge=0, description="Aggregates kept in the writer's memory.")
    token_cache_s: float = Field(5.0, ge=0, description="How long a process trusts a token lookup.")
    business_day_cutoff: time = Field(time(0, 0), description="Local time a business day starts (HH:MM); "
                                      "changing it needs `till project rebuild ledger_view`.")
    embedded_projections: bool = Field(True, description="Run the projections inside `till serve` (one "
                                       "process holds each; others wait). Off: run `till project run`.")
    create_tables: bool = Field(True, description="Create the schema and tables when missing. Off (a role "
                                "without CREATE, see infra/README.md): the tables must exist (`till db init` "
                                "as the owner) and a command says so when they do not.")
    projection_page_size: int = Field(500, ge=1, le=10_000, description="Events per view transaction.")
    signing_key_file: Path | None = Field(None, description="Ed25519 key (PEM) that signs evidence bundles; "
                                          "default $TILL_DATA_DIR/signing.key, created on first start.")
    session_key_file: Path | None = Field(None, description="Secret (32 random bytes, hex) that seals the web "
                                          "pages' session cookies; default $TILL_DATA_DIR/session.key, created on "
                                          "first start. Every API process behind one address needs the same file.")
    session_hours: float = Field(8.0, gt=0, le=24 * 7, description="A web session ends this long after sign-in.")
    display_timezone: str = Field("Asia/Shanghai", description="Time zone the web pages show server times in "
                                  "(IANA name); a terminal's own clock is shown as it recorded it.")
    cookie_secure: bool = Field(False, description="Send the session cookie over HTTPS only. Set it when a TLS "
                                "proxy fronts the service (it is also set for any request that arrived as https).")
    acquirer_url: str | None = Field(
        None, pattern=r"^(tcp://)?[A-Za-z0-9.\-]+:\d{1,5}$",
        description="host:port of the acquirer host (ISO 8583 over TCP, e.g. `till acquirer-sim`). Set: the "
                    "service authorizes, reverses and settles through it. Unset: terminals record outcomes "
                    "from a standalone payment terminal themselves.")
    acquirer_timeout_s: float = Field(30.0, gt=0, le=300, description="Wait for the host's reply before the "
                                      "outcome is unknown and a reversal is sent.")
    acquirer_connect_timeout_s: float = Field(3.0, gt=0, le=60)
    reversal_scan_s: float = Field(30.0, gt=0, description="How often in-doubt transactions are looked up "
                                   "again (after a restart, or left by another process).")
    reversal_retry_max_s: float = Field(30.0, gt=0, description="Longest wait between two reversal attempts.")
    readiness_timeout_s: float = Field(1.0, gt=0, le=30, description="How long /readyz and /metrics wait for the "
                                       "store and the projections to answer before saying they did not.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    @property
    def acquirer_address(self) -> tuple[str, int] | None:
        if not self.acquirer_url:
            return None
        host, _, port = self.acquirer_url.removeprefix("tcp://").rpartition(":")
        return host, int(port)

    @property
    def signing_key_path(self) -> Path:
        return self.signing_key_file or self.data_dir / "signing.key"

    @field_validator("display_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai") from None
        return value

    @property
    def session_key_path(self) -> Path:
        return self.session_key_file or self.data_dir / "session.key"

    @property
    def uses_postgres(self) -> bool:
        return bool(self.database_url)
