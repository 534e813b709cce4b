"""`till simulate` runs whole days at several counters against a running service and the printed
reconciliation matches what was sold (in-process virtual readers, TCP printers, the host simulator)."""

from __future__ import annotations

from pathlib import Path

from adapters.group_commit import run_alone
from api.auth import new_token
from domain.ledger import Ledger
from domain.stamp import Stamp
from terminal_agent.simulate import simulate
from tests.e2e.live_service import LiveService


def test_a_simulated_day_at_two_counters_reconciles_with_what_was_sold(service: LiveService, tmp_path: Path) -> None:
    services = service.services
    assert services is not None
    admin_token = new_token()
    run_alone(services.ledger, Ledger.issue_token(Stamp(None, None, None, services.clock.now()), admin_token,
                                                  "admin", None, "simulate"))
    printed: list[str] = []

    status = simulate(service.url, admin_token, terminals=2, sales=8, seed=7, work_dir=tmp_path / "agents",
                      out=printed.append)

    text = "\n".join(printed)
    assert status == 0, text
    assert "The ledger matches what was sold." in text and "ERROR" not in text
    assert "{'approved': 8}" in text  # every customer of each counter paid
    journals = list((tmp_path / "agents").rglob("journal.sqlite3"))
    assert len(journals) == 2
    for journal in journals:  # the card numbers the virtual cards carry never reach an agent's disk
        data = b"".join(path.read_bytes() for path in journal.parent.glob("journal.sqlite3*"))  # with its WAL
        for pan in (b"6222020000031234", b"4761739001010010", b"5454545454545454"):
            assert pan not in data
