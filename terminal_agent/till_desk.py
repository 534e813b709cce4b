"""The till's day: start of day (self-check, till opened, operator signed in, host sign-on), cash
count, X report, settlement (结算) with the Z report printout, and till close.

Start of day needs the service once (the operator's password is checked there and is never
journaled); after that the till keeps working offline for cash.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from domain.hardware import HardwareError
from domain.money import decimal_text
from domain.z_report import z_report_id_for
from projections.receipt import display_width
from terminal_agent.counter import Counter, State
from terminal_agent.journal import STREAM_PATHS
from terminal_agent.recorder import StreamRef
from terminal_agent.service_client import ServiceRefused, ServiceUnreachable

SOFTWARE_VERSION = "till-agent-1"


@dataclass(frozen=True, slots=True)
class SelfCheck:
    service_reachable: bool
    printer_online: bool
    paper_present: bool
    reader_present: bool

    def event_fields(self) -> dict[str, Any]:
        return {"service_reachable": self.service_reachable, "printer_online": self.printer_online,
                "paper_present": self.paper_present, "reader_present": self.reader_present,
                "software_version": SOFTWARE_VERSION}


class TillDesk:
    def __init__(self, counter: Counter) -> None:
        self.c = counter

    # ---- start of day ----------------------------------------------------------------------------------
    def self_check(self) -> SelfCheck:
        c = self.c
        c.enter(State.SELF_CHECK)
        try:
            status = c.printer.status()
            online, paper = status.online, status.paper != "out"
        except HardwareError:
            online = paper = False
        check = SelfCheck(c.client.healthy(), online, paper, any(r.present() for r in c.readers))
        ok, bad = "正常 ok", "异常 FAIL"
        c.cashier.show("self_check", service=ok if check.service_reachable else bad,
                       printer=ok if check.printer_online else bad, paper=ok if check.paper_present else bad,
                       reader=ok if check.reader_present else bad)
        return check

    def start_of_day(self, password: str, float_minor: int = 0) -> SelfCheck:
        """Self-check, open (or carry on with) the till, sign the operator in, sign on with the host."""
        c = self.c
        check = self.self_check()
        till_id = c.journal.get("till_session_id")
        state = None
        if till_id:
            try:
                state = c.client.till_session(till_id)
            except ServiceRefused:
                state = None
        if state is not None and state["is_open"]:
            c.till = StreamRef("till-session", till_id, int(state["version"]))
            c.cashier.show("till_resumed")
        else:
            c.till = StreamRef("till-session", str(uuid.uuid4()))
            c.journal.put("till_session_id", c.till.stream_id)
            c.recorder.record(c.till, {"type": "TillOpened", "float_minor": float_minor, "currency": c.currency,
                                       "self_check": check.event_fields()}, None, must_forward=True)
            c.cashier.show("till_opened", amount=self.c.money(float_minor))
            state = {"operator_no": None}
        if state.get("operator_no") != c.operator_no:
            self._sign_in(password)
        c.cashier.show("signed_in", operator=c.operator_no)
        self.sign_on()
        c.enter(State.IDLE)
        return check

    def _sign_in(self, password: str) -> None:
        """Sent straight to the service (the password is checked there); journaled without it."""
        c = self.c
        till = c.require_till()
        envelope = c.recorder.envelope(till, {"type": "OperatorSignedIn", "operator_no": c.operator_no,
                                              "password": password}, c.operator_no)
        c.recorder.drain(till)
        c.client.append(STREAM_PATHS["till-session"].format(till.stream_id), envelope)
        envelope["event"] = {"type": "OperatorSignedIn", "operator_no": c.operator_no}
        c.journal.record_forwarded("till-session", till.stream_id, till.version + 1, envelope)
        till.version += 1

    def sign_on(self) -> bool:
        """签到 with the acquirer host through the service: card payments need it once a day."""
        c = self.c
        try:
            reply = c.client.sign_on(c.terminal_id, c.operator_no, c.recorder.device_time())
        except (ServiceUnreachable, ServiceRefused) as exc:
            c.card_ready = False
            c.batch_no = c.batch_no or c.journal.get("batch_no") or "000001"
            c.cashier.show("card_unavailable", reason=getattr(exc, "detail", str(exc)))
            return False
        c.card_ready, c.batch_no = True, str(reply["batch_no"])
        c.journal.put("batch_no", c.batch_no)
        c.cashier.show("signed_on", batch=c.batch_no)
        return True

    # ---- during and at the end of the day -----------------------------------------------------------
    def count_cash(self, counted_minor: int, note: str = "") -> None:
        self.c.record(self.c.require_till(), {"type": "CashCounted", "counted_minor": counted_minor, "note": note})
        self.c.cashier.show("cash_counted", amount=self.c.money(counted_minor))

    def x_report(self) -> dict[str, Any]:
        """The open batch's totals from the agent's own record (works offline), printed."""
        c = self.c
        totals: dict[str, dict[str, int]] = {}
        for sale in c.journal.sales():
            if sale.get("batch_no") != c.batch_no or sale.get("status") != "completed":
                continue
            if sale.get("outcome") not in ("authorized", "cash"):
                continue
            key = f"{sale.get('brand') or 'cash'} {sale['kind']}"
            line = totals.setdefault(key, {"count": 0, "amount_minor": 0})
            line["count"] += 1
            line["amount_minor"] += int(sale.get("amount_minor") or 0)
        rows = [(key, f"{v['count']}  {self.c.money(v['amount_minor'])}") for key, v in sorted(totals.items())]
        self._print_slip(f"X 报表 X REPORT  批次 {c.batch_no}", rows, f"X-{c.terminal_id}-{c.batch_no}")
        return {"batch_no": c.batch_no, "lines": totals}

    def settle(self, z_wait_s: float = 10.0) -> dict[str, Any]:
        """结算: the service totals the batch, sends it to the host and opens the next; the Z report is printed."""
        c = self.c
        till = c.require_till()
        c.enter(State.SETTLING)
        try:
            c.recorder.drain(till)
            envelope = c.recorder.envelope(till, {}, c.operator_no)
            del envelope["event"]
            envelope["batch_no"] = c.batch_no
            reply = c.client.settle(till.stream_id, envelope)
        finally:
            c.enter(State.IDLE)
        till.version = int(reply["version"])
        settled, c.batch_no = str(reply["batch_no"]), str(reply["open_batch_no"])
        c.journal.put("batch_no", c.batch_no)
        host = reply.get("host") or {}
        c.cashier.show("settled", batch=settled, balanced="平账 balanced" if host.get("balanced", True) else
                       "不平 NOT balanced")
        z = self._z_report(settled, z_wait_s)
        if z is not None:
            self._print_z(z)
        return {"batch_no": settled, "host": host, "z_report": z}

    def close(self) -> None:
        c = self.c
        till = c.require_till()
        c.record(till, {"type": "OperatorSignedOut", "operator_no": c.operator_no})
        c.record(till, {"type": "TillClosed"})
        c.journal.put("till_session_id", None)
        c.till = None
        c.enter(State.CLOSED)
        c.cashier.show("till_closed")

    # ---- printouts ----------------------------------------------------------------------------------
    def _z_report(self, batch_no: str, wait_s: float) -> dict[str, Any] | None:
        """The service issues the Z report once its view reaches the settlement: wait for it (bounded)."""
        z_id = str(z_report_id_for(UUID(self.c.terminal_id), batch_no))
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return self.c.client.z_report(z_id)
            except (ServiceRefused, ServiceUnreachable):
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.2)

    def _print_z(self, z: dict[str, Any]) -> None:
        report = z["report"]
        rows = [("Z 号 Z NO", str(z["z_number"])), ("营业日 DAY", z["business_day"]),
                ("结算时间 SETTLED", z["settled_at"][:19])]
        for line in report.get("lines", []):
            rows.append((f"{line['brand']} {line['kind']}", f"{line['count']}  {self.c.money(line['gross_minor'])}"))
        for total in report.get("totals", []):
            currency = total.get("currency") or self.c.currency
            rows.append((f"合计 TOTAL {total.get('count', 0)}", f"{currency} "
                         f"{decimal_text(int(total.get('gross_minor', 0)), currency)}"))
        self._print_slip(f"Z 报表 Z REPORT  批次 {z['batch_no']}", rows, z["z_report_id"])

    def _print_slip(self, title: str, rows: list[tuple[str, str]], reference: str) -> None:
        printer = self.c.printer
        width = printer.columns
        lines = [title, "-" * width]
        for label, value in rows:
            gap = width - display_width(label) - display_width(value)
            lines.append(label + " " * gap + value if gap >= 1 else f"{label}\n{' ' * max(0, width - display_width(value))}{value}")
        lines.append("-" * width)
        try:
            printer.print_receipt("\n".join(lines) + "\n", reference)
        except HardwareError as exc:
            self.c.show_printer_error(exc)
