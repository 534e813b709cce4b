"""The service goes away mid-transaction: the counter carries on with what can be done offline, refuses
card payments, and forwards everything exactly once when the service is back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.virtual_card import VirtualCard
from terminal_agent.recorder import StreamRef
from terminal_agent.scripted_cashier import Customer
from tests.e2e.conftest import Counter


class StopsTheServiceOnConfirm:
    """The customer says yes to the amount — and at that moment the service goes down."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.original = counter.cashier.confirm

    def __call__(self, code: str, **values: Any) -> bool:
        self.counter.service.stop()
        self.counter.cashier.confirm = self.original  # type: ignore[method-assign]
        return self.original(code, **values)


def test_a_cash_sale_finishes_offline_and_reaches_the_ledger_exactly_once_after_reconnect(
        counter: Counter, until: Callable[..., bool]) -> None:
    card_sale = counter.agent.card.run  # an approved card sale first, to reprint while offline
    counter.cashier.next_customer(Customer(amount_minor=9_900, card=VirtualCard("unionpay"), pins=["1234"]))
    approved = card_sale("sale")
    assert approved.outcome == "approved"

    counter.cashier.confirm = StopsTheServiceOnConfirm(counter)  # type: ignore[method-assign]
    counter.cashier.next_customer(Customer())
    cash = counter.agent.cash.run(amount_minor=2_350, tendered_minor=5_000)

    assert cash.outcome == "approved" and cash.printed is True
    journal = counter.agent.counter.journal
    assert journal.backlog().queued >= 5  # confirmed, tendered, change, two receipts, completed
    counter.cashier.next_customer(Customer(amount_minor=1_000, card=VirtualCard("unionpay"), pins=["1234"]))
    refused = counter.agent.card.run("sale")
    assert refused.outcome == "unavailable" and counter.cashier.codes()[-1] == "network_down"
    facts = journal.sale(approved.transaction_id)
    assert counter.agent.receipts.print_copy(StreamRef("transaction", approved.transaction_id, facts["version"]),
                                             "customer") is True  # a reprint from the kept document
    assert "重印" in counter.printer.jobs[-1].decode("gb18030", "replace")

    counter.service.start()
    assert until(lambda: journal.backlog().queued == 0, 15), journal.backlog()

    assert journal.backlog().rejected == 0
    ledger = counter.events(cash.transaction_id)
    mine = [e for e in journal.events(cash.transaction_id) if e["state"] == "forwarded"]
    assert [(e["version"], e["type"]) for e in ledger] == [(e["version"], e["event"]["type"]) for e in mine]
    assert [e["type"] for e in ledger] == ["TransactionOpened", "AmountEntered", "AmountConfirmed", "CashTendered",
                                           "ChangeGiven", "ReceiptPrinted", "ReceiptPrinted", "TransactionCompleted"]
    reprints = [e["data"] for e in counter.events(approved.transaction_id) if e["type"] == "ReceiptPrinted"]
    assert [(r["copy"], r["reprint_no"]) for r in reprints] == [("merchant", 0), ("customer", 0), ("customer", 1)]
