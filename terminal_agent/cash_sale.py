"""A cash sale: works offline too (its events wait in the journal until the service answers).

Amount, the customer confirms, cash tendered, change given, both receipts, completed. The agent
checks the amount against the terminal's limits itself, since offline nobody else can at that moment.
"""

from __future__ import annotations

import uuid

from terminal_agent.card_sale import SaleResult
from terminal_agent.counter import Counter, State
from terminal_agent.receipt_desk import ReceiptDesk
from terminal_agent.recorder import StreamRef
from terminal_agent.service_client import ServiceRefused


class CashSale:
    def __init__(self, counter: Counter, desk: ReceiptDesk) -> None:
        self.c, self.desk = counter, desk

    def run(self, amount_minor: int | None = None, tendered_minor: int | None = None) -> SaleResult:
        c = self.c
        till = c.require_till()
        if "cash" not in c.parameters.get("accepted_methods", ["card", "cash"]):
            c.cashier.show("unsupported_method", reason="cash")
            return SaleResult("unavailable")
        txn = StreamRef("transaction", str(uuid.uuid4()))
        trace_no = c.journal.next_trace_no()
        try:
            c.enter(State.AMOUNT)
            amount = amount_minor if amount_minor is not None else self._ask_amount()
            if amount is None:
                return SaleResult("cancelled")
            c.record(txn, {"type": "TransactionOpened", "kind": "sale", "payment_method": "cash",
                           "till_session_id": till.stream_id, "batch_no": c.batch_no or "000001",
                           "trace_no": trace_no})
            c.remember(txn, kind="sale", payment_method="cash", batch_no=c.batch_no or "000001", trace_no=trace_no,
                       status="open", currency=c.currency, amount_minor=amount)
            c.record(txn, {"type": "AmountEntered", "amount_minor": amount, "currency": c.currency})
            c.enter(State.CONFIRM)
            if not c.cashier.confirm("confirm_amount", amount=self.c.money(amount)):
                c.cashier.show("amount_not_confirmed")
                c.record(txn, {"type": "TransactionCancelled", "reason": "the customer did not confirm the amount"})
                c.remember(txn, status="cancelled")
                return SaleResult("cancelled", txn.stream_id)
            c.record(txn, {"type": "AmountConfirmed"})
            c.enter(State.CASH)
            tendered = tendered_minor if tendered_minor is not None else self._ask_tendered(amount)
            c.record(txn, {"type": "CashTendered", "amount_minor": tendered})
            change = tendered - amount
            if change:
                c.record(txn, {"type": "ChangeGiven", "amount_minor": change})
            c.remember(txn, tendered_minor=tendered, change_minor=change, outcome="cash")
            c.cashier.show("cash_tendered", tendered=self.c.money(tendered), change=self.c.money(change))
            printed = self.desk.print_copies(txn)
            c.record(txn, {"type": "TransactionCompleted"})
            c.remember(txn, status="completed")
            c.cashier.show("done")
            return SaleResult("approved", txn.stream_id, printed=printed)
        except ServiceRefused as exc:
            c.cashier.show("refused", detail=exc.detail)
            return SaleResult("cancelled", txn.stream_id if txn.version else None)
        finally:
            c.enter(State.IDLE)

    def _ask_amount(self) -> int | None:
        while True:
            amount = self.c.cashier.ask_amount("enter_amount")
            problem = None if amount is None else self.c.amount_problem(amount)
            if problem is None:
                return amount
            self.c.cashier.show("wrong_amount", reason=problem)

    def _ask_tendered(self, amount: int) -> int:
        while True:
            tendered = self.c.cashier.ask_amount("cash_tendered_prompt")
            if tendered is not None and tendered >= amount:
                return tendered
            self.c.cashier.show("cash_short")
