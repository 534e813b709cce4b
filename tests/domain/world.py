"""Given-builders for the domain tests: one terminal at the counter, on eventsourcing's in-memory store.

Tests read like the counter procedure: ``counter.card_sale(12_345)``, ``counter.settle()``,
``counter.refund(sale, 500)``. Every command runs through ``Ledger`` and ``run_alone`` exactly as the
service runs it, so cross-aggregate rules (till, terminal, original sale) are exercised without I/O.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from adapters.group_commit import run_alone
from domain.aggregate import LedgerAggregate
from domain.append import AppendRequest, AppendResult
from domain.errors import LedgerError
from domain.ledger import Ledger
from domain.stamp import Stamp
from domain.terminal import Terminal
from domain.till import TillSession
from domain.till_actions import PASSWORD_VERIFIED
from domain.transaction import Transaction

MERCHANT_NO = "898310048990001"
SELF_CHECK = {"service_reachable": True, "printer_online": True, "paper_present": True, "reader_present": True,
              "software_version": "test-1"}
SIGNED_IN = object()  # "stamp with the operator who is signed in", the usual case


class SteppingClock:
    """The service clock, one millisecond later at every reading (timezone-aware UTC)."""

    def __init__(self) -> None:
        self.current = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)

    def now(self) -> datetime:
        self.current += timedelta(milliseconds=1)
        return self.current


def new_ledger() -> Ledger:
    return Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def pan_token(last4: str = "1234") -> str:
    """The keyed hash a terminal sends instead of the card number (any 64 hex chars will do here)."""
    return hashlib.sha256(f"card-{last4}".encode()).hexdigest()


def card(last4: str = "1234", entry_mode: str = "chip", brand: str = "unionpay") -> dict[str, Any]:
    """CardPresented fields of a chip read after the agent masked the PAN and keyed its hash."""
    return {"entry_mode": entry_mode, "masked_pan": f"622202******{last4}", "pan_token": pan_token(last4),
            "brand": brand, "aid": "A000000333010101", "app_label": "UnionPay Debit", "tvr": "0000008000",
            "tsi": "E800", "atc": "001C", "cryptogram": "9F2A3B4C5D6E7F80", "cvm_results": "420300"}


def receipt_hash(txn_id: UUID, copy: str, reprint_no: int = 0) -> str:
    return hashlib.sha256(f"{txn_id}/{copy}/{reprint_no}".encode()).hexdigest()


def position(ledger: Ledger) -> int:
    """How many events the whole store holds (the last notification id)."""
    return ledger.recorder.max_notification_id() or 0  # type: ignore[attr-defined]


@contextmanager
def refused(ledger: Ledger, error: type[LedgerError]) -> Iterator[pytest.ExceptionInfo[LedgerError]]:
    """Then: the named error, and nothing at all was recorded (no partial state on any stream)."""
    before = position(ledger)
    with pytest.raises(error) as info:
        yield info
    assert position(ledger) == before, "a refused command must not record anything"


@dataclass
class Counter:
    """One registered terminal, its till session and its operator, driven through the Ledger."""

    ledger: Ledger
    clock: SteppingClock
    terminal_id: UUID
    operator_no: str = "01"
    till_id: UUID | None = None
    traces: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # ---- given ---------------------------------------------------------------------------------
    @classmethod
    def register(cls, ledger: Ledger | None = None, clock: SteppingClock | None = None,
                 terminal_no: str = "10000001", merchant_no: str = MERCHANT_NO, **parameters: Any) -> Counter:
        ledger = ledger or new_ledger()
        clock = clock or SteppingClock()
        stamp = Stamp(None, None, None, clock.now())
        terminal = run_alone(ledger, Ledger.register_terminal(stamp, "示范超市 Demo Market", merchant_no,
                                                             terminal_no, parameters))
        return cls(ledger, clock, terminal.id)

    @classmethod
    def at_open_till(cls, **parameters: Any) -> Counter:
        """A registered terminal whose till is open with operator 01 signed in."""
        return cls.register(**parameters).open_till()

    def beside(self, terminal_no: str, merchant_no: str = MERCHANT_NO, **parameters: Any) -> Counter:
        """Another terminal on the same store, its till open."""
        return Counter.register(self.ledger, self.clock, terminal_no, merchant_no, **parameters).open_till()

    def open_till(self, float_minor: int = 50_000) -> Counter:
        self.till_id = uuid4()
        self.till_event("TillOpened", operator=None, float_minor=float_minor, currency="CNY",
                        self_check=dict(SELF_CHECK))
        return self.sign_in(self.operator_no)

    def sign_in(self, operator_no: str) -> Counter:
        self.till_event("OperatorSignedIn", operator=operator_no, operator_no=operator_no,
                        **{PASSWORD_VERIFIED: True})
        self.operator_no = operator_no
        return self

    # ---- raw appends ---------------------------------------------------------------------------
    def stamp(self, operator: Any = SIGNED_IN, device_time: datetime | None = None) -> Stamp:
        now = self.clock.now()
        return Stamp(self.terminal_id, self.operator_no if operator is SIGNED_IN else operator,
                     device_time or now, now)

    def version(self, stream_id: UUID) -> int:
        """The stream's current version, read from the store (0 for a stream that does not exist)."""
        last = self.ledger.recorder.select_events(stream_id, desc=True, limit=1)
        return last[0].originator_version if last else 0

    def request(self, stream_id: UUID, event_type: str, *, expected_version: int | None = None,
                operator: Any = SIGNED_IN, device_time: datetime | None = None, **fields: Any) -> AppendRequest:
        version = self.version(stream_id) if expected_version is None else expected_version
        return AppendRequest(stream_id, version, event_type, fields, self.stamp(operator, device_time))

    def txn_event(self, txn_id: UUID, event_type: str, **fields: Any) -> AppendResult:
        return run_alone(self.ledger, Ledger.append_transaction_event(self.request(txn_id, event_type, **fields)))

    def till_event(self, event_type: str, **fields: Any) -> AppendResult:
        assert self.till_id is not None, "open the till first"
        return run_alone(self.ledger, Ledger.append_till_event(self.request(self.till_id, event_type, **fields)))

    def resend(self, request: AppendRequest, till: bool = False) -> AppendResult:
        command = Ledger.append_till_event if till else Ledger.append_transaction_event
        return run_alone(self.ledger, command(request))

    # ---- reads ---------------------------------------------------------------------------------
    def txn(self, txn_id: UUID) -> Transaction:
        return self.ledger.load(txn_id, Transaction)

    def till(self) -> TillSession:
        assert self.till_id is not None
        return self.ledger.load(self.till_id, TillSession)

    def terminal(self) -> Terminal:
        return self.ledger.load(self.terminal_id, Terminal)

    def events(self, stream_id: UUID) -> list[str]:
        return [type(e).__name__ for e in self.ledger.events.get(stream_id)]

    def verifies(self, stream_id: UUID, cls: type[LedgerAggregate] = Transaction) -> bool:
        return self.ledger.history(stream_id, cls)[1].valid

    @property
    def batch_no(self) -> str:
        return self.terminal().batch_label

    # ---- the counter procedure -----------------------------------------------------------------
    def begin(self, kind: str = "sale", method: str = "card", original: UUID | None = None,
              batch_no: str | None = None, **overrides: Any) -> UUID:
        txn_id = uuid4()
        fields: dict[str, Any] = {"kind": kind, "payment_method": method, "till_session_id": self.till_id,
                                  "batch_no": batch_no or self.batch_no, "trace_no": f"{next(self.traces):06d}"}
        if original is not None:
            fields["original_transaction_id"] = original
        self.txn_event(txn_id, "TransactionOpened", **{**fields, **overrides})
        return txn_id

    def enter(self, txn_id: UUID, amount_minor: int, currency: str = "CNY") -> None:
        self.txn_event(txn_id, "AmountEntered", amount_minor=amount_minor, currency=currency)
        self.txn_event(txn_id, "AmountConfirmed")

    def verify_cardholder(self, txn_id: UUID, cvm: str) -> None:
        if cvm == "pin":
            self.txn_event(txn_id, "PinVerified", method="online")
        elif cvm == "signature":
            self.txn_event(txn_id, "PinBypassed", reason="cardholder has no PIN")
        else:
            self.txn_event(txn_id, "CvmNotRequired")

    def present_card(self, txn_id: UUID, last4: str = "1234", cvm: str = "pin") -> None:
        """The chip is read and the cardholder verified: ready to ask the host."""
        self.txn_event(txn_id, "CardPresented", **card(last4))
        self.verify_cardholder(txn_id, cvm)

    def request_authorization(self, txn_id: UUID) -> None:
        self.txn_event(txn_id, "AuthorizationRequested", stan=f"{next(self.traces):06d}")

    def send_for_authorization(self, txn_id: UUID, amount_minor: int, last4: str = "1234", cvm: str = "pin") -> None:
        """Amount confirmed, chip read, cardholder verified, request sent: the outcome is pending."""
        self.enter(txn_id, amount_minor)
        self.present_card(txn_id, last4, cvm)
        self.request_authorization(txn_id)

    def approve(self, txn_id: UUID) -> None:
        self.txn_event(txn_id, "Authorized", auth_code="A1B2C3", rrn=f"{next(self.traces):012d}",
                       response_code="00")

    def decline(self, txn_id: UUID) -> None:
        self.txn_event(txn_id, "Declined", response_code="51", reason="insufficient funds")

    def time_out(self, txn_id: UUID) -> None:
        self.txn_event(txn_id, "OutcomeUnknown", reason="no reply within 60 s")

    def reverse(self, txn_id: UUID) -> None:
        self.txn_event(txn_id, "Reversed", reason_code="4021", response_code="00")

    def print_receipts(self, txn_id: UUID) -> None:
        for copy in ("merchant", "customer"):
            reprint_no = self.txn(txn_id).prints[copy]
            self.txn_event(txn_id, "ReceiptPrinted", copy=copy, printer="escpos-test", reprint_no=reprint_no,
                           receipt_sha256=receipt_hash(txn_id, copy, reprint_no))

    def finish(self, txn_id: UUID) -> None:
        """Signature if the CVM asks for it, both receipt copies, completed."""
        txn = self.txn(txn_id)
        if txn.payment_method == "cash" and txn.kind != "sale":  # no tender: the receipt follows completion
            self.txn_event(txn_id, "TransactionCompleted")
            self.print_receipts(txn_id)
            return
        if txn.outcome == "authorized" and txn.signature_required and txn.signature is None:
            self.txn_event(txn_id, "SignatureCaptured", image_sha256="ab" * 32, image_ref="sig/1.png")
        self.print_receipts(txn_id)
        self.txn_event(txn_id, "TransactionCompleted")

    def card_sale(self, amount_minor: int, last4: str = "1234", cvm: str = "pin") -> UUID:
        txn_id = self.begin()
        self.send_for_authorization(txn_id, amount_minor, last4, cvm)
        self.approve(txn_id)
        self.finish(txn_id)
        return txn_id

    def cash_sale(self, amount_minor: int, tendered_minor: int | None = None) -> UUID:
        tendered = amount_minor if tendered_minor is None else tendered_minor
        txn_id = self.begin(method="cash")
        self.enter(txn_id, amount_minor)
        self.txn_event(txn_id, "CashTendered", amount_minor=tendered)
        if tendered > amount_minor:
            self.txn_event(txn_id, "ChangeGiven", amount_minor=tendered - amount_minor)
        self.txn_event(txn_id, "TransactionCompleted")
        return txn_id

    def credit(self, kind: str, original: UUID, amount_minor: int, last4: str = "1234") -> UUID:
        """A void or refund of ``original``, carried through to completion."""
        method = self.txn(original).payment_method
        txn_id = self.begin(kind, method, original)
        if method == "cash":
            self.enter(txn_id, amount_minor)
        else:
            self.send_for_authorization(txn_id, amount_minor, last4)
            self.approve(txn_id)
        self.finish(txn_id)
        return txn_id

    def void(self, original: UUID) -> UUID:
        return self.credit("void", original, self.txn(original).amount_minor or 0)

    def refund(self, original: UUID, amount_minor: int, last4: str = "1234") -> UUID:
        return self.credit("refund", original, amount_minor, last4)

    def settle(self) -> AppendResult:
        return self.till_event("BatchSettled", batch_no=self.batch_no)
