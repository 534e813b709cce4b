"""``till simulate``: whole days at N counters on virtual hardware, against a running service.

Each terminal gets its own registration, token, agent, journal, virtual chip reader, contactless pad
and TCP receipt printer. Its cashier and customers are scripted (seeded, so a run can be repeated):
chip sales with a PIN, taps under the no-CVM limit, signature cards and cash. At the end of the day
every till counts its cash, settles (the Z report prints) and closes; then the day's reconciliation
is read from the service and compared with what the customers paid.
"""

from __future__ import annotations

import random
import secrets
import tempfile
import threading
import time
from collections import Counter as Tally
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from adapters.escpos_printer import EscposPrinter
from adapters.printer_sink import PrinterSink
from adapters.virtual_card import PROFILES, VirtualCard
from adapters.virtual_reader import VirtualCardReader
from domain.money import decimal_text
from terminal_agent.bootstrap import build_agent
from terminal_agent.scripted_cashier import Customer, ScriptedCashier
from terminal_agent.settings import AgentSettings
from terminal_agent.virtual_hands import InProcessHands

MERCHANT_NO = "898310048990001"
TIMEZONE = "Asia/Shanghai"
PIN = "1234"
PASSWORD = "simulated-cashier-01"


@dataclass
class TerminalDay:
    """What one simulated counter sold (what the customers paid), to compare with the ledger."""

    terminal_no: str
    paid: Tally[tuple[str, str]] = field(default_factory=Tally)  # (brand|cash, kind) -> minor units
    count: Tally[tuple[str, str]] = field(default_factory=Tally)
    outcomes: Tally[str] = field(default_factory=Tally)
    receipts: int = 0
    error: str | None = None


class Admin:
    """The admin API calls the simulator needs to set up its terminals."""

    def __init__(self, service_url: str, admin_token: str) -> None:
        self.http = httpx.Client(base_url=service_url, headers={"Authorization": f"Bearer {admin_token}"},
                                 timeout=10.0)

    def terminal(self, terminal_no: str) -> tuple[str, str]:
        """Register a terminal with one operator; its id and a terminal token."""
        body = {"merchant_name": "模拟商店 Simulated Store", "merchant_no": MERCHANT_NO, "terminal_no": terminal_no,
                "timezone": TIMEZONE, "currency": "CNY", "no_cvm_limit_minor": 100_000,
                "fee_rates_ppm": {"unionpay": 3_800, "visa": 5_500, "mastercard": 5_500}}
        terminal_id = self._post("/v1/terminals", body)["terminal_id"]
        self._post(f"/v1/terminals/{terminal_id}/operators", {"operator_no": "01", "name": "模拟收银员",
                                                              "password": PASSWORD})
        token = self._post("/v1/tokens", {"role": "terminal", "terminal_id": terminal_id,
                                          "label": f"till simulate {terminal_no}"})["token"]
        return terminal_id, token

    def close(self) -> None:
        self.http.close()

    def day_report(self, day: str) -> dict[str, Any]:
        response = self.http.get("/v1/reports/day", params={"date": day})
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        if response.status_code >= 400:
            raise SystemExit(f"till simulate: {path} answered {response.status_code}: {response.text[:300]}")
        return response.json()  # type: ignore[no-any-return]


def customer_for(rng: random.Random) -> Customer:
    """A seeded mix of the day's customers."""
    roll = rng.random()
    if roll < 0.25:
        amount = rng.randrange(100, 30_000)
        return Customer(amount_minor=amount, tendered_minor=amount + rng.choice([0, 0, 50, 1_000, 5_000]))
    if roll < 0.45:  # a tap under the no-CVM limit (小额免密免签)
        return Customer(amount_minor=rng.randrange(100, 100_000), card=VirtualCard(PROFILES["visa"], pin=PIN),
                        presentations=["contactless"])
    if roll < 0.6:  # a chip card whose CVM is a signature
        return Customer(amount_minor=rng.randrange(1_000, 300_000),
                        card=VirtualCard(PROFILES["mastercard"], pin=PIN), presentations=["chip"])
    return Customer(amount_minor=rng.randrange(1_000, 500_000), card=VirtualCard(PROFILES["unionpay"], pin=PIN),
                    presentations=["chip"], pins=[PIN])


