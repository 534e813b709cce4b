"""Settling a batch from a test, and a check that a terminal's view of its till stays in step.

The till session stream holds only what the terminal appends (the service records transaction
starts and blocks on the Terminal aggregate), so the version the counter tracks is always right;
``resync_session`` asserts exactly that instead of papering over a difference.
"""

from __future__ import annotations

from tests.counter import Till


def resync_session(till: Till) -> None:
    response = till.client.get(f"/v1/till-sessions/{till.session.stream_id}", headers=till.headers)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == till.session.version, "the service wrote into the terminal's stream"


def settle(till: Till) -> None:
    """BatchSettled (结算) for the open batch; the counter moves on to the next batch number."""
    resync_session(till)
    till.settle()
