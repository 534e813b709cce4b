"""A counter driven by Ledger commands, without HTTP: what the store tests feed to the executors.

Each method returns a command (a function of a UnitOfWork) built with a full stamp, so the very
same command objects can be run by different executors, twice, or from another process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

from domain.append import AppendRequest, AppendResult
from domain.ledger import Command, Ledger
from domain.ports import Clock
from domain.stamp import Stamp
from domain.terminal import terminal_id_for
from domain.till_actions import PASSWORD_VERIFIED
from tests.counter import card

SHANGHAI = timezone(timedelta(hours=8))
DEVICE_TIME = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI)
# Any stored string will do: these tests never check a password, they state it was verified.
PASSWORD_HASH = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def card_fields(brand: str = "unionpay", last4: str = "1234") -> dict[str, Any]:
    """A chip read's CardPresented fields (masked PAN and keyed token, never the PAN)."""
    return {k: v for k, v in card(brand, last4).items() if k != "type"}


@dataclass
class CounterCommands:
    """One terminal with one till session; tracks the version each stream will be at."""

    clock: Clock
    merchant_no: str = "898310048990001"
    terminal_no: str = "30000001"
    operator_no: str = "01"
    till_id: UUID = field(default_factory=uuid4)
    versions: dict[UUID, int] = field(default_factory=dict)
    trace: int = 0

    @property
    def terminal_id(self) -> UUID:
        return terminal_id_for(self.merchant_no, self.terminal_no)

    def stamp(self, operator: str | None = "01") -> Stamp:
        return Stamp(self.terminal_id, operator, DEVICE_TIME, self.clock.now())

    # ---- setup ------------------------------------------------------------------------------------
    def setup(self) -> list[Command[Any]]:
        """Register the terminal, enroll operator 01, open the till and sign the operator in."""
        admin = Stamp(None, None, None, self.clock.now())
        return [
            Ledger.register_terminal(admin, "示范超市 Demo Market", self.merchant_no, self.terminal_no, {}),
            Ledger.enroll_operator(Stamp(None, None, None, self.clock.now()), self.terminal_id, self.operator_no,
                                   "王芳", PASSWORD_HASH),
            self.till("TillOpened", operator=None, float_minor=50_000, currency="CNY",
                      self_check={"service_reachable": True, "printer_online": True, "paper_present": True,
                                  "reader_present": True, "software_version": "test-1"}),
            self.till("OperatorSignedIn", operator_no=self.operator_no, **{PASSWORD_VERIFIED: True}),
        ]

    # ---- single appends ---------------------------------------------------------------------------
    def request(self, stream_id: UUID, event_type: str, *, at: int | None = None, operator: str | None = "01",
                **fields: Any) -> AppendRequest:
        """An append at the stream's tracked version (or at ``at``, which leaves the tracking alone)."""
        if at is None:
            at = self.versions.get(stream_id, 0)
            self.versions[stream_id] = at + 1
        return AppendRequest(stream_id, at, event_type, fields, self.stamp(operator))

    def txn(self, stream_id: UUID, event_type: str, *, at: int | None = None, **fields: Any) -> Command[AppendResult]:
        return Ledger.append_transaction_event(self.request(stream_id, event_type, at=at, **fields))

    def till(self, event_type: str, *, at: int | None = None, operator: str | None = "01",
             **fields: Any) -> Command[AppendResult]:
        return Ledger.append_till_event(self.request(self.till_id, event_type, at=at, operator=operator, **fields))

    # ---- procedures -------------------------------------------------------------------------------
    def next_trace(self) -> str:
        self.trace += 1
        return f"{self.trace:06d}"

    def open(self, stream_id: UUID, *, kind: str = "sale", method: str = "card", original: UUID | None = None,
             batch_no: str = "000001", at: int | None = None) -> Command[AppendResult]:
        """The opening also records TransactionStarted on the terminal (not on the till the client versions)."""
        return self.txn(stream_id, "TransactionOpened", at=at, kind=kind, payment_method=method,
                        till_session_id=self.till_id, batch_no=batch_no, trace_no=self.next_trace(),
                        original_transaction_id=original)

    def card_sale(self, stream_id: UUID, amount_minor: int, *, brand: str = "unionpay",
                  last4: str = "1234") -> list[Command[AppendResult]]:
        """Opened, amount, confirmed, chip + online PIN, approved, two receipts, completed."""
        commands = [
            self.open(stream_id),
            self.txn(stream_id, "AmountEntered", amount_minor=amount_minor, currency="CNY"),
            self.txn(stream_id, "AmountConfirmed"),
            self.txn(stream_id, "CardPresented", **card_fields(brand, last4)),
            self.txn(stream_id, "PinVerified", method="online"),
            self.txn(stream_id, "AuthorizationRequested", stan=self.next_trace()),
            self.txn(stream_id, "Authorized", auth_code="A1B2C3", rrn=f"{self.trace:012d}", response_code="00"),
        ]
        for copy in ("merchant", "customer"):
            commands.append(self.txn(stream_id, "ReceiptPrinted", copy=copy, printer="escpos-test", reprint_no=0,
                                     receipt_sha256=hashlib.sha256(f"{stream_id}{copy}".encode()).hexdigest()))
        commands.append(self.txn(stream_id, "TransactionCompleted"))
        return commands
