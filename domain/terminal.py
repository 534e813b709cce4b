"""Terminal: registration and parameters of one POS terminal (商户号 15 digits, 终端号 8 digits)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import re
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.aggregate import LedgerAggregate
from domain.errors import (
    AlreadyExists,
    DuplicateTrace,
    InvalidInput,
    NotFound,
    SignOnRequired,
    TillAlreadyOpen,
    TillBlocked,
    WrongBatch,
)
from domain.money import check_currency, check_minor
from domain.stamp import Stamp, check_operator_no

METHODS = ("card", "cash")
BRANDS = ("unionpay", "visa", "mastercard", "amex", "jcb", "other")
DEFAULT_NO_CVM_LIMIT_MINOR = 100_000  # UnionPay 小额免密免签: 1000.00 CNY


def terminal_id_for(merchant_no: str, terminal_no: str) -> UUID:
    """Deterministic id: registering the same terminal twice is recognisably the same terminal."""
    return uuid5(NAMESPACE_URL, f"till-ledger:terminal:{merchant_no}/{terminal_no}")


def check_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Validate a (partial) parameter set; returns it unchanged when valid."""
    if "merchant_name" in params:
        name = params["merchant_name"]
        if not isinstance(name, str) or not 1 <= len(name) <= 40:
            raise InvalidInput("merchant_name must be 1-40 characters", field="merchant_name")
    if "store_id" in params and not (isinstance(params["store_id"], str) and 1 <= len(params["store_id"]) <= 64):
        raise InvalidInput("store_id must be 1-64 characters", field="store_id")
    if "timezone" in params:
        try:
            ZoneInfo(params["timezone"])
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise InvalidInput("timezone must be an IANA name like Asia/Shanghai", field="timezone") from exc
    if "currency" in params:
        check_currency(params["currency"])
    for key in ("min_amount_minor", "max_amount_minor", "no_cvm_limit_minor"):
        if key in params and check_minor(params[key], key) < 0:
            raise InvalidInput(f"{key} must not be negative", field=key)
    if "fee_rates_ppm" in params:
        rates = params["fee_rates_ppm"]
        if not isinstance(rates, dict) or any(
            brand not in BRANDS or check_minor(rate, "fee rate") < 0 or rate > 100_000 for brand, rate in rates.items()
        ):
            raise InvalidInput(
                f"fee_rates_ppm maps a brand ({', '.join(BRANDS)}) to parts per million (0-100000)",
                field="fee_rates_ppm",
            )
    if "accepted_methods" in params:
        methods = params["accepted_methods"]
        if not isinstance(methods, list) or not methods or any(m not in METHODS for m in methods):
            raise InvalidInput("accepted_methods is a non-empty list of 'card' and 'cash'", field="accepted_methods")
    if "fallback_allowed" in params and not isinstance(params["fallback_allowed"], bool):
        raise InvalidInput("fallback_allowed must be true or false", field="fallback_allowed")
    return params


