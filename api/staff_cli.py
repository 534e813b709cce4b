"""``till user``: the staff accounts that sign in to the web pages (accountant, dispute, admin)."""

from __future__ import annotations

import argparse
import getpass
import os
from typing import Any

from adapters.settings import Settings
from domain.staff_account import STAFF_ROLES, check_new_password

PASSWORD_ENV = "TILL_NEW_PASSWORD"


def _new_password(args: argparse.Namespace) -> str:
    """From TILL_NEW_PASSWORD (for scripts) or asked twice without echo; never from the command line,
    where it would sit in the shell history and the process list."""
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = getpass.getpass(f"New password for {args.user_name}: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("till user: the two passwords differ; nothing changed")
    return check_new_password(password)


def _run(command: Any) -> Any:
    from adapters.group_commit import run_alone
    from api.app import build_services

    services = build_services(Settings(), create_tables=True, read_models=False)
    try:
        return run_alone(services.ledger, command(services))
    finally:
        services.ledger.close()


def _add(args: argparse.Namespace) -> int:
    from adapters.passwords import Argon2PasswordHasher
    from domain.ledger import Ledger
    from domain.stamp import Stamp

    password_hash = Argon2PasswordHasher().hash(_new_password(args))
    account = _run(lambda s: Ledger.open_staff_account(Stamp(None, None, None, s.clock.now()), args.user_name,
                                                       args.role, args.display_name or args.user_name, password_hash))
    print(f"staff account {account.user_name} ({account.role}) opened; sign in at /ui/sign-in")
    return 0


def _passwd(args: argparse.Namespace) -> int:
    from adapters.passwords import Argon2PasswordHasher
    from domain.ledger import Ledger
    from domain.stamp import Stamp

    password_hash = Argon2PasswordHasher().hash(_new_password(args))
    _run(lambda s: Ledger.change_staff_account(Stamp(None, None, None, s.clock.now()), args.user_name,
                                               password_hash=password_hash))
    print(f"password of {args.user_name} changed; its open sessions have ended")
    return 0


def _disable(args: argparse.Namespace) -> int:
    from domain.ledger import Ledger
    from domain.stamp import Stamp

    _run(lambda s: Ledger.change_staff_account(Stamp(None, None, None, s.clock.now()), args.user_name,
                                               disable_reason=args.reason))
    print(f"{args.user_name} is disabled; its open sessions have ended")
    return 0


def _enable(args: argparse.Namespace) -> int:
    from domain.ledger import Ledger
    from domain.stamp import Stamp

    _run(lambda s: Ledger.change_staff_account(Stamp(None, None, None, s.clock.now()), args.user_name, enable=True))
    print(f"{args.user_name} may sign in again")
    return 0


def add_user_commands(commands: Any) -> None:
    user = commands.add_parser("user", help="staff accounts for the web pages (accountant, dispute, admin)",
                               description="People sign in to the web pages (/ui/) with a user name and password. "
                               f"Passwords are asked twice without echo, or read from ${PASSWORD_ENV} in scripts; "
                               "the ledger keeps only an argon2 hash. A password change or disabling ends the "
                               "account's open sessions.")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="open an account")
    add.add_argument("user_name")
    add.add_argument("--role", required=True, choices=STAFF_ROLES)
    add.add_argument("--display-name", default=None, help="the name shown on the pages (default: the user name)")
    add.set_defaults(run=_add)
    passwd = actions.add_parser("passwd", help="set a new password")
    passwd.add_argument("user_name")
    passwd.set_defaults(run=_passwd)
    disable = actions.add_parser("disable", help="stop an account from signing in")
    disable.add_argument("user_name")
    disable.add_argument("--reason", default="", help="why (kept in the ledger)")
    disable.set_defaults(run=_disable)
    enable = actions.add_parser("enable", help="let a disabled account sign in again")
    enable.add_argument("user_name")
    enable.set_defaults(run=_enable)

