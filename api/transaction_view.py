"""The JSON shape of a transaction's current state (what a terminal or back office reads)."""

from __future__ import annotations

from typing import Any

from domain.transaction import Transaction


def transaction_view(txn: Transaction) -> dict[str, Any]:
    return {
        "transaction_id": str(txn.id),
        "version": txn.version,
        "kind": txn.kind,
        "payment_method": txn.payment_method,
        "status": txn.status,
        "outcome": txn.outcome,
        "terminal_id": str(txn.txn_terminal_id),
        "till_session_id": str(txn.till_session_id),
        "operator_no": txn.operator,
        "batch_no": txn.batch_no,
        "trace_no": txn.trace_no,
        "original_transaction_id": str(txn.original_transaction_id) if txn.original_transaction_id else None,
        "amount_minor": txn.amount_minor,
        "currency": txn.limits["currency"],
        "amount_confirmed": txn.amount_confirmed,
        "items": txn.items,
        "card": {k: v for k, v in (txn.card or {}).items() if k != "pan_token"} or None,
        "cvm": txn.cvm,
        "signature": txn.signature,
        "signature_required": txn.signature_required,
        "authorization": txn.authorization,
        "receipts_printed": txn.prints,
        "cash_tendered_minor": txn.cash_tendered_minor,
        "change_given_minor": txn.change_given_minor,
        "voided_by": str(txn.voided_by) if txn.voided_by else None,
        "refundable_minor": txn.refundable_minor if txn.is_settled_sale else 0,
        "credits": txn.credits,
        "created_at": txn.created_on.isoformat(),
        "modified_at": txn.modified_on.isoformat(),
    }