class Terminal(LedgerAggregate):
    """One registered terminal with its parameters, operators, open till and open batch."""

    class Registered(LedgerAggregate.Created):
        merchant_name: str
        merchant_no: str
        terminal_no: str
        parameters: dict[str, Any]

        def apply(self, terminal: Terminal) -> None:
            terminal.merchant_name = self.merchant_name
            terminal.merchant_no = self.merchant_no
            terminal.terminal_no = self.terminal_no
            terminal.parameters = dict(self.parameters)
            terminal.operators = {}
            terminal.till_session_id = None
            terminal.batch_no = 1
            terminal.traces = {}
            terminal.blocked_by = []
            terminal.signed_on_day = None
            terminal.last_host_settlement = None

    class ParametersChanged(LedgerAggregate.Event):
        changes: dict[str, Any]

        def apply(self, terminal: Terminal) -> None:
            terminal.parameters.update(self.changes)
            if "merchant_name" in self.changes:
                terminal.merchant_name = self.changes["merchant_name"]

    class OperatorEnrolled(LedgerAggregate.Event):
        enrolled_operator_no: str
        name: str
        password_hash: str

        def apply(self, terminal: Terminal) -> None:
            terminal.operators[self.enrolled_operator_no] = {"name": self.name, "password_hash": self.password_hash}

    class TillAssigned(LedgerAggregate.Event):
        till_session_id: UUID

        def apply(self, terminal: Terminal) -> None:
            terminal.till_session_id = self.till_session_id

    class TillReleased(LedgerAggregate.Event):
        till_session_id: UUID

        def apply(self, terminal: Terminal) -> None:
            terminal.till_session_id = None

    class BatchClosed(LedgerAggregate.Event):
        batch_no: str

        def apply(self, terminal: Terminal) -> None:
            terminal.batch_no = int(self.batch_no) + 1 if int(self.batch_no) < 999_999 else 1
            terminal.traces = {}

    class SignedOn(LedgerAggregate.Event):
        """The terminal signed on (签到) with the acquirer host for one store-local day."""

        local_day: str
        batch_no: str
        response_code: str

        def apply(self, terminal: Terminal) -> None:
            terminal.signed_on_day = self.local_day
            terminal.batch_no = int(self.batch_no)

    class HostSettlementAnswered(LedgerAggregate.Event):
        """The acquirer host's answer to batch settlement (结算): balanced, or not with both totals."""

        batch_no: str
        balanced: bool
        response_code: str
        ledger_totals: dict[str, int]
        host_totals: dict[str, int]
        settlement_date: str  # the host's settlement day, MMDD

        def apply(self, terminal: Terminal) -> None:
            terminal.last_host_settlement = {
                "batch_no": self.batch_no, "balanced": self.balanced, "response_code": self.response_code,
                "ledger_totals": dict(self.ledger_totals), "host_totals": dict(self.host_totals),
                "settlement_date": self.settlement_date}

    class TransactionStarted(LedgerAggregate.Event):
        transaction_id: UUID
        kind: str
        payment_method: str
        batch_no: str
        trace_no: str

        def apply(self, terminal: Terminal) -> None:
            terminal.traces[self.trace_no] = str(self.transaction_id)

    class Blocked(LedgerAggregate.Event):
        """A transaction's outcome became unknown: no new card sale until it is resolved."""

        transaction_id: UUID

        def apply(self, terminal: Terminal) -> None:
            terminal.blocked_by.append(self.transaction_id)

    class Unblocked(LedgerAggregate.Event):
        transaction_id: UUID

        def apply(self, terminal: Terminal) -> None:
            terminal.blocked_by.remove(self.transaction_id)

    if TYPE_CHECKING:  # state attributes; not annotations at run time (they would become __init__ args)
        merchant_name: str
        merchant_no: str
        terminal_no: str
        parameters: dict[str, Any]
        operators: dict[str, dict[str, str]]
        till_session_id: UUID | None
        batch_no: int
        traces: dict[str, str]  # trace number -> transaction id, in the open batch
        blocked_by: list[UUID]
        signed_on_day: str | None  # store-local date of the last sign-on with the acquirer host
        last_host_settlement: dict[str, Any] | None

    @classmethod
    def register(cls, stamp: Stamp, merchant_name: str, merchant_no: str, terminal_no: str,
                 parameters: dict[str, Any]) -> Terminal:
        if not re.fullmatch(r"\d{15}", merchant_no or ""):
            raise InvalidInput("merchant_no must be 15 digits", field="merchant_no")
        if not re.fullmatch(r"\d{8}", terminal_no or ""):
            raise InvalidInput("terminal_no must be 8 digits", field="terminal_no")
        full = {
            "store_id": "main",
            "timezone": "Asia/Shanghai",
            "currency": "CNY",
            "min_amount_minor": 1,
            "max_amount_minor": 10_000_000,
            "no_cvm_limit_minor": DEFAULT_NO_CVM_LIMIT_MINOR,
            "fee_rates_ppm": {},
            "accepted_methods": ["card", "cash"],
            "fallback_allowed": True,
            **parameters,
        }
        check_parameters({"merchant_name": merchant_name, **full})
        _check_limits(full)
        return cls._start(
            cls.Registered,
            terminal_id_for(merchant_no, terminal_no),
            stamp,
            merchant_name=merchant_name,
            merchant_no=merchant_no,
            terminal_no=terminal_no,
            parameters=full,
        )

    def change_parameters(self, stamp: Stamp, changes: dict[str, Any]) -> None:
        check_parameters(changes)
        _check_limits({**self.parameters, **changes})
        self._record(self.ParametersChanged, stamp, changes=changes)

    def enroll_operator(self, stamp: Stamp, operator_no: str, name: str, password_hash: str) -> None:
        check_operator_no(operator_no)
        if operator_no in self.operators:
            raise AlreadyExists(f"operator {operator_no} is already enrolled on this terminal")
        if not isinstance(name, str) or not 1 <= len(name) <= 40:
            raise InvalidInput("operator name must be 1-40 characters", field="name")
        self._record(self.OperatorEnrolled, stamp, enrolled_operator_no=operator_no, name=name,
                     password_hash=password_hash)

    def password_hash_of(self, operator_no: str) -> str:
        try:
            return self.operators[operator_no]["password_hash"]
        except KeyError:
            raise NotFound(f"operator {operator_no} is not enrolled on this terminal") from None

    def assign_till(self, stamp: Stamp, till_session_id: UUID) -> None:
        if self.till_session_id is not None:
            raise TillAlreadyOpen(f"till session {self.till_session_id} is still open on this terminal")
        self._record(self.TillAssigned, stamp, till_session_id=till_session_id)

    def release_till(self, stamp: Stamp, till_session_id: UUID) -> None:
        if self.till_session_id == till_session_id:
            self._record(self.TillReleased, stamp, till_session_id=till_session_id)

    def close_batch(self, stamp: Stamp) -> None:
        self.require_unblocked("settle the batch")
        self._record(self.BatchClosed, stamp, batch_no=self.batch_label)

    def start_transaction(self, stamp: Stamp, transaction_id: UUID, kind: str, payment_method: str,
                          batch_no: str, trace_no: str) -> None:
        """Every transaction starts here, so a block or a settlement in another process conflicts with it."""
        if batch_no != self.batch_label:
            raise WrongBatch(f"the terminal's open batch is {self.batch_label}", open_batch=self.batch_label)
        if payment_method == "card":
            self.require_unblocked("start a card transaction")
        if trace_no in self.traces:
            raise DuplicateTrace(f"trace number {trace_no} is already used in batch {batch_no}")
        self._record(self.TransactionStarted, stamp, transaction_id=transaction_id, kind=kind,
                     payment_method=payment_method, batch_no=batch_no, trace_no=trace_no)

    def sign_on(self, stamp: Stamp, local_day: str, batch_no: str, response_code: str) -> None:
        """Record the host's sign-on; the host may move the terminal on to a later batch."""
        if not re.fullmatch(r"\d{6}", batch_no) or batch_no == "000000":
            raise InvalidInput("the host answered with a malformed batch number", field="batch_no")
        if batch_no != self.batch_label and self.traces:
            raise WrongBatch(f"the host opened batch {batch_no}, but batch {self.batch_label} still has "
                             "transactions; settle it first", open_batch=self.batch_label)
        self._record(self.SignedOn, stamp, local_day=local_day, batch_no=batch_no, response_code=response_code)

    def record_host_settlement(self, stamp: Stamp, batch_no: str, balanced: bool, response_code: str,
                               ledger_totals: dict[str, int], host_totals: dict[str, int],
                               settlement_date: str) -> None:
        self._record(self.HostSettlementAnswered, stamp, batch_no=batch_no, balanced=balanced,
                     response_code=response_code, ledger_totals=ledger_totals, host_totals=host_totals,
                     settlement_date=settlement_date)

    def require_signed_on(self, local_day: str) -> None:
        if getattr(self, "signed_on_day", None) != local_day:
            raise SignOnRequired(f"terminal {self.terminal_no} has not signed on with the acquirer host on "
                                 f"{local_day}; sign on first (POST /v1/terminals/{{id}}/sign-on)")

    def local_time(self, moment: datetime) -> datetime:
        """A moment on the store's clock (what the host is told, and what a store day means)."""
        return moment.astimezone(ZoneInfo(self.parameters["timezone"]))

    def local_day(self, moment: datetime) -> str:
        """The store-local calendar date of a moment (sign-on is per store day)."""
        return self.local_time(moment).date().isoformat()

    def block(self, stamp: Stamp, transaction_id: UUID) -> None:
        if transaction_id not in self.blocked_by:
            self._record(self.Blocked, stamp, transaction_id=transaction_id)

    def unblock(self, stamp: Stamp, transaction_id: UUID) -> None:
        if transaction_id in self.blocked_by:
            self._record(self.Unblocked, stamp, transaction_id=transaction_id)

    def require_unblocked(self, action: str) -> None:
        if self.blocked_by:
            raise TillBlocked(
                f"cannot {action}: transaction {self.blocked_by[0]} has an unknown outcome; "
                "resolve it by status inquiry or reversal first",
                transaction_id=str(self.blocked_by[0]),
            )

    @property
    def batch_label(self) -> str:
        return f"{self.batch_no:06d}"

    def accepts(self, method: str) -> bool:
        return method in self.parameters["accepted_methods"]


def _check_limits(params: dict[str, Any]) -> None:
    if params["min_amount_minor"] > params["max_amount_minor"]:
        raise InvalidInput("min_amount_minor must not exceed max_amount_minor", field="min_amount_minor")
