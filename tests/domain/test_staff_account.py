"""Staff accounts for the web pages: a checked name and role, only an argon2 hash kept, and a
credential version that every password change and disabling raises (ending older sessions)."""

from __future__ import annotations

import pytest

from adapters.group_commit import run_alone
from domain.errors import AlreadyExists, InvalidInput, StaffCredentialsInvalid
from domain.ledger import Ledger
from domain.staff_account import StaffAccount, check_new_password, staff_account_id_for
from tests.conftest import fast_hasher
from tests.domain.world import Counter, refused

HASHER = fast_hasher()
PASSWORD = "correct horse battery staple"


def open_ana(counter: Counter, role: str = "accountant") -> StaffAccount:
    return run_alone(counter.ledger, Ledger.open_staff_account(counter.stamp(None), "Ana.Li", role, " Ana Li ",
                                                               HASHER.hash(PASSWORD)))


def test_an_account_is_found_by_its_lower_case_name_and_only_the_hash_is_stored(counter: Counter) -> None:
    opened = open_ana(counter)
    account = counter.ledger.verify_staff("ana.li", PASSWORD, HASHER)
    assert (account.id, account.user_name, account.display_name, account.role, account.credential_version) == (
        staff_account_id_for("ANA.LI"), "ana.li", "Ana Li", "accountant", 1) and opened.id == account.id
    stored = b"".join(e.state for e in counter.ledger.recorder.select_events(account.id))
    assert PASSWORD.encode() not in stored and b"$argon2id$" in stored


@pytest.mark.parametrize(("name", "role", "display"), [("a", "accountant", "A"), ("ana li", "accountant", "A"),
                                                       ("-ana", "accountant", "A"), ("ana", "terminal", "A"),
                                                       ("ana", "accountant", "  "), ("ana", "accountant", "x" * 65)])
def test_an_account_needs_a_plain_name_a_staff_role_and_a_display_name(
        counter: Counter, name: str, role: str, display: str) -> None:
    with refused(counter.ledger, InvalidInput):
        run_alone(counter.ledger, Ledger.open_staff_account(counter.stamp(None), name, role, display, "hash"))


def test_a_name_is_taken_once_whatever_its_case(counter: Counter) -> None:
    open_ana(counter)
    with refused(counter.ledger, AlreadyExists):
        run_alone(counter.ledger, Ledger.open_staff_account(counter.stamp(None), "ANA.li", "dispute", "Other", "h"))


def test_a_wrong_password_or_an_unknown_name_is_the_same_refusal(counter: Counter) -> None:
    open_ana(counter)
    for name, password in (("ana.li", "wrong password"), ("nobody", PASSWORD), ("no such name!", PASSWORD)):
        with pytest.raises(StaffCredentialsInvalid, match="user name or password is wrong"):
            counter.ledger.verify_staff(name, password, HASHER)


def test_a_password_change_and_disabling_raise_the_credential_version_and_disabling_twice_records_once(
        counter: Counter) -> None:
    open_ana(counter)
    stamp = counter.stamp(None)
    changed = run_alone(counter.ledger, Ledger.change_staff_account(stamp, "ana.li",
                                                                    password_hash=HASHER.hash("a new password!")))
    assert changed.credential_version == 2
    with pytest.raises(StaffCredentialsInvalid):
        counter.ledger.verify_staff("ana.li", PASSWORD, HASHER)
    disabled = run_alone(counter.ledger, Ledger.change_staff_account(stamp, "ana.li", disable_reason="on leave"))
    again = run_alone(counter.ledger, Ledger.change_staff_account(stamp, "ana.li", disable_reason="on leave"))
    assert disabled.credential_version == again.credential_version == 3 and again.version == 3
    with pytest.raises(StaffCredentialsInvalid, match="disabled"):
        counter.ledger.verify_staff("ana.li", "a new password!", HASHER)
    run_alone(counter.ledger, Ledger.change_staff_account(stamp, "ana.li", enable=True))
    assert counter.ledger.verify_staff("ana.li", "a new password!", HASHER).credential_version == 3


@pytest.mark.parametrize("password", ["short", "x" * 257, None])
def test_a_new_password_needs_ten_to_256_characters(password: object) -> None:
    with pytest.raises(InvalidInput):
        check_new_password(password)
