"""API tokens: a role, a terminal binding for terminal tokens, only the hash stored, revocation."""

from __future__ import annotations

import pytest

from adapters.group_commit import run_alone
from domain.api_token import token_id_for, token_hash
from domain.errors import InvalidInput, NotFound
from domain.ledger import Ledger
from tests.domain.world import Counter, refused

SECRET = "tl_7f3c9a2e5b8d4c1f9e6a3b7d2c5f8e1a"


def test_an_issued_token_is_found_by_its_secret_and_only_its_hash_is_stored(counter: Counter) -> None:
    issued = run_alone(counter.ledger, Ledger.issue_token(counter.stamp(None), SECRET, "terminal",
                                                          counter.terminal_id, "till 1"))
    found = counter.ledger.find_token(SECRET)
    assert found is not None and (found.id, found.role, found.bound_terminal_id) == (
        issued.id, "terminal", counter.terminal_id)
    assert issued.id == token_id_for(token_hash(SECRET))
    stored = b"".join(e.state for e in counter.ledger.recorder.select_events(issued.id))
    assert SECRET.encode() not in stored and token_hash(SECRET).encode() in stored


@pytest.mark.parametrize(("role", "bound"), [("terminal", False), ("accountant", True), ("root", False)])
def test_a_token_needs_a_known_role_and_a_terminal_exactly_when_it_is_a_terminal_token(
        counter: Counter, role: str, bound: bool) -> None:
    with refused(counter.ledger, InvalidInput):
        run_alone(counter.ledger, Ledger.issue_token(counter.stamp(None), SECRET, role,
                                                     counter.terminal_id if bound else None, ""))


def test_a_token_for_an_unknown_terminal_is_not_issued(counter: Counter) -> None:
    with refused(counter.ledger, NotFound):
        run_alone(counter.ledger, Ledger.issue_token(counter.stamp(None), SECRET, "terminal", counter.till_id, ""))


def test_revoking_a_token_twice_records_one_revocation(counter: Counter) -> None:
    issued = run_alone(counter.ledger, Ledger.issue_token(counter.stamp(None), SECRET, "admin", None, "ops"))
    for _ in range(2):
        run_alone(counter.ledger, Ledger.revoke_token(counter.stamp(None), issued.id))
    assert counter.ledger.find_token(SECRET).revoked  # type: ignore[union-attr]
    assert counter.events(issued.id) == ["Issued", "Revoked"]
