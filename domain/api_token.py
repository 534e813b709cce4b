"""ApiToken: a bearer token's role, binding and expiry. Only its SHA-256 is stored; its id derives from that hash."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.aggregate import LedgerAggregate
from domain.errors import InvalidInput
from domain.stamp import Stamp

ROLES = ("terminal", "accountant", "dispute", "admin")


def token_hash(token: str) -> str:
    # Tokens are 256-bit random values, so a plain SHA-256 (no slow KDF) is a sound way to store them.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_id_for(token_hash_hex: str) -> UUID:
    """Deterministic id, so a presented token is looked up by id without any secondary index."""
    return uuid5(NAMESPACE_URL, f"till-ledger:token:{token_hash_hex}")


class ApiToken(LedgerAggregate):
    """A bearer token: role, optional terminal binding, optional expiry, revocation."""

    class Issued(LedgerAggregate.Created):
        """Version 2 added ``expires_at``; version 1 events (stored before it) read as never expiring."""

        class_version = 2
        # Null, it is left out of the event's canonical form (domain.chain), so a version 1 event,
        # upcast with expires_at=None, keeps the hash its successor chained to.
        hashed_only_when_set = ("expires_at",)

        role: str
        bound_terminal_id: UUID | None
        label: str
        token_hash: str
        expires_at: datetime | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["expires_at"] = None

        def apply(self, token: ApiToken) -> None:
            token.role = self.role
            token.bound_terminal_id = self.bound_terminal_id
            token.label = self.label
            token.expires_at = self.expires_at
            token.revoked = False

    class Revoked(LedgerAggregate.Event):
        def apply(self, token: ApiToken) -> None:
            token.revoked = True

    if TYPE_CHECKING:  # state attributes; not annotations at run time (they would become __init__ args)
        role: str
        bound_terminal_id: UUID | None
        label: str
        expires_at: datetime | None
        revoked: bool

    @classmethod
    def issue(cls, stamp: Stamp, token: str, role: str, terminal_id: UUID | None, label: str,
              expires_at: datetime | None = None) -> ApiToken:
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
        if (role == "terminal") != (terminal_id is not None):
            raise InvalidInput("a terminal token needs terminal_id; other roles take none", field="terminal_id")
        if not isinstance(label, str) or len(label) > 64:
            raise InvalidInput("label must be at most 64 characters", field="label")
        if expires_at is not None and (not isinstance(expires_at, datetime) or expires_at.utcoffset() is None
                                       or expires_at <= stamp.server_time):
            raise InvalidInput("expires_at must carry its UTC offset and lie after the time of issue",
                               field="expires_at")
        digest = token_hash(token)
        return cls._start(cls.Issued, token_id_for(digest), stamp, role=role, bound_terminal_id=terminal_id,
                          label=label, token_hash=digest, expires_at=expires_at)

    def expired(self, now: datetime) -> bool:
        """Whether the token has expired at ``now`` (the service's clock); one without expiry never does."""
        return self.expires_at is not None and now >= self.expires_at

    def revoke(self, stamp: Stamp) -> None:
        if not self.revoked:
            self._record(self.Revoked, stamp)
