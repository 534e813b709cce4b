"""A counter on in-process virtual hardware, for the agent's flows: the terminal agent with a virtual chip
reader and contactless pad (adapters.virtual_reader, no pcscd), a receipt printer over TCP on 127.0.0.1,
and the ledger service on a loopback socket authorizing through the acquirer simulator (SQLite store).

    with virtual_counter(tmp_path, hands_for=..., printer_url=...) as counter:
        counter.cashier.next_customer(Customer(...))
        result = counter.agent.card.run()
        counter.types(result.transaction_id)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from adapters.acquirer_simulator import AcquirerSimulator, SimulatorThread
from adapters.escpos_printer import EscposPrinter
from adapters.group_commit import run_alone
from adapters.settings import Settings
from adapters.virtual_reader import VirtualCardReader
from api.app import build_services
from api.auth import new_token
from domain.ledger import Ledger
from domain.stamp import Stamp
from terminal_agent.bootstrap import Agent, build_agent
from terminal_agent.scripted_cashier import Customer, Hands, ScriptedCashier
from terminal_agent.settings import AgentSettings
from terminal_agent.simulate import PASSWORD, Admin
from tests.conftest import fast_hasher
from tests.e2e.live_service import LiveService, recorded_events

PRINTER_TIMEOUT_S = 0.5  # how long the printer adapter waits for a status byte: a silent printer costs this


@dataclass
class VirtualCounter:
    agent: Agent
    cashier: ScriptedCashier
    contact: VirtualCardReader
    service: LiveService
    admin: httpx.Client
    terminal_id: str

    def events(self, transaction_id: str) -> list[dict[str, Any]]:
        return recorded_events(self.admin, transaction_id)

    def types(self, transaction_id: str) -> list[str]:
        return [e["type"] for e in self.events(transaction_id)]


@contextmanager
def virtual_counter(work: Path, *, printer_url: str,
                    hands_for: Callable[[VirtualCardReader, VirtualCardReader], Hands]) -> Iterator[VirtualCounter]:
    """A registered terminal whose agent has opened its till, signed its operator in and signed on with the host."""
    (work / "host").mkdir(parents=True)
    simulator = AcquirerSimulator(work / "host" / "journal.sqlite", settlement_dir=work / "host")
    with SimulatorThread(simulator) as port:
        settings = Settings(data_dir=work / "service", acquirer_url=f"127.0.0.1:{port}", acquirer_timeout_s=2.0,
                            reversal_scan_s=0.3, reversal_retry_max_s=0.4, embedded_projections=True)
        with LiveService(lambda: build_services(settings, hasher=fast_hasher(), create_tables=True)) as service:
            services = service.services
            assert services is not None
            admin_token = new_token()
            run_alone(services.ledger, Ledger.issue_token(Stamp(None, None, None, services.clock.now()), admin_token,
                                                          "admin", None, "virtual counter"))
            registrar = Admin(service.url, admin_token)
            terminal_id, token = registrar.terminal(f"{secrets.randbelow(10**8):08d}")
            registrar.close()
            contact, contactless = VirtualCardReader("virtual chip", "chip"), VirtualCardReader("virtual tap",
                                                                                                  "contactless")
            cashier = ScriptedCashier(hands_for(contact, contactless))
            agent_settings = AgentSettings(
                service_url=service.url, token=token, terminal_id=terminal_id,  # type: ignore[arg-type]
                data_dir=work / "agent", printer_url=printer_url, card_timeout_s=3.0, forward_interval_s=0.2,
                request_timeout_s=5.0)
            agent = build_agent(agent_settings, cashier, readers=[contact, contactless],
                                printer=EscposPrinter(printer_url, timeout_s=PRINTER_TIMEOUT_S))
            admin = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=10)
            try:
                cashier.next_customer(Customer())
                agent.till.start_of_day(PASSWORD, float_minor=50_000)
                assert agent.counter.card_ready, cashier.codes()
                yield VirtualCounter(agent, cashier, contact, service, admin, terminal_id)
            finally:
                cashier.hands.take_back()
                agent.close()
                admin.close()
    simulator.close()
