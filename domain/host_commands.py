"""The ledger's side of each exchange with the acquirer host: what is recorded before and after.

Every function returns a command (a function of a UnitOfWork) that the group committer runs like
any append, so what the host answered is saved atomically with its effects (a till blocked, a
credit hold released, a batch closed). The exchanges themselves run in ``domain.authorization``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.acquirer import (
    REVERSAL_TIMEOUT,
    BatchTotals,
    CardData,
    FinancialRequest,
    HostReply,
    OriginalRef,
    ReversalRequest,
    SettlementReply,
    TerminalRef,
    reason_of,
)
from domain.append import AppendRequest, AppendResult, append
from domain.card_data import luhn_valid
from domain.errors import CardMismatch, Conflict, Forbidden, NotFound, OutOfSequence, TillBlocked, WrongBatch
from domain.ports import UnitOfWork
from domain.stamp import Stamp
from domain.terminal import Terminal
from domain.till import TillSession
from domain.till_actions import TILL_HANDLERS
from domain.transaction import Transaction
from domain.transaction_actions import TERMINAL_MAX_AGE_S, TRANSACTION_HANDLERS

Command = Callable[[UnitOfWork], Any]
# EMV tags the service forwards in field 55, from what CardPresented recorded (never tag 57 or 5A).
CHIP_TAGS = (("4F", "aid"), ("95", "tvr"), ("9B", "tsi"), ("9F36", "atc"), ("9F26", "cryptogram"),
             ("9F34", "cvm_results"))


def _txn_append(uow: UnitOfWork, request: AppendRequest) -> AppendResult:
    return append(uow, Transaction, TRANSACTION_HANDLERS, request, lambda t: t.txn_terminal_id)


def _till_append(uow: UnitOfWork, request: AppendRequest) -> AppendResult:
    return append(uow, TillSession, TILL_HANDLERS, request, lambda t: t.till_terminal_id)


def _record(uow: UnitOfWork, transaction_id: UUID, stamp: Stamp, event_type: str,
            fields: dict[str, Any]) -> AppendResult:
    """Append a service-recorded event at the stream's current version (through the same rules)."""
    txn = uow.get(transaction_id, Transaction)
    return _txn_append(uow, AppendRequest(transaction_id, txn.version, event_type, fields, stamp))


def terminal_ref(terminal: Terminal) -> TerminalRef:
    return TerminalRef(merchant_no=terminal.merchant_no, terminal_no=terminal.terminal_no)


def check_card(txn: Transaction, card: CardData) -> None:
    """The number sent must be the card the transaction recorded (same BIN, last 4 and length)."""
    if txn.card is None:
        raise OutOfSequence("no authorization without a card")
    if not isinstance(card.pan, str) or not re.fullmatch(r"\d{13,19}", card.pan) or not luhn_valid(card.pan):
        raise CardMismatch("card.pan must be the card's 13-19 digit number (it is sent to the host only, "
                           "never stored)", field="card.pan")
    if card.expiry is not None and not re.fullmatch(r"\d{2}(0[1-9]|1[0-2])", card.expiry):
        raise CardMismatch("card.expiry must be YYMM", field="card.expiry")
    if card.masked != txn.card["masked_pan"]:
        raise CardMismatch("the card number does not match the card recorded on this transaction "
                           f"({txn.card['masked_pan']})", field="card.pan")


@dataclass(frozen=True, slots=True)
class AuthorizationPlan:
    """What ``begin_authorization`` recorded, and the request to send (None: a replay, send nothing)."""

    result: AppendResult
    request: FinancialRequest | None


