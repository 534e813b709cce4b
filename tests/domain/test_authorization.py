"""Which host replies the service can record, and which it must treat as no reply (then reverse)."""

from __future__ import annotations

from domain.acquirer import HostReply
from domain.authorization import _recordable


def test_a_well_formed_approval_and_a_decline_are_recordable() -> None:
    assert _recordable(HostReply("00", rrn="123456789012", auth_code="A1B2C3"))
    assert _recordable(HostReply("51"))


def test_an_approval_without_a_valid_auth_code_or_rrn_is_not_recordable() -> None:
    assert not _recordable(HostReply("00", rrn="123456789012", auth_code=""))
    assert not _recordable(HostReply("00", rrn="12345", auth_code="A1B2C3"))
    assert not _recordable(HostReply("00", rrn="123456789012", auth_code="a1b2c3"))  # lower case is refused


def test_a_malformed_response_code_is_not_recordable() -> None:
    assert not _recordable(HostReply("5"))
    assert not _recordable(HostReply("x1"))
