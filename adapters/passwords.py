"""Operator password hashing with argon2id (PasswordHasher port)."""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError


class Argon2PasswordHasher:
    def __init__(self, time_cost: int = 2, memory_cost: int = 19_456, parallelism: int = 1) -> None:
        # OWASP's argon2id minimum (19 MiB, t=2, p=1): slow enough for guessing, quick enough for a till.
        self._hasher = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
