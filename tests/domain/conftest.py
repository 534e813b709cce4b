"""Fixtures for the domain tests: a counter with its till open, on the in-memory event store."""

from __future__ import annotations

import pytest

from tests.domain.world import Counter


@pytest.fixture
def counter() -> Counter:
    """Terminal 10000001 registered with default parameters, till open, operator 01 signed in."""
    return Counter.at_open_till()
