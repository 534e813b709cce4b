"""The terminal agent's composition root: settings in, a counter with its hardware and desks out.

Nothing else builds an adapter. Tests and ``till simulate`` pass their own readers, printer and
signature pad (virtual hardware); the interactive agent takes them from the settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from domain.hardware import CardReader, ReceiptPrinter, SignaturePad
from terminal_agent.card_sale import CardSale
from terminal_agent.cash_sale import CashSale
from terminal_agent.counter import Cashier, Counter
from terminal_agent.emv import TerminalConfig
from terminal_agent.forwarder import Forwarder
from terminal_agent.journal import Journal
from terminal_agent.receipt_desk import ReceiptDesk
from terminal_agent.recorder import Recorder
from terminal_agent.service_client import ServiceClient, ServiceRefused, ServiceUnreachable
from terminal_agent.settings import AgentSettings
from terminal_agent.till_desk import TillDesk


class AgentSetupError(Exception):
    """The agent cannot start: the message says what to fix."""


@dataclass
class Agent:
    counter: Counter
    till: TillDesk
    receipts: ReceiptDesk
    card: CardSale
    cash: CashSale
    forwarder: Forwarder

    def close(self) -> None:
        self.forwarder.stop()
        self.counter.client.close()
        self.counter.journal.close()
        close = getattr(self.counter.printer, "close", None)
        if close is not None:
            close()


def build_agent(settings: AgentSettings, cashier: Cashier, *, readers: Sequence[CardReader] | None = None,
                printer: ReceiptPrinter | None = None, signature_pad: SignaturePad | None = None,
                now: Callable[[], datetime] | None = None, transport: httpx.BaseTransport | None = None,
                start_forwarder: bool = True) -> Agent:
    from adapters.offline_pin_pad import OfflinePinPad
    from adapters.signature_file import FileSignaturePad

    if not settings.terminal_id:
        raise AgentSetupError("set TILL_AGENT_TERMINAL_ID to the terminal's id (POST /v1/terminals answers it)")
    try:
        token = settings.bearer_token()
    except (OSError, ValueError) as exc:
        raise AgentSetupError(str(exc)) from exc
    clock = now or (lambda: datetime.now(UTC))
    journal = Journal(settings.journal_path)
    client = ServiceClient(settings.service_url, token, timeout_s=settings.request_timeout_s, transport=transport)
    terminal = _terminal(client, journal, settings.terminal_id)
    forwarder = Forwarder(journal, client, interval_s=settings.forward_interval_s)
    counter = Counter(
        terminal_id=settings.terminal_id, terminal=terminal, operator_no=settings.operator_no, journal=journal,
        recorder=Recorder(journal, forwarder, clock), client=client,
        readers=list(readers) if readers is not None else _pcsc_readers(settings),
        printer=printer or _printer(settings), pin_pad=OfflinePinPad(cashier.ask_pin),
        signature_pad=signature_pad or FileSignaturePad(settings.signature_image, settings.data_dir / "signatures"),
        cashier=cashier, emv=TerminalConfig(), pan_key=settings.pan_key(), now=clock,
        card_timeout_s=settings.card_timeout_s)
    receipts = ReceiptDesk(counter, settings.receipt_lang)
    if start_forwarder:
        forwarder.start()
    return Agent(counter, TillDesk(counter), receipts, CardSale(counter, receipts), CashSale(counter, receipts),
                 forwarder)


def _terminal(client: ServiceClient, journal: Journal, terminal_id: str) -> dict[str, object]:
    """The terminal's parameters from the service, kept for an offline start; else the kept copy."""
    try:
        terminal = client.terminal(terminal_id)
    except ServiceRefused as exc:
        raise AgentSetupError(f"the service refused this terminal: {exc.detail} ({exc.code})") from exc
    except ServiceUnreachable as exc:
        kept = journal.get("terminal")
        if kept is None:
            raise AgentSetupError(f"{exc.detail}; the first start needs the service") from exc
        return kept  # type: ignore[no-any-return]
    journal.put("terminal", terminal)
    return terminal


def _pcsc_readers(settings: AgentSettings) -> list[CardReader]:
    from adapters.pcsc_reader import PcscCardReader

    readers: list[CardReader] = []
    if settings.contact_reader:
        readers.append(PcscCardReader(settings.contact_reader, "chip"))
    if settings.contactless_reader:
        readers.append(PcscCardReader(settings.contactless_reader, "contactless"))
    return readers


def _printer(settings: AgentSettings) -> ReceiptPrinter:
    from adapters.escpos_printer import EscposPrinter

    try:
        return EscposPrinter(settings.printer_url, columns=settings.printer_columns,
                             chinese_mode=settings.printer_chinese_mode)
    except ValueError as exc:
        raise AgentSetupError(f"TILL_AGENT_PRINTER_URL: {exc}") from exc
