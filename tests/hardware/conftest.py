"""Hardware fixtures: one real pcscd (with the vpcd virtual readers) for the whole session.

A missing pcscd fails these tests loudly, never skips them: a green run means the reader path was tested.
vpcd's TCP ports are fixed, so these tests must not run in parallel (the suite runs single-process).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hardware.pcscd import PcscDaemon, PcscdUnavailable


@pytest.fixture(scope="session")
def pcscd() -> Iterator[PcscDaemon]:
    daemon = PcscDaemon()
    try:
        daemon.start()
    except PcscdUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield daemon
    finally:
        daemon.stop()
