"""Wire schemas: strict (no float money, no coercion), one model per event type, `type` discriminated."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# UUIDs arrive as JSON strings, which strict mode would refuse: parse them leniently.
UUIDStr = Annotated[UUID, Field(strict=False)]
# "copy" would shadow BaseModel.copy: keep the wire name through an alias.
Copy = Annotated[Literal["merchant", "customer"], Field(alias="copy")]


# ---- till session events -------------------------------------------------------------------------
class SelfCheck(Strict):
    service_reachable: StrictBool
    printer_online: StrictBool
    paper_present: StrictBool
    reader_present: StrictBool
    software_version: StrictStr


class TillOpened(Strict):
    type: Literal["TillOpened"]
    float_minor: StrictInt
    currency: StrictStr
    self_check: SelfCheck


class OperatorSignedIn(Strict):
    type: Literal["OperatorSignedIn"]
    operator_no: StrictStr
    password: StrictStr = Field(max_length=128)


class OperatorSignedOut(Strict):
    type: Literal["OperatorSignedOut"]
    operator_no: StrictStr


class CashCounted(Strict):
    type: Literal["CashCounted"]
    counted_minor: StrictInt
    note: StrictStr = ""


class BatchSettled(Strict):
    type: Literal["BatchSettled"]
    batch_no: StrictStr


class TillClosed(Strict):
    type: Literal["TillClosed"]


TillEvent = Annotated[TillOpened | OperatorSignedIn | OperatorSignedOut | CashCounted | BatchSettled | TillClosed,
                      Field(discriminator="type")]


# ---- transaction events ---------------------------------------------------------------------------
class TransactionOpened(Strict):
    type: Literal["TransactionOpened"]
    kind: Literal["sale", "refund", "void"]
    payment_method: Literal["card", "cash"]
    till_session_id: UUIDStr
    batch_no: StrictStr
    trace_no: StrictStr
    original_transaction_id: UUIDStr | None = None


class ItemScanned(Strict):
    type: Literal["ItemScanned"]
    barcode: StrictStr
    name: StrictStr
    quantity: StrictInt
    unit_price_minor: StrictInt


class AmountEntered(Strict):
    type: Literal["AmountEntered"]
    amount_minor: StrictInt
    currency: StrictStr


class AmountConfirmed(Strict):
    type: Literal["AmountConfirmed"]


class CardPresented(Strict):
    type: Literal["CardPresented"]
    entry_mode: Literal["chip", "contactless", "swipe", "fallback_swipe"]
    masked_pan: StrictStr
    pan_token: StrictStr
    brand: StrictStr
    aid: StrictStr = ""
    app_label: StrictStr = ""
    tvr: StrictStr = ""
    tsi: StrictStr = ""
    atc: StrictStr = ""
    cryptogram: StrictStr = ""
    cvm_results: StrictStr = ""


class CardReadFailed(Strict):
    type: Literal["CardReadFailed"]
    entry_mode: Literal["chip", "contactless", "swipe", "fallback_swipe"]
    reason: StrictStr


class PinVerified(Strict):
    type: Literal["PinVerified"]
    method: Literal["offline", "online"]


class PinFailed(Strict):
    type: Literal["PinFailed"]
    tries_left: StrictInt


class PinBypassed(Strict):
    type: Literal["PinBypassed"]
    reason: StrictStr


class CvmNotRequired(Strict):
    type: Literal["CvmNotRequired"]


class AuthorizationRequested(Strict):
    type: Literal["AuthorizationRequested"]
    stan: StrictStr


class Authorized(Strict):
    type: Literal["Authorized"]
    auth_code: StrictStr
    rrn: StrictStr
    response_code: StrictStr = "00"


class Declined(Strict):
    type: Literal["Declined"]
    response_code: StrictStr
    reason: StrictStr


class OutcomeUnknown(Strict):
    type: Literal["OutcomeUnknown"]
    reason: StrictStr


class Reversed(Strict):
    type: Literal["Reversed"]
    reason_code: StrictStr
    response_code: StrictStr = "00"


class SignatureCaptured(Strict):
    type: Literal["SignatureCaptured"]
    image_sha256: StrictStr
    image_ref: StrictStr


class SignatureWaived(Strict):
    type: Literal["SignatureWaived"]
    reason: StrictStr


class ReceiptPrinted(Strict):
    type: Literal["ReceiptPrinted"]
    copy_: Copy
    printer: StrictStr
    reprint_no: StrictInt = 0
    receipt_sha256: StrictStr


class PrintFailed(Strict):
    type: Literal["PrintFailed"]
    copy_: Copy
    printer: StrictStr
    reprint_no: StrictInt = 0
    reason: StrictStr


class TransactionCompleted(Strict):
    type: Literal["TransactionCompleted"]


class TransactionCancelled(Strict):
    type: Literal["TransactionCancelled"]
    reason: StrictStr


class CashTendered(Strict):
    type: Literal["CashTendered"]
    amount_minor: StrictInt


class ChangeGiven(Strict):
    type: Literal["ChangeGiven"]
    amount_minor: StrictInt


TransactionEvent = Annotated[
    TransactionOpened | ItemScanned | AmountEntered | AmountConfirmed | CardPresented | CardReadFailed | PinVerified
    | PinFailed | PinBypassed | CvmNotRequired | AuthorizationRequested | Authorized | Declined | OutcomeUnknown
    | Reversed | SignatureCaptured | SignatureWaived | ReceiptPrinted | PrintFailed | TransactionCompleted
    | TransactionCancelled | CashTendered | ChangeGiven,
    Field(discriminator="type")]


def _iso_text(value: object) -> object:
    """device_time must be ISO 8601 text: a bare number would be read as UTC and lose the terminal's offset."""
    if value is not None and not isinstance(value, str):
        raise ValueError("device_time must be an ISO 8601 string with a UTC offset")
    return value


