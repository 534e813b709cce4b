"""Printing the two copies (商户存根 / 持卡人存根), reprints, and recording what the printer did.

Sent is not printed: the printer's status is read before and after each copy. A copy is recorded
``ReceiptPrinted`` (with the SHA-256 of the document on paper) only when the printer was ready before
and still is after; otherwise ``PrintFailed`` with the reason, and the cashier reprints later.

The document comes from the service (so the hash matches what a dispute handler sees) and is kept in
the journal, so reprints work offline. A cash sale made offline is printed from a document the agent
builds itself, dated by the terminal's clock.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from domain.hardware import HardwareError, PaperOut, PrinterOffline
from projections.receipt import ReceiptFacts, receipt_document, receipt_sha256, render_text
from terminal_agent.counter import Counter, State
from terminal_agent.recorder import StreamRef
from terminal_agent.service_client import ServiceUnreachable

COPIES = ("merchant", "customer")
_COPY_WORDS = {"merchant": "商户存根 merchant copy", "customer": "持卡人存根 customer copy"}


class ReceiptDesk:
    def __init__(self, counter: Counter, lang: str = "zh") -> None:
        self.counter, self.lang = counter, lang

    def print_copies(self, txn: StreamRef) -> bool:
        """Both copies of a transaction's first print; True when both came out."""
        return all([self.print_copy(txn, copy) for copy in COPIES])

    def print_copy(self, txn: StreamRef, copy: str) -> bool:
        """The next print of one copy (the first, or an audited reprint); True when it came out."""
        c = self.counter
        c.enter(State.PRINTING)
        sale = c.journal.sale(txn.stream_id) or {}
        reprint_no = int(sale.get("prints", {}).get(copy, 0))
        printer = c.printer
        event: dict[str, Any]
        try:
            document, sha = self._document(txn, copy, reprint_no)
        except ServiceUnreachable as exc:  # a card slip first printed while the service is down
            c.cashier.show("network_down")
            c.record(txn, {"type": "PrintFailed", "copy": copy, "printer": printer.name, "reprint_no": reprint_no,
                           "reason": f"{exc.code}: the receipt document is not available offline"})
            return False
        c.cashier.show("printing", copy=_COPY_WORDS[copy])
        try:
            before = printer.status()
            if not before.ready:
                raise _not_ready(before)
            printer.print_receipt(render_text(document, printer.columns, self.lang), document["reference"])  # type: ignore[arg-type]
            after = printer.status()
            if not after.ready:  # it stopped while printing: the copy may be cut short
                raise _not_ready(after)
            event = {"type": "ReceiptPrinted", "copy": copy, "printer": printer.name, "reprint_no": reprint_no,
                     "receipt_sha256": sha}
        except HardwareError as exc:
            c.show_printer_error(exc)
            event = {"type": "PrintFailed", "copy": copy, "printer": printer.name, "reprint_no": reprint_no,
                     "reason": f"{exc.code}: {exc.detail}"[:200]}
        c.record(txn, event)
        printed = event["type"] == "ReceiptPrinted"
        prints = dict(sale.get("prints", {"merchant": 0, "customer": 0}))
        if printed:
            prints[copy] = reprint_no + 1
            c.cashier.show("printed")
        c.remember(txn, prints=prints)
        return printed

    def _document(self, txn: StreamRef, copy: str, reprint_no: int) -> tuple[dict[str, Any], str]:
        journal = self.counter.journal
        kept = journal.receipt(txn.stream_id, copy)
        if kept is None:
            try:
                answer = self.counter.client.receipt(txn.stream_id, copy)
                document = answer["document"]
            except ServiceUnreachable:
                document = self._offline_cash_document(txn, copy)
            journal.keep_receipt(txn.stream_id, copy, document, receipt_sha256(document))
        else:
            document = kept[0]
        if reprint_no > 0:  # a reprint's document differs from the original's in this key alone
            document = {**document, "reprint": {"number": reprint_no, "zh": "重印", "en": "REPRINT"}}
        return document, receipt_sha256(document)

    def _offline_cash_document(self, txn: StreamRef, copy: str) -> dict[str, Any]:
        c = self.counter
        sale = c.journal.sale(txn.stream_id)
        if sale is None or sale.get("payment_method") != "cash":
            raise ServiceUnreachable("the receipt of a card transaction comes from the service")
        t = c.terminal
        facts = ReceiptFacts(
            transaction_id=txn.stream_id, kind=sale["kind"], payment_method="cash", result="approved",
            merchant_name=t["merchant_name"], merchant_no=t["merchant_no"], terminal_no=t["terminal_no"],
            operator_no=c.operator_no, batch_no=sale["batch_no"], trace_no=sale["trace_no"],
            local_time=c.now().astimezone(ZoneInfo(c.parameters["timezone"])),
            amount_minor=sale["amount_minor"], currency=sale["currency"],
            cash_tendered_minor=sale.get("tendered_minor"), change_given_minor=sale.get("change_minor"))
        return receipt_document(facts, copy)  # type: ignore[arg-type]


def _not_ready(status: Any) -> HardwareError:
    # Paper first: a printer whose roll ran out also reports itself offline.
    if status.paper == "out":
        return PaperOut("the printer reports no paper")
    return PrinterOffline("the printer reports itself offline")
