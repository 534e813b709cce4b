"""Read-model rows folded from the ledger's events: one per terminal, till session and transaction.

Pure: a ``RowSet`` (any mapping-like store of JSON-able dicts) and domain events in, changed rows out.
The accountant's reconciliation and the dispute handler's search read these rows; the receipts are
rendered from them. Rows hold only what a receipt or report may show: the masked PAN and the keyed
token, never more (the events themselves carry no more).

Times are ISO 8601 text in UTC (``…+00:00``) so that they sort as text on every backend. The
business day of a transaction is the date of its completion (or opening, until it completes) in
the store's timezone, shifted back by the business-day cut-off: with a 04:00 cut-off a sale at
02:30 belongs to the previous day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

Row = dict[str, Any]
TERMINAL, TILL, TRANSACTION, Z_REPORT = "terminal", "till", "txn", "zreport"
DEFAULT_TIMEZONE = "Asia/Shanghai"


class RowSet(Protocol):
    def get(self, table: str, row_id: str) -> Row | None: ...

    def put(self, table: str, row_id: str, row: Row) -> None: ...


@dataclass
class MemoryRows:
    """A RowSet in a dict (tests, and the page cache of the SQL views)."""

    tables: dict[str, dict[str, Row]] = field(default_factory=dict)

    def get(self, table: str, row_id: str) -> Row | None:
        return self.tables.get(table, {}).get(row_id)

    def put(self, table: str, row_id: str, row: Row) -> None:
        self.tables.setdefault(table, {})[row_id] = row


CREDIT_KINDS = ("void", "refund")  # shown negative: they give money back


def counts_in_gross(txn: Row) -> bool:
    """A completed cash transaction, or a completed card transaction the host authorized."""
    return txn.get("status") == "completed" and (
        txn.get("payment_method") == "cash" or txn.get("outcome") == "authorized")


def brand_of(txn: Row) -> str:
    """The report's brand column: the card brand, "cash" for cash."""
    if txn.get("payment_method") == "cash":
        return "cash"
    return str((txn.get("card") or {}).get("brand") or "other")


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def business_day(moment_iso: str, timezone: str, cutoff: time) -> str:
    local = datetime.fromisoformat(moment_iso).astimezone(ZoneInfo(timezone))
    shifted = local - timedelta(hours=cutoff.hour, minutes=cutoff.minute)
    return shifted.date().isoformat()


def fee_minor(amount_minor: int, rate_ppm: int) -> int:
    """The merchant discount on an amount, rounded half up to the minor unit (integers only)."""
    return (amount_minor * rate_ppm + 500_000) // 1_000_000


