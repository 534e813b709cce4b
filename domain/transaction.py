"""Transaction: one card or cash sale, refund or void, from opening to completion.

State machine (card):  opened → amount entered/confirmed, card presented (any order) → CVM
(PIN verified / bypassed / not required) → authorization requested → authorized | declined |
outcome unknown → (unknown) authorized | declined | reversed → signature/waiver if the CVM asks →
completed. Receipts print only after an outcome; after completion only reprints, a void or refund
bookkeeping may follow. Cash: amount → tendered → change → completed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import re
from typing import Any
from uuid import UUID

from domain.aggregate import LedgerAggregate
from domain.card_data import check_hex64, check_masked_pan
from domain.errors import (
    AmountOutOfRange,
    CurrencyMismatch,
    FallbackNotAllowed,
    InvalidInput,
    OutOfSequence,
    PaymentMethodNotAccepted,
    RefundExceedsRemaining,
    SignatureRequired,
    VoidNotAllowed,
)
from domain.money import check_currency, check_minor
from domain.stamp import Stamp

KINDS = ("sale", "refund", "void")
METHODS = ("card", "cash")
ENTRY_MODES = ("chip", "contactless", "swipe", "fallback_swipe")
COPIES = ("merchant", "customer")
CHIP_FAILURES_BEFORE_FALLBACK = 3
RESOLVED = ("authorized", "declined", "reversed")
# What an approval must carry to be recorded (and printed): checked here and before recording a host's reply.
AUTH_CODE = r"[0-9A-Z ]{6}"
RRN = r"[0-9A-Z]{12}"
RESPONSE_CODE = r"[0-9A-Z]{2}"


def _text(value: Any, field: str, max_len: int = 64, pattern: str | None = None) -> str:
    if not isinstance(value, str) or len(value) > max_len or (pattern and not re.fullmatch(pattern, value)):
        hint = f" matching {pattern}" if pattern else ""
        raise InvalidInput(f"{field} must be a string of at most {max_len} characters{hint}", field=field)
    return value


def _one_of(value: Any, field: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidInput(f"{field} must be one of {', '.join(allowed)}", field=field)
    return str(value)


class Transaction(LedgerAggregate):
    """One sale, refund or void at one terminal; the unit of idempotency and of dispute evidence."""

    # ---- events the terminal states ------------------------------------------------------------
    class TransactionOpened(LedgerAggregate.Created):
        kind: str
        payment_method: str
        till_session_id: UUID
        batch_no: str
        trace_no: str
        original_transaction_id: UUID | None
        terminal_snapshot: dict[str, Any]  # limits in force when the transaction began (server side)
        client_fields = ("kind", "payment_method", "till_session_id", "batch_no", "trace_no",
                         "original_transaction_id")

        def apply(self, txn: Transaction) -> None:
            txn.kind, txn.payment_method = self.kind, self.payment_method
            txn.txn_terminal_id = self.terminal_id
            txn.till_session_id = self.till_session_id
            txn.batch_no, txn.trace_no = self.batch_no, self.trace_no
            txn.original_transaction_id = self.original_transaction_id
            txn.limits = dict(self.terminal_snapshot)
            txn.operator = self.operator_no
            txn.status = "open"
            txn.items, txn.amount_minor, txn.amount_confirmed = [], None, False
            txn.card, txn.chip_failures, txn.cvm, txn.pin_blocked = None, 0, None, False
            txn.outcome, txn.authorization = None, {}
            txn.signature = None
            txn.prints = {"merchant": 0, "customer": 0}
            txn.cash_tendered_minor, txn.change_given_minor = None, None
            txn.voided_by, txn.credits = None, {}

    class ItemScanned(LedgerAggregate.Event):
        barcode: str
        name: str
        quantity: int
        unit_price_minor: int
        client_fields = ("barcode", "name", "quantity", "unit_price_minor")

        def apply(self, txn: Transaction) -> None:
            txn.items.append({"barcode": self.barcode, "name": self.name, "quantity": self.quantity,
                              "unit_price_minor": self.unit_price_minor})

    class AmountEntered(LedgerAggregate.Event):
        amount_minor: int
        currency: str
        client_fields = ("amount_minor", "currency")

        def apply(self, txn: Transaction) -> None:
            txn.amount_minor = self.amount_minor

    class AmountConfirmed(LedgerAggregate.Event):
        def apply(self, txn: Transaction) -> None:
            txn.amount_confirmed = True

    class CardPresented(LedgerAggregate.Event):
        entry_mode: str
        masked_pan: str
        pan_token: str
        brand: str
        aid: str
        app_label: str
        tvr: str
        tsi: str
        atc: str
        cryptogram: str
        cvm_results: str
        client_fields = ("entry_mode", "masked_pan", "pan_token", "brand", "aid", "app_label", "tvr", "tsi",
                         "atc", "cryptogram", "cvm_results")

        def apply(self, txn: Transaction) -> None:
            txn.card = {name: getattr(self, name) for name in self.client_fields}

    class CardReadFailed(LedgerAggregate.Event):
        entry_mode: str
        reason: str
        client_fields = ("entry_mode", "reason")

        def apply(self, txn: Transaction) -> None:
            if self.entry_mode in ("chip", "contactless"):
                txn.chip_failures += 1

    class PinVerified(LedgerAggregate.Event):
        method: str
        client_fields = ("method",)

        def apply(self, txn: Transaction) -> None:
            txn.cvm = f"pin_{self.method}"

    class PinFailed(LedgerAggregate.Event):
        tries_left: int
        client_fields = ("tries_left",)

        def apply(self, txn: Transaction) -> None:
            txn.pin_blocked = self.tries_left == 0

    class PinBypassed(LedgerAggregate.Event):
        reason: str
        client_fields = ("reason",)

        def apply(self, txn: Transaction) -> None:
            txn.cvm = "signature"

    class CvmNotRequired(LedgerAggregate.Event):
        no_cvm_limit_minor: int

        def apply(self, txn: Transaction) -> None:
            txn.cvm = "no_cvm"

    class AuthorizationRequested(LedgerAggregate.Event):
        stan: str
        client_fields = ("stan",)

        def apply(self, txn: Transaction) -> None:
            txn.outcome = "pending"
            txn.authorization = {"stan": self.stan}

    class Authorized(LedgerAggregate.Event):
        auth_code: str
        rrn: str
        response_code: str
        client_fields = ("auth_code", "rrn", "response_code")

        def apply(self, txn: Transaction) -> None:
            txn.outcome = "authorized"
            txn.authorization.update(auth_code=self.auth_code, rrn=self.rrn, response_code=self.response_code)

    class Declined(LedgerAggregate.Event):
        response_code: str
        reason: str
        client_fields = ("response_code", "reason")

        def apply(self, txn: Transaction) -> None:
            txn.outcome = "declined"
            txn.authorization.update(response_code=self.response_code, reason=self.reason)

    class AuthorizationNotSent(LedgerAggregate.Event):
        """The host could not be reached, so the request never left: nothing was charged."""

        reason: str

        def apply(self, txn: Transaction) -> None:
            txn.outcome = None
            txn.authorization = {}

    class OutcomeUnknown(LedgerAggregate.Event):
        reason: str
        client_fields = ("reason",)

        def apply(self, txn: Transaction) -> None:
            txn.outcome = "unknown"

    class Reversed(LedgerAggregate.Event):
        reason_code: str
        response_code: str
        client_fields = ("reason_code", "response_code")

        def apply(self, txn: Transaction) -> None:
            txn.outcome = "reversed"

    class SignatureCaptured(LedgerAggregate.Event):
        image_sha256: str
        image_ref: str
        client_fields = ("image_sha256", "image_ref")

        def apply(self, txn: Transaction) -> None:
            txn.signature = "captured"

    class SignatureWaived(LedgerAggregate.Event):
        reason: str
        client_fields = ("reason",)

        def apply(self, txn: Transaction) -> None:
            txn.signature = "waived"

    class ReceiptPrinted(LedgerAggregate.Event):
        copy: str
        printer: str
        reprint_no: int
        receipt_sha256: str
        client_fields = ("copy", "printer", "reprint_no", "receipt_sha256")

        def apply(self, txn: Transaction) -> None:
            txn.prints[self.copy] += 1

    class PrintFailed(LedgerAggregate.Event):
        copy: str
        printer: str
        reprint_no: int
        reason: str
        client_fields = ("copy", "printer", "reprint_no", "reason")

    class TransactionCompleted(LedgerAggregate.Event):
        def apply(self, txn: Transaction) -> None:
            txn.status = "completed"

    class TransactionCancelled(LedgerAggregate.Event):
        reason: str
        client_fields = ("reason",)

        def apply(self, txn: Transaction) -> None:
            txn.status = "cancelled"

    class CashTendered(LedgerAggregate.Event):
        amount_minor: int
        client_fields = ("amount_minor",)

        def apply(self, txn: Transaction) -> None:
            txn.cash_tendered_minor = self.amount_minor

    class ChangeGiven(LedgerAggregate.Event):
        amount_minor: int
        client_fields = ("amount_minor",)

        def apply(self, txn: Transaction) -> None:
            txn.change_given_minor = self.amount_minor

    # ---- events the service records on an original sale for its voids and refunds ----------------
    class CreditReserved(LedgerAggregate.Event):
        credit_transaction_id: UUID
        credit_kind: str
        amount_minor: int

        def apply(self, txn: Transaction) -> None:
            txn.credits[str(self.credit_transaction_id)] = {
                "kind": self.credit_kind, "amount_minor": self.amount_minor, "state": "reserved"}

    class CreditReleased(LedgerAggregate.Event):
        credit_transaction_id: UUID

        def apply(self, txn: Transaction) -> None:
            txn.credits.pop(str(self.credit_transaction_id), None)

    class TransactionVoided(LedgerAggregate.Event):
        void_transaction_id: UUID

        def apply(self, txn: Transaction) -> None:
            txn.voided_by = self.void_transaction_id
            txn.credits[str(self.void_transaction_id)]["state"] = "applied"

    class Refunded(LedgerAggregate.Event):
        refund_transaction_id: UUID
        amount_minor: int

        def apply(self, txn: Transaction) -> None:
            txn.credits[str(self.refund_transaction_id)]["state"] = "applied"

    # ---- state ---------------------------------------------------------------------------------
    if TYPE_CHECKING:  # state attributes; not annotations at run time (they would become __init__ args)
        kind: str
        payment_method: str
        txn_terminal_id: UUID
        till_session_id: UUID
        batch_no: str
        trace_no: str
        original_transaction_id: UUID | None
        limits: dict[str, Any]
        operator: str | None
        status: str
        items: list[dict[str, Any]]
        amount_minor: int | None
        amount_confirmed: bool
        card: dict[str, str] | None
        chip_failures: int
        cvm: str | None
        pin_blocked: bool
        outcome: str | None
        authorization: dict[str, str]
        signature: str | None
        prints: dict[str, int]
        cash_tendered_minor: int | None
        change_given_minor: int | None
        voided_by: UUID | None
        credits: dict[str, dict[str, Any]]

    # ---- commands ------------------------------------------------------------------------------
    @classmethod
    def open(cls, transaction_id: UUID, stamp: Stamp, *, kind: str, payment_method: str,
             till_session_id: UUID, batch_no: str, trace_no: str, original_transaction_id: UUID | None,
             terminal_snapshot: dict[str, Any]) -> Transaction:
        _one_of(kind, "kind", KINDS)
        _one_of(payment_method, "payment_method", METHODS)
        if payment_method not in terminal_snapshot["accepted_methods"]:
            raise PaymentMethodNotAccepted(f"this terminal does not accept {payment_method} payments")
        _text(batch_no, "batch_no", 6, r"\d{6}")
        _text(trace_no, "trace_no", 6, r"\d{6}")
        if (kind == "sale") != (original_transaction_id is None):
            raise InvalidInput("original_transaction_id is required for refund and void, and only for them",
                               field="original_transaction_id")
        return cls._start(cls.TransactionOpened, transaction_id, stamp, kind=kind, payment_method=payment_method,
                          till_session_id=till_session_id, batch_no=batch_no, trace_no=trace_no,
                          original_transaction_id=original_transaction_id, terminal_snapshot=terminal_snapshot)

    def scan_item(self, stamp: Stamp, barcode: str, name: str, quantity: int, unit_price_minor: int) -> None:
        self._require_collecting("scan an item")
        _text(barcode, "barcode", 32, r"[0-9A-Za-z\-]+")
        _text(name, "name", 64)
        if check_minor(quantity, "quantity") < 1:
            raise InvalidInput("quantity must be at least 1", field="quantity")
        if check_minor(unit_price_minor, "unit_price_minor") < 0:
            raise InvalidInput("unit_price_minor must not be negative", field="unit_price_minor")
        self._record(self.ItemScanned, stamp, barcode=barcode, name=name, quantity=quantity,
                     unit_price_minor=unit_price_minor)

    def enter_amount(self, stamp: Stamp, amount_minor: int, currency: str, *,
                     original_amount_minor: int | None = None, refundable_minor: int | None = None) -> None:
        self._require_collecting("enter the amount")
        check_minor(amount_minor)
        check_currency(currency)
        if currency != self.limits["currency"]:
            raise CurrencyMismatch(f"this terminal takes {self.limits['currency']}, not {currency}")
        low, high = self.limits["min_amount_minor"], self.limits["max_amount_minor"]
        if self.kind == "void":
            if amount_minor != original_amount_minor:
                raise VoidNotAllowed("a void is for the full amount of the original sale only",
                                     original_amount_minor=original_amount_minor)
        elif not max(low, 1) <= amount_minor <= high:
            raise AmountOutOfRange(f"amount must be between {low} and {high} minor units", minimum=low, maximum=high)
        if self.kind == "refund" and refundable_minor is not None and amount_minor > refundable_minor:
            raise RefundExceedsRemaining(f"only {refundable_minor} minor units of the sale remain refundable",
                                         remaining_minor=refundable_minor)
        self._record(self.AmountEntered, stamp, amount_minor=amount_minor, currency=currency)

    def confirm_amount(self, stamp: Stamp) -> None:
        self._require_open()
        if self.amount_minor is None or self.amount_confirmed:
            raise OutOfSequence("the customer confirms an entered, not yet confirmed amount")
        self._record(self.AmountConfirmed, stamp)

    def present_card(self, stamp: Stamp, *, entry_mode: str, masked_pan: str, pan_token: str, brand: str,
                     aid: str, app_label: str, tvr: str, tsi: str, atc: str, cryptogram: str, cvm_results: str,
                     original_pan_token: str | None = None) -> None:
        self._require_card_stage("present a card")
        if self.card is not None:
            raise OutOfSequence("a card has already been read for this transaction")
        _one_of(entry_mode, "entry_mode", ENTRY_MODES)
        if entry_mode == "fallback_swipe":
            if not self.limits["fallback_allowed"]:
                raise FallbackNotAllowed("this terminal's parameters forbid fallback to swipe")
            if self.chip_failures < CHIP_FAILURES_BEFORE_FALLBACK:
                raise FallbackNotAllowed(
                    f"fallback swipe needs {CHIP_FAILURES_BEFORE_FALLBACK} failed chip reads first "
                    f"({self.chip_failures} recorded)")
        check_masked_pan(masked_pan)
        check_hex64(pan_token, "pan_token")
        _text(brand, "brand", 16, r"[a-z]+")
        _text(aid, "aid", 32, r"([0-9A-F]{10,32})?")
        _text(app_label, "app_label", 32)
        for name, value in (("tvr", tvr), ("tsi", tsi), ("atc", atc), ("cryptogram", cryptogram),
                            ("cvm_results", cvm_results)):
            _text(value, name, 32, r"([0-9A-F]{2})*")
        if original_pan_token is not None and pan_token != original_pan_token:
            raise InvalidInput(f"a {self.kind} must use the card of the original sale", field="pan_token")
        self._record(self.CardPresented, stamp, entry_mode=entry_mode, masked_pan=masked_pan, pan_token=pan_token,
                     brand=brand, aid=aid, app_label=app_label, tvr=tvr, tsi=tsi, atc=atc, cryptogram=cryptogram,
                     cvm_results=cvm_results)

    def fail_card_read(self, stamp: Stamp, entry_mode: str, reason: str) -> None:
        self._require_card_stage("record a card read failure")
        if self.card is not None:
            raise OutOfSequence("the card was already read")
        _one_of(entry_mode, "entry_mode", ENTRY_MODES)
        self._record(self.CardReadFailed, stamp, entry_mode=entry_mode, reason=_text(reason, "reason", 200))

    def verify_pin(self, stamp: Stamp, method: str) -> None:
        self._require_cvm_stage()
        self._record(self.PinVerified, stamp, method=_one_of(method, "method", ("offline", "online")))

    def fail_pin(self, stamp: Stamp, tries_left: int) -> None:
        self._require_cvm_stage()
        if check_minor(tries_left, "tries_left") < 0:
            raise InvalidInput("tries_left must not be negative", field="tries_left")
        self._record(self.PinFailed, stamp, tries_left=tries_left)

    def bypass_pin(self, stamp: Stamp, reason: str) -> None:
        self._require_cvm_stage()
        self._record(self.PinBypassed, stamp, reason=_text(reason, "reason", 200))

    def skip_cvm(self, stamp: Stamp) -> None:
        self._require_cvm_stage()
        limit = self.limits["no_cvm_limit_minor"]
        if self.amount_minor is None or self.amount_minor > limit:
            raise OutOfSequence(f"no CVM is allowed only for a known amount up to {limit} minor units")
        self._record(self.CvmNotRequired, stamp, no_cvm_limit_minor=limit)

    def request_authorization(self, stamp: Stamp, stan: str) -> None:
        self._require_card_stage("request authorization")
        if not self.amount_confirmed:
            raise OutOfSequence("no authorization without an amount the customer confirmed")
        if self.card is None:
            raise OutOfSequence("no authorization without a card")
        if self.cvm is None:
            raise OutOfSequence("no authorization before the cardholder verification step")
        self._record(self.AuthorizationRequested, stamp, stan=_text(stan, "stan", 6, r"\d{6}"))

    def authorize(self, stamp: Stamp, auth_code: str, rrn: str, response_code: str) -> None:
        self._require_outcome_in(("pending", "unknown"), "record an approval")
        self._record(self.Authorized, stamp, auth_code=_text(auth_code, "auth_code", 6, AUTH_CODE),
                     rrn=_text(rrn, "rrn", 12, RRN),
                     response_code=_text(response_code, "response_code", 2, RESPONSE_CODE))

    def decline(self, stamp: Stamp, response_code: str, reason: str) -> None:
        self._require_outcome_in(("pending", "unknown"), "record a decline")
        self._record(self.Declined, stamp, response_code=_text(response_code, "response_code", 2, RESPONSE_CODE),
                     reason=_text(reason, "reason", 200))

    def mark_not_sent(self, stamp: Stamp, reason: str) -> None:
        self._require_outcome_in(("pending",), "record a request that was never sent")
        self._record(self.AuthorizationNotSent, stamp, reason=_text(reason, "reason", 200))

    def mark_outcome_unknown(self, stamp: Stamp, reason: str) -> None:
        self._require_outcome_in(("pending",), "record an unknown outcome")
        self._record(self.OutcomeUnknown, stamp, reason=_text(reason, "reason", 200))

    def reverse(self, stamp: Stamp, reason_code: str, response_code: str) -> None:
        self._require_outcome_in(("unknown", "authorized"), "record a reversal")
        self._require_open()
        self._record(self.Reversed, stamp, reason_code=_text(reason_code, "reason_code", 4, r"\d{4}"),
                     response_code=_text(response_code, "response_code", 2, RESPONSE_CODE))

    def capture_signature(self, stamp: Stamp, image_sha256: str, image_ref: str) -> None:
        self._require_signature_stage()
        self._record(self.SignatureCaptured, stamp, image_sha256=check_hex64(image_sha256, "image_sha256"),
                     image_ref=_text(image_ref, "image_ref", 200))

    def waive_signature(self, stamp: Stamp, reason: str) -> None:
        self._require_signature_stage()
        self._record(self.SignatureWaived, stamp, reason=_text(reason, "reason", 200))

    def print_receipt(self, stamp: Stamp, copy: str, printer: str, reprint_no: int, receipt_sha256: str) -> None:
        self._require_print_stage(copy, reprint_no)
        self._record(self.ReceiptPrinted, stamp, copy=copy, printer=_text(printer, "printer", 64),
                     reprint_no=reprint_no, receipt_sha256=check_hex64(receipt_sha256, "receipt_sha256"))

    def fail_print(self, stamp: Stamp, copy: str, printer: str, reprint_no: int, reason: str) -> None:
        self._require_print_stage(copy, reprint_no)
        self._record(self.PrintFailed, stamp, copy=copy, printer=_text(printer, "printer", 64),
                     reprint_no=reprint_no, reason=_text(reason, "reason", 200))

    def tender_cash(self, stamp: Stamp, amount_minor: int) -> None:
        self._require_cash_stage()
        if self.cash_tendered_minor is not None:
            raise OutOfSequence("cash has already been tendered")
        if check_minor(amount_minor) < (self.amount_minor or 0):
            raise InvalidInput("cash tendered must cover the amount", field="amount_minor")
        self._record(self.CashTendered, stamp, amount_minor=amount_minor)

    def give_change(self, stamp: Stamp, amount_minor: int) -> None:
        self._require_cash_stage()
        if self.cash_tendered_minor is None or self.change_given_minor is not None:
            raise OutOfSequence("change is given once, after cash is tendered")
        due = self.cash_tendered_minor - (self.amount_minor or 0)
        if check_minor(amount_minor) != due:
            raise InvalidInput(f"change due is {due} minor units", field="amount_minor", change_due_minor=due)
        self._record(self.ChangeGiven, stamp, amount_minor=amount_minor)

    def complete(self, stamp: Stamp) -> None:
        self._require_open()
        if self.payment_method == "card":
            if self.outcome not in RESOLVED:
                raise OutOfSequence("a card transaction completes only after its outcome is known "
                                    f"(outcome is {self.outcome or 'not requested'})")
            if self.outcome == "authorized" and self.signature_required and self.signature is None:
                raise SignatureRequired("the cardholder verification asks for a signature or a recorded waiver")
        elif not self.amount_confirmed:
            raise OutOfSequence("a cash transaction completes after the amount is confirmed")
        elif self.kind == "sale" and (self.cash_tendered_minor is None or (
                self.cash_tendered_minor > (self.amount_minor or 0) and self.change_given_minor is None)):
            raise OutOfSequence("a cash sale completes after the cash is tendered and the change is given")
        self._record(self.TransactionCompleted, stamp)

    def cancel(self, stamp: Stamp, reason: str) -> None:
        self._require_open()
        if self.outcome in ("pending", "unknown", "authorized"):
            raise OutOfSequence(f"cannot cancel while the authorization is {self.outcome}; "
                                "an approved or unknown transaction must be reversed")
        self._record(self.TransactionCancelled, stamp, reason=_text(reason, "reason", 200))

    # ---- the original sale's side of voids and refunds -------------------------------------------
    def reserve_credit(self, stamp: Stamp, credit: Transaction) -> None:
        """Hold part of this sale for a void or refund in flight, so two can never overspend it."""
        amount = credit.amount_minor or 0
        if credit.kind == "void":
            if self.credits:
                raise VoidNotAllowed("this sale already has a void or refund in progress or applied")
        elif amount > self.refundable_minor:
            raise RefundExceedsRemaining(f"only {self.refundable_minor} minor units of the sale remain refundable",
                                         remaining_minor=self.refundable_minor)
        self._record(self.CreditReserved, stamp, credit_transaction_id=credit.id, credit_kind=credit.kind,
                     amount_minor=amount)

    def release_credit(self, stamp: Stamp, credit_id: UUID) -> None:
        if self.credits.get(str(credit_id), {}).get("state") == "reserved":
            self._record(self.CreditReleased, stamp, credit_transaction_id=credit_id)

    def apply_credit(self, stamp: Stamp, credit: Transaction) -> None:
        if str(credit.id) not in self.credits:
            self.reserve_credit(stamp, credit)
        if credit.kind == "void":
            self._record(self.TransactionVoided, stamp, void_transaction_id=credit.id)
        else:
            self._record(self.Refunded, stamp, refund_transaction_id=credit.id, amount_minor=credit.amount_minor)

    # ---- derived -------------------------------------------------------------------------------
    @property
    def signature_required(self) -> bool:
        return self.cvm == "signature"

    @property
    def refundable_minor(self) -> int:
        held = sum(c["amount_minor"] for c in self.credits.values())
        return 0 if self.voided_by else (self.amount_minor or 0) - held

    @property
    def is_settled_sale(self) -> bool:
        return self.kind == "sale" and self.status == "completed" and (
            self.outcome == "authorized" or self.payment_method == "cash")

    # ---- guards --------------------------------------------------------------------------------
    def _require_open(self) -> None:
        if self.status != "open":
            raise OutOfSequence(f"the transaction is {self.status}")

    def _require_collecting(self, action: str) -> None:
        self._require_open()
        if self.amount_confirmed or self.outcome is not None or self.cash_tendered_minor is not None:
            raise OutOfSequence(f"cannot {action} after the customer confirmed the amount")

    def _require_card_stage(self, action: str) -> None:
        self._require_open()
        if self.payment_method != "card":
            raise OutOfSequence(f"cannot {action} in a cash transaction")
        if self.outcome is not None:
            raise OutOfSequence(f"cannot {action} after authorization was requested")

    def _require_cvm_stage(self) -> None:
        self._require_card_stage("verify the cardholder")
        if self.card is None:
            raise OutOfSequence("the card comes before the PIN")
        if self.cvm is not None:
            raise OutOfSequence("the cardholder is already verified")
        if self.pin_blocked:
            raise OutOfSequence("the PIN is blocked; cancel the transaction")

    def _require_outcome_in(self, allowed: tuple[str, ...], action: str) -> None:
        if self.outcome not in allowed:
            raise OutOfSequence(f"cannot {action} when the authorization is {self.outcome or 'not requested'}")

    def _require_signature_stage(self) -> None:
        self._require_open()
        if self.outcome != "authorized":
            raise OutOfSequence("a signature is taken for an authorized transaction")
        if self.signature is not None:
            raise OutOfSequence("the signature step is already recorded")

    def _require_cash_stage(self) -> None:
        self._require_open()
        if self.payment_method != "cash":
            raise OutOfSequence("cash is tendered in a cash transaction only")
        if not self.amount_confirmed:
            raise OutOfSequence("cash is tendered after the customer confirmed the amount")

    def _require_print_stage(self, copy: str, reprint_no: int) -> None:
        _one_of(copy, "copy", COPIES)
        if self.status == "cancelled":
            raise OutOfSequence("a cancelled transaction has no receipt")
        has_outcome = self.outcome in RESOLVED or (
            self.payment_method == "cash" and (self.cash_tendered_minor is not None or self.status == "completed"))
        if not has_outcome:
            raise OutOfSequence("receipts print only after an outcome; never while it is unknown")
        expected = self.prints[copy]
        if check_minor(reprint_no, "reprint_no") != expected:
            raise InvalidInput(f"the next {copy} copy is reprint number {expected}", field="reprint_no",
                               expected_reprint_no=expected)
