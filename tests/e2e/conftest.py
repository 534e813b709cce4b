"""End to end: the terminal agent, the service (real HTTP on loopback, host mode), the acquirer
simulator (real TCP), a real pcscd with vpcd virtual readers, and a TCP receipt printer."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.acquirer_simulator import AcquirerSimulator, SimulatorThread
from adapters.group_commit import run_alone
from adapters.escpos_printer import EscposPrinter
from adapters.pcsc_reader import PcscCardReader
from adapters.printer_sink import PrinterSink
from adapters.settings import Settings
from api.app import build_services
from api.auth import new_token
from domain.ledger import Ledger
from domain.stamp import Stamp
from terminal_agent.bootstrap import Agent, build_agent
from terminal_agent.scripted_cashier import ScriptedCashier
from terminal_agent.settings import AgentSettings
from terminal_agent.virtual_hands import VpcdHands
from tests.conftest import fast_hasher
from tests.e2e.live_service import LiveService, recorded_events
from tests.hardware.pcscd import PcscDaemon

PASSWORD = "counter-01"
DECLINED_AMOUNT = 5_100  # the simulator declines this amount with response code 51


@pytest.fixture(scope="session")
def pcscd() -> Iterator[PcscDaemon]:
    daemon = PcscDaemon()
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def acquirer(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "host").mkdir()
    sim = AcquirerSimulator(tmp_path / "host" / "journal.sqlite", settlement_dir=tmp_path / "host",
                            rules=[{"amount_minor": DECLINED_AMOUNT, "action": "decline", "response_code": "51"}])
    with SimulatorThread(sim) as port:
        yield port
    sim.close()


@pytest.fixture
def service(settings: Settings, acquirer: int) -> Iterator[LiveService]:
    host = settings.model_copy(update={"acquirer_url": f"127.0.0.1:{acquirer}", "acquirer_timeout_s": 2.0,
                                       "reversal_scan_s": 0.3, "reversal_retry_max_s": 0.4,
                                       "embedded_projections": True})
    live = LiveService(lambda: build_services(host, hasher=fast_hasher(), create_tables=True))
    with live:
        yield live


@pytest.fixture
def printer() -> Iterator[PrinterSink]:
    with PrinterSink() as sink:
        yield sink


@dataclass
class Counter:
    """One registered terminal with its agent on pcscd + vpcd and the TCP printer sink."""

    agent: Agent
    cashier: ScriptedCashier
    hands: VpcdHands
    printer: PrinterSink
    service: LiveService
    terminal_id: str
    admin: httpx.Client

    def events(self, transaction_id: str) -> list[dict[str, Any]]:
        return recorded_events(self.admin, transaction_id)

    def types(self, transaction_id: str) -> list[str]:
        return [e["type"] for e in self.events(transaction_id)]


def register(service: LiveService) -> tuple[httpx.Client, str, str]:
    """An admin token (issued as `till token create` does), then a terminal, its operator and its token."""
    services = service.services
    assert services is not None
    admin_token = new_token()
    run_alone(services.ledger, Ledger.issue_token(Stamp(None, None, None, services.clock.now()), admin_token,
                                                  "admin", None, "e2e"))
    admin = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=10)
    terminal_no = f"{uuid.uuid4().int % 10**8:08d}"
    response = admin.post("/v1/terminals", json={
        "merchant_name": "示范超市 Demo Market", "merchant_no": "898310048990001", "terminal_no": terminal_no,
        "no_cvm_limit_minor": 30_000, "fee_rates_ppm": {"unionpay": 3800, "visa": 5500}})
    assert response.status_code == 201, response.text
    terminal_id = response.json()["terminal_id"]
    response = admin.post(f"/v1/terminals/{terminal_id}/operators",
                          json={"operator_no": "01", "name": "王芳", "password": PASSWORD})
    assert response.status_code == 201, response.text
    response = admin.post("/v1/tokens", json={"role": "terminal", "terminal_id": terminal_id})
    assert response.status_code == 201, response.text
    return admin, terminal_id, response.json()["token"]


@pytest.fixture
def counter(pcscd: PcscDaemon, service: LiveService, printer: PrinterSink, tmp_path: Path) -> Iterator[Counter]:
    admin, terminal_id, token = register(service)
    hands = VpcdHands()
    cashier = ScriptedCashier(hands)
    settings = AgentSettings(service_url=service.url, token=token, terminal_id=terminal_id,  # type: ignore[arg-type]
                             data_dir=tmp_path / "agent", printer_url=f"tcp://127.0.0.1:{printer.port}",
                             card_timeout_s=10.0, forward_interval_s=0.2, request_timeout_s=3.0)
    readers = [PcscCardReader("Virtual PCD 00 00", "chip"), PcscCardReader("Virtual PCD 00 01", "contactless")]
    agent = build_agent(settings, cashier, readers=readers, printer=EscposPrinter(settings.printer_url))
    try:
        agent.till.start_of_day(PASSWORD, float_minor=50_000)
        yield Counter(agent, cashier, hands, printer, service, terminal_id, admin)
    finally:
        hands.take_back()
        agent.close()
        admin.close()


@pytest.fixture
def until() -> Callable[..., bool]:
    import time

    def wait(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    return wait