def begin_authorization(transaction_id: UUID, expected_version: int, stamp: Stamp,
                        card: CardData) -> Command:
    """Record AuthorizationRequested (STAN = the trace number) and build the host request.

    The executor may run this command again after the store took its append: a connection lost as
    the insert committed, retried into an IntegrityError, looks like a concurrent writer. That second
    run must still send the request (it is this call's own), not answer it as a client's retry."""
    built: list[FinancialRequest] = []  # the request an earlier run of this same command recorded

    def command(uow: UnitOfWork) -> AuthorizationPlan:
        txn = uow.find(transaction_id, Transaction, at_least_version=expected_version)
        if txn is None:
            raise NotFound(f"no Transaction with id {transaction_id}")
        request = AppendRequest(transaction_id, expected_version, "AuthorizationRequested",
                                {"stan": txn.trace_no}, stamp)
        if txn.txn_terminal_id != stamp.terminal_id:
            raise Forbidden("this stream belongs to another terminal")
        if txn.version != expected_version:  # an identical retry answers what was recorded; else 409
            replay = _txn_append(uow, request)
            # Ours: this command built a request, and the stream's last event is the one it appended
            # (its stamp's time; a client's retry is another HTTP request with a stamp of its own).
            ours = built and txn.version == expected_version + 1 and txn.modified_on == stamp.server_time
            return AuthorizationPlan(replay, built[0] if ours else None)
        terminal = uow.get(txn.txn_terminal_id, Terminal, max_age=TERMINAL_MAX_AGE_S)
        if txn.payment_method != "card":
            raise OutOfSequence("only a card transaction is authorized by the host")
        terminal.require_signed_on(terminal.local_day(stamp.server_time))
        if txn.batch_no != terminal.batch_label:
            raise WrongBatch(f"batch {txn.batch_no} was settled after this transaction began; cancel it and "
                             f"start again in batch {terminal.batch_label}", open_batch=terminal.batch_label)
        check_card(txn, card)
        result = _txn_append(uow, request)
        built[:] = [financial_request(uow, txn, terminal, card, stamp.server_time)]
        return AuthorizationPlan(result, built[0])

    return command


def financial_request(uow: UnitOfWork, txn: Transaction, terminal: Terminal, card: CardData,
                      now: datetime) -> FinancialRequest:
    recorded = txn.card or {}
    original: OriginalRef | None = None
    if txn.original_transaction_id is not None:
        sale = uow.get(txn.original_transaction_id, Transaction)
        auth = sale.authorization
        original = OriginalRef(rrn=auth.get("rrn", ""), auth_code=auth.get("auth_code", ""),
                               batch_no=sale.batch_no, stan=sale.trace_no,
                               date_mmdd=terminal.local_time(sale.created_on).strftime("%m%d"))
    chip = {tag: recorded[name] for tag, name in CHIP_TAGS if recorded.get(name)}
    return FinancialRequest(kind=txn.kind, terminal=terminal_ref(terminal), batch_no=txn.batch_no,
                            stan=txn.trace_no, amount_minor=txn.amount_minor or 0, currency=txn.limits["currency"],
                            card=card, entry_mode=recorded.get("entry_mode", "chip"),
                            chip_data=chip if recorded.get("entry_mode") in ("chip", "contactless") else {},
                            local_time=terminal.local_time(now), original=original)


def record_reply(transaction_id: UUID, stamp: Stamp, reply: HostReply) -> Command:
    """The host answered: Authorized or Declined (an unknown outcome is resolved by it too)."""

    def command(uow: UnitOfWork) -> AppendResult:
        if reply.approved:
            return _record(uow, transaction_id, stamp, "Authorized", {
                "auth_code": reply.auth_code, "rrn": reply.rrn, "response_code": reply.response_code})
        return _record(uow, transaction_id, stamp, "Declined", {
            "response_code": reply.response_code, "reason": reason_of(reply.response_code)})

    return command


def record_not_sent(transaction_id: UUID, stamp: Stamp, reason: str) -> Command:
    """The host was unreachable: the request never left, so the transaction may ask again."""

    def command(uow: UnitOfWork) -> Transaction:
        txn = uow.get(transaction_id, Transaction)
        txn.mark_not_sent(stamp, reason)
        if txn.original_transaction_id is not None:
            uow.get(txn.original_transaction_id, Transaction).release_credit(stamp, txn.id)
        return txn

    return command


def record_unknown(transaction_id: UUID, stamp: Stamp, reason: str) -> Command:
    """No valid reply: the outcome is unknown and the terminal is blocked until a reversal lands."""
    return lambda uow: _record(uow, transaction_id, stamp, "OutcomeUnknown", {"reason": reason})


def record_reversal(transaction_id: UUID, stamp: Stamp, response_code: str) -> Command:
    """The host acknowledged the reversal (冲正): nothing is charged; the terminal is unblocked."""
    return lambda uow: _record(uow, transaction_id, stamp, "Reversed",
                               {"reason_code": REVERSAL_TIMEOUT, "response_code": response_code})


