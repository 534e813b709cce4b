"""Web sessions: a sealed cookie naming the staff account, and the CSRF token bound to it.

The cookie holds ``account id, credential version, expiry, nonce``, MAC'd with HMAC-SHA256 under the
session key (a file shared by every API process, never in code). It holds no secret and no card
data; the MAC only makes it unforgeable. On each request the account is looked up again (a short
per-process cache, like bearer tokens), so disabling an account or changing its password ends its
sessions: both raise the account's ``credential_version``.

CSRF: every form carries ``csrf``, an HMAC of the session's nonce; the cookie is ``SameSite=Lax`` and
``HttpOnly``. The sign-in form, which has no session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from domain.ledger import Ledger
from domain.staff_account import StaffAccount

SESSION_COOKIE = "till_session"
SIGN_IN_CSRF_COOKIE = "till_sign_in"


def load_or_create_key(path: Path) -> bytes:
    """The session key in ``path`` (hex), created (mode 600) when missing.

    Written to a temporary file and linked into place, so a worker starting at the same moment reads
    either nothing or the whole key, and every worker ends up with the same one.
    """
    for _ in range(50):
        if path.exists():
            text = path.read_text().strip()
            if len(text) == 64:
                return bytes.fromhex(text)
            raise ValueError(f"{path} must hold 64 hex digits (32 random bytes)")
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won; read its key
        finally:
            temporary.unlink()
    raise RuntimeError(f"could not create {path}")


@dataclass(frozen=True, slots=True)
class WebUser:
    """Who is signed in, as the pages need it."""

    account_id: UUID
    user_name: str
    display_name: str
    role: str
    nonce: str


class SessionSealer:
    """Seals and opens session cookies; makes and checks CSRF tokens."""

    def __init__(self, key: bytes, lifetime_s: float) -> None:
        self._key = key
        self.lifetime_s = lifetime_s

    def _mac(self, purpose: str, data: bytes) -> str:
        return hmac.new(self._key, purpose.encode() + b"\0" + data, hashlib.sha256).hexdigest()

    def seal(self, account: StaffAccount, now: float | None = None) -> str:
        now = time.time() if now is None else now
        claims = {"a": str(account.id), "v": account.credential_version, "e": int(now + self.lifetime_s),
                  "n": secrets.token_hex(16)}
        payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{payload}.{self._mac('session', payload.encode())}"

    def open(self, cookie: str, now: float | None = None) -> tuple[UUID, int, str] | None:
        """(account id, credential version, nonce) of a genuine, unexpired cookie; None otherwise."""
        payload, _, mac = cookie.partition(".")
        if not payload or not hmac.compare_digest(mac, self._mac("session", payload.encode())):
            return None
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            account_id, version, expires, nonce = UUID(claims["a"]), int(claims["v"]), int(claims["e"]), claims["n"]
        except (ValueError, KeyError, TypeError):
            return None
        if expires < (time.time() if now is None else now) or not isinstance(nonce, str):
            return None
        return account_id, version, nonce

    def csrf_token(self, nonce: str) -> str:
        return self._mac("csrf", nonce.encode())[:32]

    def csrf_ok(self, nonce: str, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf_token(nonce), presented or "")


class SessionAuthority:
    """Resolves a session cookie to the signed-in user, with a short per-process cache of accounts."""

    def __init__(self, ledger: Ledger, sealer: SessionSealer, cache_seconds: float) -> None:
        self.ledger = ledger
        self.sealer = sealer
        self.cache_seconds = cache_seconds
        self._accounts: dict[UUID, tuple[StaffAccount | None, float]] = {}

    def _account(self, account_id: UUID) -> StaffAccount | None:
        hit = self._accounts.get(account_id)
        if hit is not None and time.monotonic() - hit[1] < self.cache_seconds:
            return hit[0]
        account = self.ledger.find_staff_account(account_id)
        if len(self._accounts) > 10_000:
            self._accounts.clear()
        self._accounts[account_id] = (account, time.monotonic())
        return account

    def user(self, cookie: str | None) -> WebUser | None:
        opened = self.sealer.open(cookie) if cookie else None
        if opened is None:
            return None
        account_id, version, nonce = opened
        account = self._account(account_id)
        if account is None or account.disabled or account.credential_version != version:
            return None
        return WebUser(account.id, account.user_name, account.display_name, account.role, nonce)

    def forget(self, account_id: UUID) -> None:
        """Drop an account from this process's cache (after a change made here)."""
        self._accounts.pop(account_id, None)
