"""Faults under a load of simulated terminals on PostgreSQL: after each, nothing acknowledged is lost,
nothing is recorded twice, the view equals a recomputation from the events, the acquirer host and the
ledger agree on every approval, and the service answers again within 5 s.

The real service (`till serve`) and projection worker (`till project run`) run as subprocesses on the
suite's own PostgreSQL cluster, on loopback; the scenarios and checks are in ``tests.faults.scenarios``
and ``tests.faults.checks`` (shared with bench/faults.py, which runs them bigger: docs/reliability.md).
CI scale: 8 terminals, a few seconds of load around each fault, a 5 s agent cut (the bench cuts 60 s).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.private_postgres import PrivatePostgres
from tests.faults.scenarios import CI, RECOVERY_LIMIT_S, FaultReport, run_fault, table

pytestmark = pytest.mark.postgres


def held(report: FaultReport) -> None:
    """The promises every fault must keep, with the run's table row and its problems when one fails."""
    why = "\n".join([table([report]), *report.problems, f"notes: {report.notes}"])
    assert report.acknowledged > 0, why
    assert report.lost == 0, why
    assert report.duplicated == 0, why
    assert report.projection_equal, why
    assert report.host_consistent, why
    assert report.host_approvals > 0, why
    assert report.recovery_s is not None and report.recovery_s <= RECOVERY_LIMIT_S, why


def test_killing_the_service_mid_load_and_restarting_it_loses_nothing_acknowledged_and_records_nothing_twice(
        private_postgres: PrivatePostgres, tmp_path: Path) -> None:
    report = run_fault("kill_service", private_postgres, CI, tmp_path)
    held(report)
    counts = report.notes["client counts"]
    assert counts.get("no answer (connection or timeout)", 0) > 0, "the kill interrupted no request"


def test_restarting_postgresql_mid_load_loses_nothing_acknowledged_and_the_service_is_ready_again_within_5_s(
        private_postgres: PrivatePostgres, tmp_path: Path) -> None:
    held(run_fault("restart_postgres", private_postgres, CI, tmp_path))


def test_a_projection_worker_killed_mid_page_and_restarted_leaves_a_view_equal_to_a_recomputation_from_the_events(
        private_postgres: PrivatePostgres, tmp_path: Path) -> None:
    report = run_fault("kill_projector", private_postgres, CI, tmp_path)
    held(report)
    assert report.notes["killed with a view transaction open (mid-page)"] is True, report.notes


def test_an_agent_cut_off_from_the_service_sells_cash_offline_refuses_cards_and_forwards_each_event_once(
        private_postgres: PrivatePostgres, tmp_path: Path) -> None:
    report = run_fault("cut_agent", private_postgres, CI, tmp_path)
    held(report)
    outcomes = report.notes["agent outcomes"]
    assert outcomes.get("cash approved (offline)", 0) > 0, outcomes
    assert outcomes.get("card unavailable (offline)", 0) > 0, outcomes
    assert not any("approved (offline)" in o for o in outcomes if o.startswith("card")), outcomes
    assert report.notes["journal rows still queued / rejected"] == "0 / 0"


def test_an_acquirer_host_that_drops_delays_and_duplicates_replies_leaves_no_approval_unrecorded_or_unreversed(
        private_postgres: PrivatePostgres, tmp_path: Path) -> None:
    report = run_fault("acquirer_faults", private_postgres, CI, tmp_path)
    held(report)
    assert report.reversed_at_host > 0, "no authorization was left in doubt and reversed"
