"""Bearer tokens with roles and an optional expiry. Tokens are stored hashed; a process trusts a lookup
for a few seconds (a revocation elsewhere shows after that), but checks the expiry on every request
against the services' clock."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from domain.api_token import token_hash
from domain.errors import Forbidden, NotAuthenticated
from domain.ledger import Ledger


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: UUID
    role: str
    terminal_id: UUID | None
    expires_at: datetime | None = None


def new_token() -> str:
    return "tl_" + secrets.token_urlsafe(32)


class TokenAuthority:
    """Resolves presented tokens to principals, with a short per-process cache."""

    def __init__(self, ledger: Ledger, cache_seconds: float) -> None:
        self.ledger = ledger
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Principal | None, float]] = {}

    def cached(self, token: str) -> tuple[bool, Principal | None]:
        """(True, principal) when a fresh lookup is cached; (False, None) when the store must be asked."""
        hit = self._cache.get(token_hash(token))
        if hit is not None and time.monotonic() - hit[1] < self.cache_seconds:
            return True, hit[0]
        return False, None

    def resolve(self, token: str) -> Principal | None:
        key = token_hash(token)
        now = time.monotonic()
        found = self.ledger.find_token(token)
        principal = None if found is None or found.revoked else Principal(found.id, found.role, found.bound_terminal_id,
                                                                           found.expires_at)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (principal, now)
        return principal

    def forget(self, token_id: UUID) -> None:
        """Drop a revoked token from this process's cache at once."""
        self._cache = {k: v for k, v in self._cache.items() if v[0] is None or v[0].token_id != token_id}


async def authenticate(request: Request, roles: tuple[str, ...]) -> Principal:
    """The caller's principal, if its bearer token is valid and has one of ``roles``."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("send Authorization: Bearer <token>")
    services = request.app.state.services
    authority: TokenAuthority = services.tokens
    hit, resolved = authority.cached(token)
    if not hit:
        resolved = await run_in_threadpool(authority.resolve, token)
    if resolved is None:
        raise NotAuthenticated("unknown or revoked token")
    # The clock is read only for a token that can expire (a cached lookup is checked again each time).
    if resolved.expires_at is not None and services.clock.now() >= resolved.expires_at:
        raise NotAuthenticated("token expired")
    if resolved.role not in roles:
        raise Forbidden(f"this needs one of the roles: {', '.join(roles)}")
    return resolved


def require(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting only the given roles."""

    async def dependency(request: Request) -> Principal:
        return await authenticate(request, roles)

    return dependency
