"""AcquirerHost: the port to the acquirer's authorization host (收单主机), and what crosses it.

Four exchanges, as on a China UnionPay POS terminal interface: sign-on (签到) opens a terminal's
batch for the day; a financial request (sale 消费, void 撤销, refund 退货) is approved or declined;
a reversal (冲正) cancels a request whose outcome the service never learned; batch settlement
(结算) compares the terminal's totals with the host's.

Card data crosses this port in memory only: ``CardData`` is never stored, logged or put in an event,
and its repr shows the masked number. A reversal carries no card data at all — the host finds the
original by terminal, batch and STAN — so a reversal still pending after a restart can be sent.

The adapter raises ``AcquirerUnavailable`` when nothing was sent (the host could not be reached) and
``AcquirerNoReply`` when a request may have reached the host but no valid reply came back in time:
only the second leaves the outcome unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from domain.errors import LedgerError

APPROVED = "00"
# Response codes (field 39) the simulator and the service name; any other code is a decline too.
RESPONSE_REASONS: Mapping[str, str] = {
    "00": "approved",
    "05": "do not honour",
    "12": "invalid transaction",
    "13": "invalid amount",
    "14": "invalid card number",
    "25": "unable to locate the original",
    "51": "insufficient funds",
    "54": "expired card",
    "55": "incorrect PIN",
    "61": "exceeds amount limit",
    "94": "duplicate transmission",
    "96": "system malfunction",
}
# Reversal reason (ISO 8583:1993 message reason code): no reply within the timeout.
REVERSAL_TIMEOUT = "4021"
# A reversal is acknowledged by 00, or by 25 when the original never reached the host: either way
# nothing is charged any more.
REVERSAL_ACKNOWLEDGED = ("00", "25")
FINANCIAL_KINDS = ("sale", "void", "refund")
# EMV tags that must never leave the terminal through us: PAN, track 2 equivalent, track data, PIN data.
FORBIDDEN_TAGS = frozenset({"5A", "57", "9F6B", "56", "9F1F", "9F20", "99"})


def reason_of(response_code: str) -> str:
    return RESPONSE_REASONS.get(response_code, f"declined by the host (response code {response_code})")


class AcquirerUnavailable(LedgerError):
    """The acquirer host could not be reached; nothing was sent, so nothing was charged."""

    code = "acquirer_unavailable"
    title = "Acquirer host unavailable"


class AcquirerNoReply(LedgerError):
    """A request may have reached the host, but no valid reply came back in time."""

    code = "acquirer_no_reply"
    title = "No reply from the acquirer host"


class AcquirerRefused(LedgerError):
    """The host answered a sign-on or settlement with a refusal (its response code is attached)."""

    code = "acquirer_refused"
    title = "The acquirer host refused the request"


class AcquirerNotConfigured(LedgerError):
    """This service records outcomes from the terminal; it has no acquirer host to send requests to."""

    code = "acquirer_not_configured"
    title = "No acquirer host configured"


@dataclass(frozen=True, slots=True)
class CardData:
    """The full card number for one request, held in memory only. Never stored, logged or evented."""

    pan: str
    expiry: str | None = None  # YYMM; sent to the host, never printed or stored

    def __repr__(self) -> str:
        return f"CardData(pan={self.masked!r})"

    __str__ = __repr__

    @property
    def masked(self) -> str:
        return f"{self.pan[:6]}{'*' * (len(self.pan) - 10)}{self.pan[-4:]}"


@dataclass(frozen=True, slots=True)
class OriginalRef:
    """The sale a void or refund refers to, as the host knows it."""

    rrn: str
    auth_code: str
    batch_no: str
    stan: str
    date_mmdd: str  # the original's local date, MMDD


@dataclass(frozen=True, slots=True)
class TerminalRef:
    merchant_no: str  # 15 digits (field 42)
    terminal_no: str  # 8 digits (field 41)


@dataclass(frozen=True, slots=True)
class FinancialRequest:
    """A sale, void or refund to authorize (0200, or 0220 for a refund)."""

    kind: str  # sale | void | refund
    terminal: TerminalRef
    batch_no: str
    stan: str  # the transaction's trace number (凭证号)
    amount_minor: int
    currency: str  # ISO 4217 alphabetic; the adapter sends the numeric code
    card: CardData
    entry_mode: str  # chip | contactless | swipe | fallback_swipe
    chip_data: Mapping[str, str]  # EMV tag -> value (hex), never one of FORBIDDEN_TAGS
    local_time: datetime  # the store's time, sent as fields 12/13
    original: OriginalRef | None = None  # void and refund only


@dataclass(frozen=True, slots=True)
class HostReply:
    """The host's answer to a financial request."""

    response_code: str
    rrn: str = ""  # 12, on approvals (and on most declines)
    auth_code: str = ""  # 6, on approvals
    acquirer_id: str = ""  # the acquiring institution (field 32 / 44)
    issuer_id: str = ""  # the issuing institution (field 44)

    @property
    def approved(self) -> bool:
        return self.response_code == APPROVED


@dataclass(frozen=True, slots=True)
class ReversalRequest:
    """Cancel a financial request whose outcome is unknown (0400). No card data: see the module doc."""

    kind: str  # the original's kind
    terminal: TerminalRef
    batch_no: str
    stan: str  # the original's STAN
    amount_minor: int
    currency: str
    reason_code: str  # REVERSAL_TIMEOUT
    local_time: datetime


@dataclass(frozen=True, slots=True)
class ReversalReply:
    response_code: str

    @property
    def acknowledged(self) -> bool:
        return self.response_code in REVERSAL_ACKNOWLEDGED


@dataclass(frozen=True, slots=True)
class SignOnRequest:
    """Sign-on (0800): the terminal states the batch it means to open."""

    terminal: TerminalRef
    batch_no: str
    operator_no: str
    local_time: datetime


@dataclass(frozen=True, slots=True)
class SignOnReply:
    response_code: str
    batch_no: str  # the batch the host opened (it may move the terminal on to a later one)
    host_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class BatchTotals:
    """Batch totals as CUP settlement counts them: debits are approved sales not voided or
    reversed; credits are approved refunds not reversed. Voids cancel their sale and count nowhere."""

    debit_count: int = 0
    debit_minor: int = 0
    credit_count: int = 0
    credit_minor: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"debit_count": self.debit_count, "debit_minor": self.debit_minor,
                "credit_count": self.credit_count, "credit_minor": self.credit_minor}


@dataclass(frozen=True, slots=True)
class SettlementRequest:
    """Batch settlement (0500) with the terminal's totals."""

    terminal: TerminalRef
    batch_no: str
    currency: str
    totals: BatchTotals
    operator_no: str
    local_time: datetime


@dataclass(frozen=True, slots=True)
class SettlementReply:
    response_code: str
    balanced: bool
    host_totals: BatchTotals = field(default_factory=BatchTotals)
    settlement_date: str = ""  # MMDD (field 15)


class AcquirerHost(Protocol):
    """The acquirer's host. Every method raises AcquirerUnavailable (not sent) or AcquirerNoReply."""

    async def sign_on(self, request: SignOnRequest) -> SignOnReply: ...

    async def authorize(self, request: FinancialRequest) -> HostReply: ...

    async def reverse(self, request: ReversalRequest) -> ReversalReply: ...

    async def settle(self, request: SettlementRequest) -> SettlementReply: ...
