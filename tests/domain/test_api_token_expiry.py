"""Token expiry: an optional ``expires_at`` on ApiToken.Issued (class_version 2), and the version 1
events stored before it, which read as tokens that never expire and keep their hash chain."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from adapters.group_commit import run_alone
from domain.api_token import ApiToken
from domain.chain import event_hash
from domain.errors import InvalidInput
from domain.ledger import Ledger
from tests.domain.world import Counter, refused
from tests.v1_token_events import KEPT_ID, KEPT_TOKEN, REVOKED_ID, REVOKED_TOKEN, V1_EVENTS

SECRET = "tl_expiry-test-token"


def test_a_token_with_an_expiry_is_valid_until_that_moment_and_expired_from_it(counter: Counter) -> None:
    stamp = counter.stamp(None)
    expires_at = stamp.server_time + timedelta(hours=1)

    issued = run_alone(counter.ledger, Ledger.issue_token(stamp, SECRET, "accountant", None, "1 h", expires_at))

    found = counter.ledger.find_token(SECRET)
    assert found is not None and found.id == issued.id and found.expires_at == expires_at
    assert not found.expired(expires_at - timedelta(microseconds=1))
    assert found.expired(expires_at) and found.expired(expires_at + timedelta(days=1))


def test_a_token_without_an_expiry_never_expires(counter: Counter) -> None:
    run_alone(counter.ledger, Ledger.issue_token(counter.stamp(None), SECRET, "admin", None, "ops"))

    found = counter.ledger.find_token(SECRET)
    assert found is not None and found.expires_at is None
    assert not found.expired(datetime(2999, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("when", ["naive", "at issue", "before issue"])
def test_an_expiry_without_a_utc_offset_or_not_after_the_issue_is_refused(counter: Counter, when: str) -> None:
    stamp = counter.stamp(None)
    expires_at = {"naive": stamp.server_time.replace(tzinfo=None) + timedelta(hours=1),
                  "at issue": stamp.server_time, "before issue": stamp.server_time - timedelta(seconds=1)}[when]

    with refused(counter.ledger, InvalidInput) as error:
        run_alone(counter.ledger, Ledger.issue_token(stamp, SECRET, "admin", None, "", expires_at))

    assert error.value.extra["field"] == "expires_at"


def test_a_token_is_stored_as_version_2_of_issued_with_its_expiry(counter: Counter) -> None:
    stamp = counter.stamp(None)
    issued = run_alone(counter.ledger, Ledger.issue_token(stamp, SECRET, "dispute", None, "",
                                                          stamp.server_time + timedelta(days=90)))

    [stored] = counter.ledger.recorder.select_events(issued.id)
    state = json.loads(stored.state)
    assert state["class_version"] == 2
    assert state["expires_at"]["_data_"] == (stamp.server_time + timedelta(days=90)).isoformat()


def test_version_1_events_read_as_tokens_that_never_expire_with_their_hash_chain_intact(counter: Counter) -> None:
    counter.ledger.recorder.insert_events(V1_EVENTS)

    kept, revoked = counter.ledger.find_token(KEPT_TOKEN), counter.ledger.find_token(REVOKED_TOKEN)

    assert kept is not None and (kept.id, kept.role, kept.expires_at, kept.revoked) == (KEPT_ID, "accountant", None,
                                                                                       False)
    assert revoked is not None and (revoked.id, revoked.role, revoked.expires_at, revoked.revoked) == (
        REVOKED_ID, "dispute", None, True)
    assert not kept.expired(datetime(2999, 1, 1, tzinfo=UTC))
    [issued, revocation] = counter.ledger.events.get(REVOKED_ID)
    assert isinstance(issued, ApiToken.Issued) and issued.expires_at is None  # upcast
    assert revocation.prev_hash == event_hash(issued)  # type: ignore[attr-defined]  # the chain as it was written
    for token_id in (KEPT_ID, REVOKED_ID):
        assert counter.ledger.history(token_id, ApiToken)[1].valid


def test_a_token_stored_as_version_1_can_be_revoked_and_its_chain_goes_on(counter: Counter) -> None:
    counter.ledger.recorder.insert_events(V1_EVENTS)

    run_alone(counter.ledger, Ledger.revoke_token(counter.stamp(None), KEPT_ID))

    assert counter.ledger.find_token(KEPT_TOKEN).revoked  # type: ignore[union-attr]
    records, check = counter.ledger.history(KEPT_ID, ApiToken)
    assert check.valid and [r["topic"].rsplit(".", 1)[-1] for r in records] == ["Issued", "Revoked"]
    assert "expires_at" not in records[0]  # null and added later: not part of the canonical form