@dataclass(frozen=True)
class Folder:
    """Applies ledger events to rows. ``cutoff`` is the business-day cut-off (local time of day)."""

    cutoff: time = time(0, 0)

    def apply(self, rows: RowSet, event: Any, position: int) -> None:
        aggregate, _, name = type(event).__qualname__.partition(".")
        handler = getattr(self, f"_{aggregate.lower()}_{name}", None)
        if handler is not None:
            handler(rows, event, position)

    # ---- terminal --------------------------------------------------------------------------------
    def _terminal_Registered(self, rows: RowSet, e: Any, position: int) -> None:
        params = dict(e.parameters)
        rows.put(TERMINAL, str(e.originator_id), {
            "id": str(e.originator_id), "merchant_name": e.merchant_name, "merchant_no": e.merchant_no,
            "terminal_no": e.terminal_no, "parameters": params, "store_id": params.get("store_id"),
            "registered_at": iso(e.timestamp), "blocked_by": [], "position": position})

    def _terminal_ParametersChanged(self, rows: RowSet, e: Any, position: int) -> None:
        row = rows.get(TERMINAL, str(e.originator_id))
        if row is None:
            return
        row["parameters"] = {**row["parameters"], **e.changes}
        row["merchant_name"] = e.changes.get("merchant_name", row["merchant_name"])
        row["store_id"] = row["parameters"].get("store_id")
        row["position"] = position
        rows.put(TERMINAL, row["id"], row)

    def _terminal_Blocked(self, rows: RowSet, e: Any, position: int) -> None:
        self._terminal_blocks(rows, e, position, add=True)

    def _terminal_Unblocked(self, rows: RowSet, e: Any, position: int) -> None:
        self._terminal_blocks(rows, e, position, add=False)

    def _terminal_blocks(self, rows: RowSet, e: Any, position: int, *, add: bool) -> None:
        row = rows.get(TERMINAL, str(e.originator_id))
        if row is None:
            return
        blocked = [b for b in row["blocked_by"] if b != str(e.transaction_id)]
        row["blocked_by"] = blocked + [str(e.transaction_id)] if add else blocked
        row["position"] = position
        rows.put(TERMINAL, row["id"], row)

    # ---- till session ----------------------------------------------------------------------------
    def _tillsession_TillOpened(self, rows: RowSet, e: Any, position: int) -> None:
        terminal = rows.get(TERMINAL, str(e.terminal_id)) or {}
        timezone = terminal.get("parameters", {}).get("timezone", DEFAULT_TIMEZONE)
        opened_at = iso(e.timestamp) or ""
        rows.put(TILL, str(e.originator_id), {
            "id": str(e.originator_id), "terminal_id": str(e.terminal_id),
            "merchant_no": terminal.get("merchant_no"), "terminal_no": terminal.get("terminal_no"),
            "store_id": terminal.get("store_id"), "opened_at": opened_at,
            "business_day": business_day(opened_at, timezone, self.cutoff),
            "float_minor": e.float_minor, "currency": e.currency, "self_check": dict(e.self_check),
            "operators": [], "counted_minor": None, "counted_at": None, "count_note": None,
            "settled_batches": [], "closed_at": None, "position": position})

    def _till_update(self, rows: RowSet, e: Any, position: int) -> Row | None:
        row = rows.get(TILL, str(e.originator_id))
        if row is not None:
            row["position"] = position
        return row

    def _tillsession_OperatorSignedIn(self, rows: RowSet, e: Any, position: int) -> None:
        if (row := self._till_update(rows, e, position)) is not None:
            if e.operator_no not in row["operators"]:
                row["operators"].append(e.operator_no)
            rows.put(TILL, row["id"], row)

    def _tillsession_CashCounted(self, rows: RowSet, e: Any, position: int) -> None:
        if (row := self._till_update(rows, e, position)) is not None:
            row.update(counted_minor=e.counted_minor, counted_at=iso(e.timestamp), count_note=e.note)
            rows.put(TILL, row["id"], row)

    def _tillsession_BatchSettled(self, rows: RowSet, e: Any, position: int) -> None:
        if (row := self._till_update(rows, e, position)) is not None:
            row["settled_batches"].append({"batch_no": e.batch_no, "settled_at": iso(e.timestamp)})
            rows.put(TILL, row["id"], row)

    def _tillsession_TillClosed(self, rows: RowSet, e: Any, position: int) -> None:
        if (row := self._till_update(rows, e, position)) is not None:
            row["closed_at"] = iso(e.timestamp)
            rows.put(TILL, row["id"], row)

    # ---- transaction -----------------------------------------------------------------------------
    def _transaction_TransactionOpened(self, rows: RowSet, e: Any, position: int) -> None:
        terminal = rows.get(TERMINAL, str(e.terminal_id)) or {}
        params = terminal.get("parameters", {})
        opened_at = iso(e.timestamp) or ""
        timezone = params.get("timezone", DEFAULT_TIMEZONE)
        original_id = str(e.original_transaction_id) if e.original_transaction_id else None
        rows.put(TRANSACTION, str(e.originator_id), {
            "id": str(e.originator_id), "version": e.originator_version, "position": position,
            "terminal_id": str(e.terminal_id), "merchant_no": terminal.get("merchant_no"),
            "merchant_name": terminal.get("merchant_name"), "terminal_no": terminal.get("terminal_no"),
            "store_id": terminal.get("store_id"), "timezone": timezone,
            "till_session_id": str(e.till_session_id), "operator_no": e.operator_no,
            "kind": e.kind, "payment_method": e.payment_method, "batch_no": e.batch_no, "trace_no": e.trace_no,
            "original_transaction_id": original_id, "currency": e.terminal_snapshot.get("currency"),
            "amount_minor": None, "status": "open", "outcome": None, "card": None, "fallback": False,
            "chip_failures": 0, "cvm": None, "pin_tries_failed": 0, "signature": None, "signature_sha256": None,
            "stan": None, "auth_code": None, "rrn": None, "response_code": None, "decline_reason": None,
            "reversal": None, "cash_tendered_minor": None, "change_given_minor": None,
            "prints": {"merchant": 0, "customer": 0}, "print_failures": 0,
            "voided_by": None, "refunds": {}, "credits_applied_minor": 0,
            "fee_rate_ppm": None, "fee_minor": None,
            "opened_at": opened_at, "device_time_opened": iso(e.device_time), "authorized_at": None,
            "completed_at": None, "ended_at": None,
            "business_day": business_day(opened_at, timezone, self.cutoff)})
        if original_id is not None:
            self._link(rows, original_id, str(e.originator_id), e.kind, position)

    def _link(self, rows: RowSet, original_id: str, credit_id: str, kind: str, position: int) -> None:
        original = rows.get(TRANSACTION, original_id)
        if original is not None:
            original.setdefault("related", [])
            if credit_id not in [r["id"] for r in original["related"]]:
                original["related"].append({"id": credit_id, "kind": kind})
            original["position"] = position
            rows.put(TRANSACTION, original_id, original)

    def _txn(self, rows: RowSet, e: Any, position: int) -> Row | None:
        row = rows.get(TRANSACTION, str(e.originator_id))
        if row is not None:
            row["version"], row["position"] = e.originator_version, position
        return row

    def _transaction_AmountEntered(self, rows: RowSet, e: Any, position: int) -> None:
        if (row := self._txn(rows, e, position)) is not None:
            row.update(amount_minor=e.amount_minor, currency=e.currency)
            rows.put(TRANSACTION, row["id"], row)

    def _transaction_CardPresented(self, rows: RowSet, e: Any, position: int) -> None:
        if (row := self._txn(rows, e, position)) is not None:
            row["card"] = {name: getattr(e, name) for name in type(e).client_fields}
            row["fallback"] = e.entry_mode == "fallback_swipe"
            rows.put(TRANSACTION, row["id"], row)

    def _transaction_CardReadFailed(self, rows: RowSet, e: Any, position: int) -> None:
        if (row := self._txn(rows, e, position)) is not None:
            row["chip_failures"] += 1 if e.entry_mode in ("chip", "contactless") else 0
            rows.put(TRANSACTION, row["id"], row)

    def _set(self, rows: RowSet, e: Any, position: int, **values: Any) -> None:
        if (row := self._txn(rows, e, position)) is not None:
            row.update(values)
            rows.put(TRANSACTION, row["id"], row)

    def _transaction_PinVerified(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, cvm=f"pin_{e.method}")

    def _transaction_PinFailed(self, rows: RowSet, e: Any, position: int) -> None:
        if (row := self._txn(rows, e, position)) is not None:
            row["pin_tries_failed"] += 1
            rows.put(TRANSACTION, row["id"], row)

    def _transaction_PinBypassed(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, cvm="signature")

    def _transaction_CvmNotRequired(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, cvm="no_cvm")

    def _transaction_AuthorizationRequested(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, stan=e.stan, outcome="pending")

    def _transaction_Authorized(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, outcome="authorized", auth_code=e.auth_code, rrn=e.rrn,
                  response_code=e.response_code, authorized_at=iso(e.timestamp))

    def _transaction_Declined(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, outcome="declined", response_code=e.response_code, decline_reason=e.reason,
                  ended_at=iso(e.timestamp))

    def _transaction_AuthorizationNotSent(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, outcome=None, stan=None)  # never left: nothing in doubt

    def _transaction_OutcomeUnknown(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, outcome="unknown")

    def _transaction_Reversed(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, outcome="reversed", ended_at=iso(e.timestamp),
                  reversal={"reason_code": e.reason_code, "response_code": e.response_code})

    def _transaction_SignatureCaptured(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, signature="captured", signature_sha256=e.image_sha256)

    def _transaction_SignatureWaived(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, signature="waived")

    def _transaction_ReceiptPrinted(self, rows: RowSet, e: Any, position: int) -> None:
        if (row := self._txn(rows, e, position)) is not None:
            row["prints"][e.copy] = max(row["prints"].get(e.copy, 0), e.reprint_no + 1)
            rows.put(TRANSACTION, row["id"], row)

    def _transaction_PrintFailed(self, rows: RowSet, e: Any, position: int) -> None:
        if (row := self._txn(rows, e, position)) is not None:
            row["print_failures"] += 1
            rows.put(TRANSACTION, row["id"], row)

    def _transaction_CashTendered(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, cash_tendered_minor=e.amount_minor)

    def _transaction_ChangeGiven(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, change_given_minor=e.amount_minor)

    def _transaction_TransactionCompleted(self, rows: RowSet, e: Any, position: int) -> None:
        if (row := self._txn(rows, e, position)) is None:
            return
        completed_at = iso(e.timestamp) or ""
        row.update(status="completed", completed_at=completed_at, ended_at=completed_at,
                   business_day=business_day(completed_at, row["timezone"], self.cutoff))
        if row["payment_method"] == "card" and row["outcome"] == "authorized" and row["amount_minor"] is not None:
            terminal = rows.get(TERMINAL, row["terminal_id"]) or {}
            brand = (row["card"] or {}).get("brand", "other")
            rate = int(terminal.get("parameters", {}).get("fee_rates_ppm", {}).get(brand, 0))
            row.update(fee_rate_ppm=rate, fee_minor=fee_minor(row["amount_minor"], rate))
        else:
            row.update(fee_rate_ppm=0, fee_minor=0)
        rows.put(TRANSACTION, row["id"], row)

    def _transaction_TransactionCancelled(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, status="cancelled", ended_at=iso(e.timestamp))

    def _transaction_TransactionVoided(self, rows: RowSet, e: Any, position: int) -> None:
        self._set(rows, e, position, voided_by=str(e.void_transaction_id))

    def _transaction_Refunded(self, rows: RowSet, e: Any, position: int) -> None:
        if (row := self._txn(rows, e, position)) is not None:
            row["refunds"][str(e.refund_transaction_id)] = e.amount_minor
            row["credits_applied_minor"] += e.amount_minor
            rows.put(TRANSACTION, row["id"], row)

    # ---- Z reports ---------------------------------------------------------------------------------
    def _zreport_Issued(self, rows: RowSet, e: Any, position: int) -> None:
        terminal = rows.get(TERMINAL, str(e.z_terminal_id)) or {}
        rows.put(Z_REPORT, str(e.originator_id), {
            "id": str(e.originator_id), "terminal_id": str(e.z_terminal_id),
            "merchant_no": terminal.get("merchant_no"), "terminal_no": terminal.get("terminal_no"),
            "store_id": terminal.get("store_id"), "batch_no": e.batch_no, "z_number": e.z_number,
            "business_day": e.business_day, "settled_at": e.settled_at, "issued_at": iso(e.timestamp),
            "position": position})
