"""What each transaction event a terminal appends does, including its effects on other aggregates.

Cross-aggregate rules live here because they need several aggregates in one unit of work:
the till session (operator signed in, blocked by an unknown outcome), the terminal (open batch,
limits) and, for voids and refunds, the original sale (reservations never exceed what remains).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from domain.append import AppendRequest, Handler, creates_stream
from domain.errors import Forbidden, InvalidInput, OutOfSequence, RefundNotAllowed, VoidNotAllowed
from domain.ports import UnitOfWork
from domain.terminal import Terminal
from domain.till import TillSession
from domain.transaction import Transaction

# A parameter change reaches a process's cached terminal within this many seconds.
TERMINAL_MAX_AGE_S = 5.0


def _uuid(value: Any, field: str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{field} must be a UUID", field=field) from None


def _terminal(uow: UnitOfWork, request: AppendRequest) -> Terminal:
    if request.stamp.terminal_id is None:
        raise Forbidden("only a terminal appends transaction events")
    return uow.get(request.stamp.terminal_id, Terminal, max_age=TERMINAL_MAX_AGE_S)


def _original(uow: UnitOfWork, txn: Transaction) -> Transaction | None:
    if txn.original_transaction_id is None:
        return None
    return uow.get(txn.original_transaction_id, Transaction)


@creates_stream
def _opened(uow: UnitOfWork, txn: Transaction | None, r: AppendRequest) -> Transaction:
    if txn is not None:
        raise OutOfSequence("the transaction is already open")
    f = r.fields
    terminal = _terminal(uow, r)
    till_id = _uuid(f.get("till_session_id"), "till_session_id")
    till = uow.get(till_id, TillSession)
    if till.till_terminal_id != terminal.id:
        raise Forbidden("the till session belongs to another terminal")
    kind, method = f.get("kind"), f.get("payment_method")
    original_id = f.get("original_transaction_id")
    if original_id is not None:
        original_id = _uuid(original_id, "original_transaction_id")
        _check_original(uow, terminal, kind, method, original_id)
    snapshot = {key: terminal.parameters[key] for key in (
        "currency", "min_amount_minor", "max_amount_minor", "no_cvm_limit_minor", "fallback_allowed",
        "accepted_methods")}
    txn = Transaction.open(r.stream_id, r.stamp, kind=kind, payment_method=method, till_session_id=till_id,
                           batch_no=f["batch_no"], trace_no=f.get("trace_no"),  # type: ignore[arg-type]
                           original_transaction_id=original_id, terminal_snapshot=snapshot)
    till.require_operator(r.stamp.operator_no)
    terminal.start_transaction(r.stamp, r.stream_id, kind, method, txn.batch_no, txn.trace_no)  # type: ignore[arg-type]
    uow.add(txn)
    return txn


def _check_original(uow: UnitOfWork, terminal: Terminal, kind: Any, method: Any, original_id: UUID) -> None:
    original = uow.find(original_id, Transaction)
    error = VoidNotAllowed if kind == "void" else RefundNotAllowed
    if original is None or not original.is_settled_sale:
        raise error(f"the original {original_id} is not a completed, approved sale")
    if original.payment_method != method:
        raise error(f"the original was paid by {original.payment_method}")
    if original.voided_by is not None:
        raise error("the original sale was voided")
    if kind == "void":
        if original.txn_terminal_id != terminal.id or original.batch_no != terminal.batch_label:
            raise VoidNotAllowed("a void must be made on the same terminal within the same open batch; "
                                 "after settlement, make a refund")
        if original.credits:
            raise VoidNotAllowed("the sale already has a void or refund in progress or applied")
    else:
        home = terminal if original.txn_terminal_id == terminal.id else uow.get(
            original.txn_terminal_id, Terminal, max_age=TERMINAL_MAX_AGE_S)
        if home.merchant_no != terminal.merchant_no:
            raise RefundNotAllowed("the original sale belongs to another merchant")
        if original.batch_no == home.batch_label:
            raise RefundNotAllowed("the original sale's batch is not settled yet; void it instead")
        if original.refundable_minor <= 0:
            raise RefundNotAllowed("nothing remains to refund on the original sale")


def _amount(uow: UnitOfWork, txn: Transaction, r: AppendRequest) -> Transaction:
    original = _original(uow, txn)
    txn.enter_amount(r.stamp, r.fields.get("amount_minor"), r.fields.get("currency"),  # type: ignore[arg-type]
                     original_amount_minor=original.amount_minor if original else None,
                     refundable_minor=original.refundable_minor if original else None)
    return txn


def _card(uow: UnitOfWork, txn: Transaction, r: AppendRequest) -> Transaction:
    original = _original(uow, txn)
    original_token = original.card["pan_token"] if original is not None and original.card else None
    fields = {name: r.fields.get(name) for name in Transaction.CardPresented.client_fields}
    txn.present_card(r.stamp, original_pan_token=original_token, **fields)
    return txn


def _require_void_batch_open(uow: UnitOfWork, txn: Transaction, original: Transaction) -> None:
    """A void opened before a settlement must not go through after it: that is a refund now."""
    if txn.kind == "void":
        terminal = uow.get(txn.txn_terminal_id, Terminal, max_age=TERMINAL_MAX_AGE_S)
        if original.batch_no != terminal.batch_label:
            raise VoidNotAllowed("the sale's batch has been settled since this void began; make a refund")


def _authorization_requested(uow: UnitOfWork, txn: Transaction, r: AppendRequest) -> Transaction:
    original = _original(uow, txn)
    if original is not None:
        _require_void_batch_open(uow, txn, original)
    txn.request_authorization(r.stamp, r.fields.get("stan"))  # type: ignore[arg-type]
    if original is not None:
        original.reserve_credit(r.stamp, txn)
    return txn


def _resolved(uow: UnitOfWork, txn: Transaction, r: AppendRequest, was: str | None) -> Transaction:
    """After an outcome: unblock the till if it was in doubt; free a credit hold that did not go through."""
    if was == "unknown":
        uow.get(txn.txn_terminal_id, Terminal).unblock(r.stamp, txn.id)
    if txn.outcome in ("declined", "reversed"):
        original = _original(uow, txn)
        if original is not None:
            original.release_credit(r.stamp, txn.id)
    return txn


def _authorized(uow: UnitOfWork, txn: Transaction, r: AppendRequest) -> Transaction:
    was = txn.outcome
    txn.authorize(r.stamp, r.fields.get("auth_code"), r.fields.get("rrn"),  # type: ignore[arg-type]
                  r.fields.get("response_code"))  # type: ignore[arg-type]
    return _resolved(uow, txn, r, was)


def _declined(uow: UnitOfWork, txn: Transaction, r: AppendRequest) -> Transaction:
    was = txn.outcome
    txn.decline(r.stamp, r.fields.get("response_code"), r.fields.get("reason"))  # type: ignore[arg-type]
    return _resolved(uow, txn, r, was)


def _reversed(uow: UnitOfWork, txn: Transaction, r: AppendRequest) -> Transaction:
    was = txn.outcome
    txn.reverse(r.stamp, r.fields.get("reason_code"), r.fields.get("response_code"))  # type: ignore[arg-type]
    return _resolved(uow, txn, r, was)


def _unknown(uow: UnitOfWork, txn: Transaction, r: AppendRequest) -> Transaction:
    txn.mark_outcome_unknown(r.stamp, r.fields.get("reason"))  # type: ignore[arg-type]
    uow.get(txn.txn_terminal_id, Terminal).block(r.stamp, txn.id)
    return txn


def _completed(uow: UnitOfWork, txn: Transaction, r: AppendRequest) -> Transaction:
    original = _original(uow, txn)
    goes_through = txn.payment_method == "cash" or txn.outcome == "authorized"
    if original is not None and goes_through:
        _require_void_batch_open(uow, txn, original)
    txn.complete(r.stamp)
    if original is not None:
        if goes_through:
            original.apply_credit(r.stamp, txn)
        else:
            original.release_credit(r.stamp, txn.id)
    return txn


def _simple(method: str, *names: str) -> Handler:
    def handler(uow: UnitOfWork, txn: Transaction, r: AppendRequest) -> Transaction:
        getattr(txn, method)(r.stamp, *(r.fields.get(name) for name in names))
        return txn
    return handler


TRANSACTION_HANDLERS: Mapping[str, Handler] = {
    "TransactionOpened": _opened,
    "ItemScanned": _simple("scan_item", "barcode", "name", "quantity", "unit_price_minor"),
    "AmountEntered": _amount,
    "AmountConfirmed": _simple("confirm_amount"),
    "CardPresented": _card,
    "CardReadFailed": _simple("fail_card_read", "entry_mode", "reason"),
    "PinVerified": _simple("verify_pin", "method"),
    "PinFailed": _simple("fail_pin", "tries_left"),
    "PinBypassed": _simple("bypass_pin", "reason"),
    "CvmNotRequired": _simple("skip_cvm"),
    "AuthorizationRequested": _authorization_requested,
    "Authorized": _authorized,
    "Declined": _declined,
    "OutcomeUnknown": _unknown,
    "Reversed": _reversed,
    "SignatureCaptured": _simple("capture_signature", "image_sha256", "image_ref"),
    "SignatureWaived": _simple("waive_signature", "reason"),
    "ReceiptPrinted": _simple("print_receipt", "copy", "printer", "reprint_no", "receipt_sha256"),
    "PrintFailed": _simple("fail_print", "copy", "printer", "reprint_no", "reason"),
    "TransactionCompleted": _completed,
    "TransactionCancelled": _simple("cancel", "reason"),
    "CashTendered": _simple("tender_cash", "amount_minor"),
    "ChangeGiven": _simple("give_change", "amount_minor"),
}

