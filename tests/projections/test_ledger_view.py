"""The ledger view on SQLite and PostgreSQL: exactly once, a page at a time, rebuildable, one runner."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, Tracking

from api.services import Services
from domain.ledger import Ledger
from projections.ledger_view import LedgerViewProjection, open_view
from domain.errors import AlreadyExists
from domain.stamp import Stamp
from domain.z_report import ZReport, z_report_id_for
from projections.rows import TERMINAL, TILL, TRANSACTION, Z_REPORT, Folder, MemoryRows
import projections.runner as runner_module
from projections.runner import PageRunner
from tests.integration.counter_commands import CounterCommands, card_fields


def a_day_at_the_counter(services: Services, counter: CounterCommands) -> dict[str, UUID]:
    """Setup, two card sales (one voided), a refund of the other after settlement, a decline, a cash sale."""
    run = services.executor.run
    for command in counter.setup():
        run(command)
    ids = {name: uuid4() for name in ("sale", "voided", "void", "declined", "cash", "refund")}
    for command in counter.card_sale(ids["sale"], 10_000, brand="visa", last4="4242"):
        run(command)
    for command in counter.card_sale(ids["voided"], 2_500):
        run(command)
    void = ids["void"]
    for command in [counter.open(void, kind="void", original=ids["voided"]),
                    counter.txn(void, "AmountEntered", amount_minor=2_500, currency="CNY"),
                    counter.txn(void, "AmountConfirmed"),
                    counter.txn(void, "CardPresented", **card_fields()),
                    counter.txn(void, "PinVerified", method="online"),
                    counter.txn(void, "AuthorizationRequested", stan=counter.next_trace()),
                    counter.txn(void, "Authorized", auth_code="V00001", rrn="900000000001", response_code="00"),
                    counter.txn(void, "TransactionCompleted")]:
        run(command)
    declined = ids["declined"]
    for command in [counter.open(declined), counter.txn(declined, "AmountEntered", amount_minor=99_900, currency="CNY"),
                    counter.txn(declined, "AmountConfirmed"), counter.txn(declined, "CardPresented", **card_fields()),
                    counter.txn(declined, "PinVerified", method="online"),
                    counter.txn(declined, "AuthorizationRequested", stan=counter.next_trace()),
                    counter.txn(declined, "Declined", response_code="51", reason="insufficient funds"),
                    counter.txn(declined, "TransactionCompleted")]:
        run(command)
    cash = ids["cash"]
    for command in [counter.open(cash, method="cash"),
                    counter.txn(cash, "AmountEntered", amount_minor=1_234, currency="CNY"),
                    counter.txn(cash, "AmountConfirmed"), counter.txn(cash, "CashTendered", amount_minor=2_000),
                    counter.txn(cash, "ChangeGiven", amount_minor=766), counter.txn(cash, "TransactionCompleted")]:
        run(command)
    run(counter.till("CashCounted", counted_minor=51_200, note="one coin short"))
    run(counter.till("BatchSettled", batch_no="000001"))
    refund = ids["refund"]
    for command in [counter.open(refund, kind="refund", original=ids["sale"], batch_no="000002"),
                    counter.txn(refund, "AmountEntered", amount_minor=3_000, currency="CNY"),
                    counter.txn(refund, "AmountConfirmed"), counter.txn(refund, "CardPresented", **card_fields("visa", "4242")),
                    counter.txn(refund, "PinVerified", method="online"),
                    counter.txn(refund, "AuthorizationRequested", stan=counter.next_trace()),
                    counter.txn(refund, "Authorized", auth_code="R00001", rrn="900000000002", response_code="00"),
                    counter.txn(refund, "TransactionCompleted")]:
        run(command)
    return ids


def recomputed(ledger: Ledger) -> MemoryRows:
    """An independent fold of the whole log in memory: what the view must equal."""
    rows, folder = MemoryRows(), Folder()
    for notification in ledger.recorder.select_notifications(start=1, limit=1_000_000):
        if notification.topic.rpartition(":")[2].split(".")[0] in ("Terminal", "TillSession", "Transaction", "ZReport"):
            folder.apply(rows, ledger.mapper.to_domain_event(notification), notification.id)
    return rows


def view_rows(services: Services, expected: MemoryRows) -> dict[str, dict[str, Any]]:
    view = services.views().view
    return {table: view.rows(table, list(rows)) for table, rows in expected.tables.items()}


@pytest.fixture
def counter(clock: Any) -> CounterCommands:
    return CounterCommands(clock)


def test_the_view_applied_a_page_at_a_time_equals_an_independent_fold_of_the_log(
        services: Services, counter: CounterCommands) -> None:
    ids = a_day_at_the_counter(services, counter)
    runner = services.views().runner
    runner.page_size = 7  # many pages, events of one transaction split across them

    applied = runner.catch_up()

    expected = recomputed(services.ledger)
    assert applied == runner.head() == services.views().projection.position()
    assert view_rows(services, expected) == expected.tables
    sale = expected.tables[TRANSACTION][str(ids["sale"])]
    assert sale["credits_applied_minor"] == 3_000 and sale["related"] == [{"id": str(ids["refund"]), "kind": "refund"}]
    assert expected.tables[TRANSACTION][str(ids["voided"])]["voided_by"] == str(ids["void"])
    assert set(expected.tables) == {TERMINAL, TILL, TRANSACTION, Z_REPORT}


def test_a_page_applied_twice_is_refused_whole_and_changes_nothing(services: Services, counter: CounterCommands) -> None:
    a_day_at_the_counter(services, counter)
    views = services.views()
    views.runner.catch_up()
    before = view_rows(services, recomputed(services.ledger))
    first_page = list(services.ledger.recorder.select_notifications(start=1, limit=5))

    with pytest.raises(IntegrityError):
        views.projection.process_page(first_page, services.ledger)
    with pytest.raises(IntegrityError):  # the library's one-event path keeps the same guarantee
        event = services.ledger.mapper.to_domain_event(first_page[0])
        views.projection.process_event(event, Tracking(services.ledger.name, first_page[0].id))

    assert view_rows(services, recomputed(services.ledger)) == before


def test_a_rebuild_from_zero_gives_the_same_rows(services: Services, counter: CounterCommands) -> None:
    a_day_at_the_counter(services, counter)
    views = services.views()
    views.runner.catch_up()
    expected = recomputed(services.ledger)
    seen: list[tuple[int, int]] = []

    applied = views.runner.rebuild(lambda position, head: seen.append((position, head)))

    assert applied == views.runner.head()
    assert seen[-1][0] == seen[-1][1] == views.runner.head()
    assert view_rows(services, expected) == expected.tables


def test_a_second_runner_waits_while_the_first_holds_the_projection_and_takes_over_after(
        services: Services, counter: CounterCommands) -> None:
    a_day_at_the_counter(services, counter)
    first = services.views().runner
    second_view = open_view(services.settings)
    second = PageRunner(services.ledger, LedgerViewProjection(second_view), services.settings)
    try:
        assert first.lock.acquire(threading.Event())
        assert not second.lock.acquire(threading.Event(), blocking=False)
        assert second.refresh(timeout=0.2) is False  # nobody applies: the first holds the lock idle
        first.lock.release()
        assert second.refresh(timeout=5)  # free again: it applies the pages itself
        assert second.projection.position() == first.head()
    finally:
        second_view.datastore.close()


def test_an_embedded_runner_follows_new_appends_and_wakes_readers_waiting_for_their_position(
        services: Services, counter: CounterCommands) -> None:
    views = services.views()
    views.start(embedded=True)
    for command in counter.setup():
        services.executor.run(command)
    sale = uuid4()
    results = [services.executor.run(command) for command in counter.card_sale(sale, 4_200)]
    position = results[-1].position

    assert views.wait_for(position, timeout=10)
    row = views.view.row(TRANSACTION, str(sale))
    assert row is not None and row["status"] == "completed" and row["amount_minor"] == 4_200
    assert views.status()[0]["lag"] == 0


def z_reports(ledger: Ledger) -> list[Any]:
    return [n for n in ledger.recorder.select_notifications(start=1, limit=1_000_000)
            if n.topic.endswith("ZReport.Issued")]


def test_settling_a_batch_issues_its_numbered_z_report_once_with_the_batch_totals(
        services: Services, counter: CounterCommands) -> None:
    a_day_at_the_counter(services, counter)
    views = services.views()
    views.runner.catch_up()
    views.runner.rebuild()  # a rebuilt view meets the same settlement again

    [issued] = z_reports(services.ledger)
    z = services.ledger.load(z_report_id_for(counter.terminal_id, "000001"), ZReport)
    assert issued.originator_id == z.id and (z.batch_no, z.z_number) == ("000001", 1)
    lines = {(line["brand"], line["kind"]): line for line in z.report["lines"]}
    assert lines[("visa", "sale")]["gross_minor"] == 10_000
    assert lines[("unionpay", "sale")]["gross_minor"] == 2_500 and lines[("unionpay", "void")]["gross_minor"] == -2_500
    assert lines[("cash", "sale")]["gross_minor"] == 1_234
    assert [d["count"] for d in z.report["declined"]] == [1]
    assert ("visa", "refund") not in lines  # the refund belongs to the next batch
    with pytest.raises(AlreadyExists):  # immutable: the same batch cannot be reported twice
        services.executor.run(Ledger.issue_z_report(Stamp(counter.terminal_id, "01", None, services.clock.now()),
                                                    counter.terminal_id, "000001", "2026-11-24", "x", {}))
    assert [r["batch_no"] for r in views.view.day(Z_REPORT, "2026-11-24")] == ["000001"]


def test_an_embedded_runner_rides_out_a_store_failure_and_catches_up_once_it_passes(
        services: Services, counter: CounterCommands, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "LOCK_RETRY_S", 0.05)
    views = services.views()
    view_class = type(views.view)
    real_insert = view_class._insert_tracking
    failures = {"left": 2}

    def flaky(self: Any, curs: Any, tracking: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("the server closed the connection unexpectedly")
        real_insert(self, curs, tracking)

    monkeypatch.setattr(view_class, "_insert_tracking", flaky)
    for command in counter.setup():
        services.executor.run(command)
    last = [services.executor.run(c) for c in counter.card_sale(uuid4(), 900)][-1]

    views.start(embedded=True)

    assert views.wait_for(last.position, timeout=10)
    assert failures["left"] == 0 and views.runner.failure is None
    assert views.status()[0]["lag"] == 0
