"""A randomized day at the counter, projected on both stores: the view's reconciliation equals an
independent computation from the ledger's own aggregates, and a runner that dies mid-page and is
restarted ends with exactly the views of a clean rebuild (nothing counted twice, nothing lost)."""

from __future__ import annotations

import random
from collections import Counter as Tally
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from api.routers.reports import build_day_report
from api.services import Services
from domain.ledger import Ledger
from domain.transaction import Transaction
from projections.aggregates import AGGREGATES
from projections.reconciliation import day_report
from projections.rows import TERMINAL, TILL, TRANSACTION
from tests.integration.counter_commands import CounterCommands, card_fields

DAY = "2026-11-24"
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
BRANDS = ("unionpay", "visa", "mastercard")


class RandomDay:
    """Drives one terminal through a seeded mix of every kind of transaction the day can hold."""

    def __init__(self, services: Services, counter: CounterCommands, seed: int) -> None:
        self.services, self.counter, self.rng = services, counter, random.Random(seed)
        self.sales: list[tuple[UUID, int, str, str, str]] = []  # completed card sales: id, amount, batch, card

    def run(self, *commands: Any) -> None:
        for command in commands:
            self.services.executor.run(command)

    def card_steps(self, txn: UUID, amount: int, brand: str, last4: str) -> list[Any]:
        c = self.counter
        return [c.txn(txn, "AmountEntered", amount_minor=amount, currency="CNY"), c.txn(txn, "AmountConfirmed"),
                c.txn(txn, "CardPresented", **card_fields(brand, last4)),
                c.txn(txn, "PinVerified", method="online"),
                c.txn(txn, "AuthorizationRequested", stan=c.next_trace())]

    def one(self, batch: str, choice: str | None = None) -> None:
        c, rng, txn = self.counter, self.rng, uuid4()
        amount, brand, last4 = rng.randrange(1, 200_000), rng.choice(BRANDS), f"{rng.randrange(10_000):04d}"
        choice = choice or rng.choice(["sale"] * 5 + ["cash", "declined", "reversed", "cancelled", "void", "refund"])
        rrn = f"{rng.randrange(10**12):012d}"

        def approved() -> Any:  # built when its turn comes: the counter numbers versions as commands are made
            return c.txn(txn, "Authorized", auth_code="A1B2C3", rrn=rrn, response_code="00")
        if choice == "cash":
            self.run(c.open(txn, method="cash", batch_no=batch), c.txn(txn, "AmountEntered", amount_minor=amount,
                     currency="CNY"), c.txn(txn, "AmountConfirmed"), c.txn(txn, "CashTendered", amount_minor=amount),
                     c.txn(txn, "TransactionCompleted"))
        elif choice == "cancelled":
            self.run(c.open(txn, batch_no=batch), c.txn(txn, "TransactionCancelled", reason="customer left"))
        elif choice in ("void", "refund"):
            if choice == "void":
                pool = [s for s in self.sales if s[2] == batch]
            else:
                pool = [s for s in self.sales if s[2] != batch]
            if not pool:
                return self.one(batch)
            picked = pool[rng.randrange(len(pool))]
            self.sales.remove(picked)  # one credit per sale keeps the script simple
            original, paid, _, brand, last4 = picked
            credit = paid if choice == "void" else rng.randrange(1, paid + 1)
            self.run(c.open(txn, kind=choice, original=original, batch_no=batch),
                     *self.card_steps(txn, credit, brand, last4))
            self.run(approved(), c.txn(txn, "TransactionCompleted"))
        else:
            self.run(c.open(txn, batch_no=batch), *self.card_steps(txn, amount, brand, last4))
            if choice == "sale":
                self.run(approved(), c.txn(txn, "TransactionCompleted"))
                self.sales.append((txn, amount, batch, brand, last4))
            elif choice == "declined":
                self.run(c.txn(txn, "Declined", response_code="51", reason="insufficient funds"),
                         c.txn(txn, "TransactionCompleted"))
            elif choice == "reversed":
                self.run(c.txn(txn, "OutcomeUnknown", reason="timeout"),
                         c.txn(txn, "Reversed", reason_code="4021", response_code="00"),
                         c.txn(txn, "TransactionCompleted"))
            else:  # unknown: left in doubt (the till stays blocked for card sales, so do it last)
                self.run(c.txn(txn, "OutcomeUnknown", reason="timeout"))
        return None

    def play(self, per_batch: int) -> None:
        self.run(*self.counter.setup())
        for _ in range(per_batch):
            self.one("000001")
        self.run(self.counter.till("CashCounted", counted_minor=self.rng.randrange(40_000, 60_000), note="count"))
        self.run(self.counter.till("BatchSettled", batch_no="000001"))
        for _ in range(per_batch):
            self.one("000002")
        self.one("000002", "unknown")  # last: an unknown outcome blocks the till for card sales


