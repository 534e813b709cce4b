"""StaffAccount: a person who signs in to the web pages (accountant, dispute handler, admin).

The account's id derives from its user name, so a sign-in looks it up without a secondary index.
Only an argon2 hash of the password is kept. ``credential_version`` rises on every password change
and on disabling: a web session remembers the version it was opened under, so changing a password
disabling an account or signing out ends every session opened before.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.aggregate import LedgerAggregate
from domain.errors import InvalidInput
from domain.stamp import Stamp

STAFF_ROLES = ("accountant", "dispute", "admin")
_USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD = 10


def staff_account_id_for(user_name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"till-ledger:staff:{user_name.lower()}")


def check_user_name(user_name: object) -> str:
    if not isinstance(user_name, str) or not _USER_NAME.match(user_name.lower()):
        raise InvalidInput("user name: 2–32 of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
                           field="user_name")
    return user_name.lower()


def check_new_password(password: object) -> str:
    """The rule a new staff password must meet (checked before it is hashed; never stored)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD or len(password) > 256:
        raise InvalidInput(f"a password needs {MIN_PASSWORD} to 256 characters", field="password")
    return password


class StaffAccount(LedgerAggregate):
    """User name, role, display name, password hash, and whether it may sign in."""

    class Opened(LedgerAggregate.Created):
        user_name: str
        role: str
        display_name: str
        password_hash: str

        def apply(self, account: StaffAccount) -> None:
            account.user_name = self.user_name
            account.role = self.role
            account.display_name = self.display_name
            account.password_hash = self.password_hash
            account.disabled = False
            account.credential_version = 1

    class PasswordChanged(LedgerAggregate.Event):
        password_hash: str

        def apply(self, account: StaffAccount) -> None:
            account.password_hash = self.password_hash
            account.credential_version += 1

    class Disabled(LedgerAggregate.Event):
        reason: str

        def apply(self, account: StaffAccount) -> None:
            account.disabled = True
            account.credential_version += 1

    class SignedOut(LedgerAggregate.Event):
        """The person signed out: every session opened before ends (on every device), since a sealed
        cookie copied elsewhere would otherwise stay valid until it expires."""

        def apply(self, account: StaffAccount) -> None:
            account.credential_version += 1

    class Enabled(LedgerAggregate.Event):
        def apply(self, account: StaffAccount) -> None:
            account.disabled = False

    if TYPE_CHECKING:  # state attributes; not annotations at run time (they would become __init__ args)
        user_name: str
        role: str
        display_name: str
        password_hash: str
        disabled: bool
        credential_version: int

    @classmethod
    def open(cls, stamp: Stamp, user_name: str, role: str, display_name: str, password_hash: str) -> StaffAccount:
        name = check_user_name(user_name)
        if role not in STAFF_ROLES:
            raise InvalidInput(f"role must be one of {', '.join(STAFF_ROLES)}", field="role")
        if not isinstance(display_name, str) or not 1 <= len(display_name.strip()) <= 64:
            raise InvalidInput("display name: 1 to 64 characters", field="display_name")
        return cls._start(cls.Opened, staff_account_id_for(name), stamp, user_name=name, role=role,
                          display_name=display_name.strip(), password_hash=password_hash)

    def change_password(self, stamp: Stamp, password_hash: str) -> None:
        self._record(self.PasswordChanged, stamp, password_hash=password_hash)

    def disable(self, stamp: Stamp, reason: str) -> None:
        if not isinstance(reason, str) or len(reason) > 200:
            raise InvalidInput("reason: at most 200 characters", field="reason")
        if not self.disabled:
            self._record(self.Disabled, stamp, reason=reason)

    def sign_out(self, stamp: Stamp) -> None:
        self._record(self.SignedOut, stamp)

    def enable(self, stamp: Stamp) -> None:
        if self.disabled:
            self._record(self.Enabled, stamp)
