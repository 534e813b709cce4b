"""The LedgerError tree: every broken rule has a named error with a stable ``code``.

    LedgerError
    ├── InvalidInput                    malformed value (422)
    │   ├── InvalidMoney
    │   ├── CardDataRejected            PAN / track data where it must never be
    │   └── AmountOutOfRange
    ├── RuleViolation                   a well-formed request the rules forbid (422)
    │   ├── OutOfSequence               event not allowed in the stream's current state
    │   ├── TillNotOpen, TillAlreadyOpen, TillBlocked, OperatorNotSignedIn, OperatorAlreadySignedIn
    │   ├── PaymentMethodNotAccepted, FallbackNotAllowed, CurrencyMismatch, WrongBatch, DuplicateTrace
    │   ├── VoidNotAllowed, RefundNotAllowed, RefundExceedsRemaining
    │   ├── SignatureRequired
    │   ├── SignOnRequired              no sign-on with the acquirer host today
    │   └── AuthorizedByHost            in host mode only the service records outcomes and settlements
    ├── CardMismatch (InvalidInput)     the card sent to authorize is not the card recorded
    ├── NotAuthenticated / Forbidden / OperatorCredentialsInvalid / StaffCredentialsInvalid  (401 / 403)
    ├── NotFound                        (404)
    ├── Conflict                        (409)
    │   ├── VersionConflict             carries current_version
    │   └── AlreadyExists
    ├── StoreUnavailable                the event store did not answer (503)
    └── ProjectionBehind                a read view has not reached the asked position in time (503)

The HTTP mapping lives in ``api/errors.py``; the domain only names what went wrong.
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Base of every error Till Ledger raises on purpose."""

    code = "ledger_error"
    title = "Ledger error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(LedgerError):
    """A value is malformed (wrong format, out of its domain)."""

    code = "invalid_input"
    title = "Invalid input"


class InvalidMoney(InvalidInput):
    """Money must be integer minor units with an ISO 4217 currency."""

    code = "invalid_money"
    title = "Invalid money"


class CardDataRejected(InvalidInput):
    """Something that looks like a full PAN or track data was offered for storage."""

    code = "card_data_rejected"
    title = "Card data must not be stored"


class AmountOutOfRange(InvalidInput):
    """The amount is outside the terminal's minimum and maximum."""

    code = "amount_out_of_range"
    title = "Amount out of range"


class RuleViolation(LedgerError):
    """A well-formed request that the payment rules forbid."""

    code = "rule_violation"
    title = "Rule violation"


class OutOfSequence(RuleViolation):
    """The event is not allowed in the stream's current state."""

    code = "out_of_sequence"
    title = "Event out of sequence"


class TillNotOpen(RuleViolation):
    code = "till_not_open"
    title = "Till is not open"


class TillAlreadyOpen(RuleViolation):
    code = "till_already_open"
    title = "Terminal already has an open till"


class TillBlocked(RuleViolation):
    """A transaction with an unknown outcome blocks the till until it is resolved."""

    code = "till_blocked"
    title = "Till blocked by an unresolved transaction"


class OperatorNotSignedIn(RuleViolation):
    code = "operator_not_signed_in"
    title = "Operator not signed in"


class OperatorAlreadySignedIn(RuleViolation):
    code = "operator_already_signed_in"
    title = "Another operator is signed in"


class PaymentMethodNotAccepted(RuleViolation):
    code = "payment_method_not_accepted"
    title = "Payment method not accepted by this terminal"


class FallbackNotAllowed(RuleViolation):
    code = "fallback_not_allowed"
    title = "Fallback swipe not allowed"


class CurrencyMismatch(RuleViolation):
    code = "currency_mismatch"
    title = "Currency does not match"


class DuplicateTrace(RuleViolation):
    """A trace number (凭证号) identifies one transaction within a terminal's batch."""

    code = "duplicate_trace"
    title = "Trace number already used in this batch"


class WrongBatch(RuleViolation):
    code = "wrong_batch"
    title = "Batch number is not the terminal's open batch"


class VoidNotAllowed(RuleViolation):
    """Void only a completed, authorized sale of the same open batch, in full, once."""

    code = "void_not_allowed"
    title = "Void not allowed"


class RefundNotAllowed(RuleViolation):
    """Refund only a completed, authorized, settled sale that was not voided."""

    code = "refund_not_allowed"
    title = "Refund not allowed"


class RefundExceedsRemaining(RuleViolation):
    code = "refund_exceeds_remaining"
    title = "Refund exceeds what remains of the sale"


class SignatureRequired(RuleViolation):
    code = "signature_required"
    title = "Signature or waiver required before completion"


class SignOnRequired(RuleViolation):
    """Card requests reach the host only after the terminal signed on (签到) this business day."""

    code = "sign_on_required"
    title = "Sign on with the acquirer host first"


class AuthorizedByHost(RuleViolation):
    """With an acquirer host configured, outcomes and settlements come from the host, not the terminal."""

    code = "authorized_by_host"
    title = "Recorded by the service from the host's answer"


class CardMismatch(InvalidInput):
    """The card number sent for authorization does not match the card recorded on the transaction."""

    code = "card_mismatch"
    title = "Card does not match the recorded card"


class NotAuthenticated(LedgerError):
    code = "not_authenticated"
    title = "Not authenticated"


class Forbidden(LedgerError):
    code = "forbidden"
    title = "Forbidden"


class OperatorCredentialsInvalid(LedgerError):
    code = "operator_credentials_invalid"
    title = "Operator number or password is wrong"


class StaffCredentialsInvalid(LedgerError):
    code = "staff_credentials_invalid"
    title = "User name or password is wrong"


class NotFound(LedgerError):
    code = "not_found"
    title = "Not found"


class Conflict(LedgerError):
    code = "conflict"
    title = "Conflict"


class VersionConflict(Conflict):
    """A different event is already recorded at the version the client expected to write."""

    code = "version_conflict"
    title = "Version conflict"

    def __init__(self, detail: str, current_version: int) -> None:
        super().__init__(detail, current_version=current_version)
        self.current_version = current_version


class AlreadyExists(Conflict):
    code = "already_exists"
    title = "Already exists"


class StoreUnavailable(LedgerError):
    """The event store did not answer; nothing was recorded."""

    code = "store_unavailable"
    title = "Event store unavailable"


class ProjectionBehind(LedgerError):
    """A read-your-writes request: the view did not reach the asked log position within the wait."""

    code = "projection_behind"
    title = "The read view has not caught up yet"