def independent_lines(ledger: Ledger) -> Tally[tuple[str, str]]:
    """Gross per (brand, kind) straight from the Transaction aggregates, not from the projection."""
    gross: Tally[tuple[str, str]] = Tally()
    for notification in ledger.recorder.select_notifications(start=1, limit=1_000_000):
        if not notification.topic.endswith("Transaction.TransactionOpened"):
            continue
        txn = ledger.load(notification.originator_id, Transaction)
        counts = txn.status == "completed" and (txn.payment_method == "cash" or txn.outcome == "authorized")
        if counts:
            brand = "cash" if txn.payment_method == "cash" else txn.card["brand"]
            gross[(brand, txn.kind)] += (-1 if txn.kind in ("void", "refund") else 1) * (txn.amount_minor or 0)
    return gross


def whole_view(services: Services) -> dict[str, Any]:
    view = services.views().view
    everything = {table: sorted(view._select(f"SELECT doc FROM {view._prefix}{table}", []), key=lambda r: r["id"])
                  for table in (TERMINAL, TILL, TRANSACTION)}
    for aggregate in AGGREGATES:
        everything[aggregate.table] = sorted(view.aggregate_rows(aggregate), key=repr)
    return everything


@pytest.mark.parametrize("seed", [7, 2026])
def test_a_random_days_reconciliation_equals_an_independent_computation_from_the_ledger(
        services: Services, clock: Any, seed: int) -> None:
    RandomDay(services, CounterCommands(clock), seed).play(per_batch=25)
    views = services.views()
    views.runner.page_size = random.Random(seed).randrange(3, 40)
    views.runner.catch_up()

    report = build_day_report(views, DAY, None, NOW)
    view = views.view
    tills = view.day(TILL, DAY)
    terminals = list(view.rows(TERMINAL, [t["terminal_id"] for t in tills]).values())
    from_rows = day_report(DAY, view.day(TRANSACTION, DAY), tills, terminals, generated_at=NOW.isoformat())

    gross: Tally[tuple[str, str]] = Tally()
    for line in report["lines"]:
        gross[(line["brand"], line["kind"])] += line["gross_minor"]
    assert +gross == +independent_lines(services.ledger)
    for section in ("lines", "totals", "declined", "reversed", "in_doubt", "cash"):
        assert report[section] == from_rows[section], section


def test_a_runner_that_dies_mid_page_and_restarts_ends_with_the_views_of_a_clean_rebuild(
        services: Services, clock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    RandomDay(services, CounterCommands(clock), 11).play(per_batch=15)
    views = services.views()
    views.runner.page_size = 17
    view = views.view
    real_insert = type(view)._insert_tracking
    calls = {"n": 0}

    def dies_on_the_third_page(self: Any, curs: Any, tracking: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the page's rows and totals are written; the process dies before commit
            raise KeyboardInterrupt("killed mid-page")
        real_insert(self, curs, tracking)

    monkeypatch.setattr(type(view), "_insert_tracking", dies_on_the_third_page)
    with pytest.raises(KeyboardInterrupt):
        views.runner.catch_up()
    assert views.projection.position() == 2 * 17
    monkeypatch.setattr(type(view), "_insert_tracking", real_insert)

    views.runner.catch_up()  # the restarted runner
    resumed = whole_view(services)
    views.runner.rebuild()

    assert resumed == whole_view(services)