def run_terminal(service_url: str, admin: Admin, terminal_no: str, sales: int, seed: int, work: Path,
                 day: TerminalDay) -> None:
    rng = random.Random(seed)
    terminal_id, token = admin.terminal(terminal_no)
    contact, contactless = VirtualCardReader("virtual chip", "chip"), VirtualCardReader("virtual tap", "contactless")
    cashier = ScriptedCashier(InProcessHands(contact, contactless))
    with PrinterSink() as sink:
        settings = AgentSettings(service_url=service_url, token=token, terminal_id=terminal_id,  # type: ignore[arg-type]
                                 data_dir=work / terminal_no, printer_url=f"tcp://127.0.0.1:{sink.port}",
                                 card_timeout_s=5.0, forward_interval_s=0.5)
        agent = build_agent(settings, cashier, readers=[contact, contactless],
                            printer=EscposPrinter(settings.printer_url, columns=32))
        try:
            cashier.next_customer(Customer())
            agent.till.start_of_day(PASSWORD, float_minor=50_000)
            cash_in = 0
            for _ in range(sales):
                customer = customer_for(rng)
                cashier.next_customer(customer)
                amount = customer.amount_minor or 0
                if customer.card is None:
                    result = agent.cash.run(customer.amount_minor, customer.tendered_minor)
                    brand = "cash"
                    if result.outcome == "approved":
                        cash_in += amount
                else:
                    result = agent.card.run("sale")
                    brand = customer.card.profile.brand
                day.outcomes[result.outcome] += 1
                if result.outcome == "approved":
                    day.paid[(brand, "sale")] += amount
                    day.count[(brand, "sale")] += 1
            cashier.next_customer(Customer())
            agent.till.count_cash(50_000 + cash_in, "end of day")
            agent.till.settle()
            agent.till.close()
            day.receipts = len(sink.jobs)
        except Exception as exc:  # noqa: BLE001 - one broken counter is reported, the others carry on
            day.error = f"{type(exc).__name__}: {exc}"
        finally:
            agent.close()


def simulate(service_url: str, admin_token: str, terminals: int, sales: int, seed: int,
             work_dir: Path | None = None, out: Any = print) -> int:
    admin = Admin(service_url, admin_token)
    try:
        return _simulate(admin, service_url, terminals, sales, seed, work_dir, out)
    finally:
        admin.close()


def _simulate(admin: Admin, service_url: str, terminals: int, sales: int, seed: int, work_dir: Path | None,
              out: Any) -> int:
    work = work_dir or Path(tempfile.mkdtemp(prefix="till-simulate-"))
    base = 60_000_000 + secrets.randbelow(39_000_000)  # fresh terminal numbers for every run
    days = [TerminalDay(f"{base + i:08d}") for i in range(terminals)]
    started = time.monotonic()
    threads = [threading.Thread(target=run_terminal, args=(service_url, admin, d.terminal_no, sales, seed + i, work, d),
                                name=f"counter-{d.terminal_no}") for i, d in enumerate(days)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    business_day = datetime.now(ZoneInfo(TIMEZONE)).date().isoformat()
    out(f"till simulate: {terminals} terminal(s) × {sales} sale(s) in {elapsed:.1f} s; journals in {work}")
    for d in days:
        out(f"  terminal {d.terminal_no}: {dict(d.outcomes)}, {d.receipts} printer job(s)"
            + (f"  ERROR {d.error}" if d.error else ""))
    return reconcile(admin, business_day, days, out)


def reconcile(admin: Admin, business_day: str, days: list[TerminalDay], out: Any) -> int:
    """Print the service's reconciliation of our terminals next to what was sold; 0 when they match."""
    ours = {d.terminal_no: d for d in days}
    ledger: Tally[tuple[str, str, str]] = Tally()
    counts: Tally[tuple[str, str, str]] = Tally()
    deadline = time.monotonic() + 20
    while True:  # the projections catch up within moments; bounded wait
        report = admin.day_report(business_day)
        ledger.clear()
        counts.clear()
        for line in report["lines"]:
            if line.get("terminal_no") in ours:
                key = (line["terminal_no"], line["brand"], line["kind"])
                ledger[key] += line["gross_minor"]
                counts[key] += line["count"]
        expected = Tally({(d.terminal_no, b, k): v for d in days for (b, k), v in d.paid.items()})
        if +ledger == +expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    out(f"\nReconciliation for {business_day} (Asia/Shanghai), from GET /v1/reports/day:")
    out(f"{'terminal':<10}{'brand':<12}{'kind':<8}{'count':>7}{'ledger':>16}{'sold':>16}")
    mismatches = 0
    for key in sorted(set(ledger) | set(expected)):
        terminal_no, brand, kind = key
        sold = expected.get(key, 0)
        mark = "" if ledger.get(key, 0) == sold else "  ≠"
        mismatches += bool(mark)
        out(f"{terminal_no:<10}{brand:<12}{kind:<8}{counts.get(key, 0):>7}"
            f"{decimal_text(ledger.get(key, 0), 'CNY'):>16}{decimal_text(sold, 'CNY'):>16}{mark}")
    total_ledger, total_sold = sum(ledger.values()), sum(expected.values())
    out(f"{'total':<30}{sum(counts.values()):>7}{decimal_text(total_ledger, 'CNY'):>16}"
        f"{decimal_text(total_sold, 'CNY'):>16}")
    failed = [d.terminal_no for d in days if d.error]
    if mismatches or failed:
        out(f"MISMATCH: {mismatches} line(s) differ; {len(failed)} terminal(s) failed")
        return 1
    out("The ledger matches what was sold.")
    return 0