def reversal_request(txn: Transaction, terminal: Terminal, now: datetime) -> ReversalRequest:
    return ReversalRequest(kind=txn.kind, terminal=terminal_ref(terminal), batch_no=txn.batch_no,
                           stan=txn.trace_no, amount_minor=txn.amount_minor or 0, currency=txn.limits["currency"],
                           reason_code=REVERSAL_TIMEOUT, local_time=terminal.local_time(now))


def record_sign_on(terminal_id: UUID, stamp: Stamp, batch_no: str, response_code: str) -> Command:
    def command(uow: UnitOfWork) -> Terminal:
        terminal = uow.get(terminal_id, Terminal)
        terminal.sign_on(stamp, terminal.local_day(stamp.server_time), batch_no, response_code)
        return terminal

    return command


# ---- batch settlement (结算) -------------------------------------------------------------------
def batch_totals(transactions: list[Transaction]) -> BatchTotals:
    """The terminal's totals as the host counts them (see BatchTotals)."""
    voided = {t.original_transaction_id for t in transactions
              if t.kind == "void" and t.outcome == "authorized"}
    debit_count = debit_minor = credit_count = credit_minor = 0
    for txn in transactions:
        if txn.payment_method != "card" or txn.outcome != "authorized":
            continue
        if txn.kind == "sale" and txn.id not in voided:
            debit_count, debit_minor = debit_count + 1, debit_minor + (txn.amount_minor or 0)
        elif txn.kind == "refund":
            credit_count, credit_minor = credit_count + 1, credit_minor + (txn.amount_minor or 0)
    return BatchTotals(debit_count, debit_minor, credit_count, credit_minor)


@dataclass(frozen=True, slots=True)
class SettlementPlan:
    till: TillSession
    terminal: Terminal
    totals: BatchTotals
    replay: bool  # the till stream is past the stated version: answer from the record, send nothing


def plan_settlement(load: Callable[[UUID, type[Any]], Any], till_session_id: UUID, expected_version: int,
                    stamp: Stamp, batch_no: str) -> SettlementPlan:
    """Read-only checks and totals before the 0500 goes out (``load`` reads one aggregate)."""
    till: TillSession = load(till_session_id, TillSession)
    if till.till_terminal_id != stamp.terminal_id:
        raise Forbidden("this stream belongs to another terminal")
    terminal: Terminal = load(till.till_terminal_id, Terminal)
    if till.version != expected_version:
        return SettlementPlan(till, terminal, BatchTotals(), replay=True)
    till.require_operator(stamp.operator_no)
    if batch_no != terminal.batch_label:
        raise WrongBatch(f"the terminal's open batch is {terminal.batch_label}, not {batch_no}",
                         open_batch=terminal.batch_label)
    terminal.require_unblocked("settle the batch")
    transactions = [load(UUID(txn_id), Transaction) for txn_id in terminal.traces.values()]
    for txn in transactions:
        if txn.outcome == "pending":
            raise TillBlocked(f"cannot settle the batch: transaction {txn.id} is waiting for the host's answer",
                              transaction_id=str(txn.id))
    return SettlementPlan(till, terminal, batch_totals(transactions), replay=False)


def finish_settlement(till_session_id: UUID, expected_version: int, stamp: Stamp, batch_no: str,
                      plan: SettlementPlan | None, reply: SettlementReply | None) -> Command:
    """Record BatchSettled (closing the batch) and the host's answer, or replay a recorded settlement."""

    def command(uow: UnitOfWork) -> AppendResult:
        request = AppendRequest(till_session_id, expected_version, "BatchSettled", {"batch_no": batch_no}, stamp)
        if plan is None or reply is None:
            return _till_append(uow, request)
        terminal = uow.get(plan.terminal.id, Terminal, max_age=0.0)  # catch up: compare with the store
        if terminal.version != plan.terminal.version:
            raise Conflict("the batch changed while it was being settled; settle again")
        result = _till_append(uow, request)
        # The service's own record goes on the Terminal: the till stream holds only what the terminal states.
        terminal.record_host_settlement(stamp, batch_no, reply.balanced, reply.response_code, plan.totals.as_dict(),
                                        reply.host_totals.as_dict(), reply.settlement_date)
        return result

    return command