# ---- envelopes ------------------------------------------------------------------------------------
class Envelope(Strict):
    expected_version: StrictInt = Field(ge=0, description="The version you believe the stream is at (0 = new).")
    operator_no: StrictStr | None = None
    device_time: Annotated[AwareDatetime, Field(strict=False), BeforeValidator(_iso_text)] | None = Field(
        None, description="The terminal's own clock, ISO 8601 with its UTC offset.")


class TillAppend(Envelope):
    event: TillEvent


class TransactionAppend(Envelope):
    event: TransactionEvent


class AppendOut(BaseModel):
    stream_id: UUID
    version: int
    type: str
    recorded_at: datetime
    hash: str
    position: int | None
    replayed: bool


# ---- admin ----------------------------------------------------------------------------------------
class TerminalParameters(Strict):
    store_id: StrictStr | None = None
    timezone: StrictStr | None = None
    currency: StrictStr | None = None
    min_amount_minor: StrictInt | None = None
    max_amount_minor: StrictInt | None = None
    no_cvm_limit_minor: StrictInt | None = None
    fee_rates_ppm: dict[StrictStr, StrictInt] | None = None
    accepted_methods: list[Literal["card", "cash"]] | None = None
    fallback_allowed: StrictBool | None = None

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class TerminalChange(TerminalParameters):
    merchant_name: StrictStr | None = None


class TerminalRegistration(TerminalParameters):
    merchant_name: StrictStr
    merchant_no: StrictStr
    terminal_no: StrictStr


class OperatorEnrollment(Strict):
    operator_no: StrictStr
    name: StrictStr
    password: StrictStr = Field(min_length=6, max_length=128)


TOKEN_LIFETIME_MIN_S = 60
TOKEN_LIFETIME_MAX_S = 400 * 24 * 3600


class TokenRequest(Strict):
    role: Literal["terminal", "accountant", "dispute", "admin"]
    terminal_id: UUIDStr | None = None
    label: StrictStr = ""
    expires_in_s: StrictInt | None = Field(None, ge=TOKEN_LIFETIME_MIN_S, le=TOKEN_LIFETIME_MAX_S, description=(
        "Seconds until the token expires (60 s … 400 days); none: it lasts until revoked."))


class TokenOut(BaseModel):
    token_id: UUID
    token: str
    role: str
    terminal_id: UUID | None
    label: str
    expires_at: datetime | None = None


# ---- acquirer host --------------------------------------------------------------------------------
class CardNumber(Strict):
    """The card as the host needs it, for this one request: sent on, never stored or logged."""

    pan: StrictStr = Field(min_length=13, max_length=19, description="Full card number (digits only).")
    expiry: StrictStr | None = Field(None, min_length=4, max_length=4, description="YYMM; sent, never stored.")

    def __repr__(self) -> str:  # pydantic's repr would show the number in any traceback or log
        return "CardNumber(<redacted>)"

    __str__ = __repr__


class AuthorizeRequest(Envelope):
    card: CardNumber


class AuthorizeOut(BaseModel):
    transaction_id: UUID
    version: int
    outcome: str | None
    response_code: str | None
    auth_code: str | None
    rrn: str | None
    reason: str | None
    reversal_pending: bool
    replayed: bool


class SignOnRequestBody(Strict):
    operator_no: StrictStr
    device_time: Annotated[AwareDatetime, Field(strict=False), BeforeValidator(_iso_text)] | None = None


class SettleRequest(Envelope):
    batch_no: StrictStr
