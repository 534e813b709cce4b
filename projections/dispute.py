"""Dispute evidence for one card-present transaction: what a chargeback response needs, in one bundle.

Pure: the transaction's stored events (canonical records, each with its hash), the chain verdict,
its view row and those of related voids/refunds, and its receipts in; a JSON-able bundle out.
Visa 10.1 (counterfeit) asks for proof of a chip read and the chip data sent; 10.2 (lost/stolen)
for proof of PIN; any dispute for receipts, operator, timestamps and related credits.
"""

from __future__ import annotations

from typing import Any

BUNDLE_SCHEMA = "till-ledger/dispute-evidence/1"
_ENVELOPE = ("topic", "originator_id", "originator_version", "timestamp", "terminal_id", "operator_no",
             "device_time", "prev_hash", "hash")


def timeline(records: list[dict[str, Any]], as_of_version: int | None = None) -> list[dict[str, Any]]:
    """Every event in order with both clocks: the terminal's (device_time) and the server's (timestamp)."""
    entries = []
    for record in records:
        if as_of_version is not None and record["originator_version"] > as_of_version:
            break
        entries.append({
            "version": record["originator_version"],
            "type": record["topic"].rpartition(".")[2],
            "server_time": record.get("timestamp"),
            "terminal_time": record.get("device_time"),
            "operator_no": record.get("operator_no"),
            "terminal_id": record.get("terminal_id"),
            "fields": {k: v for k, v in record.items() if k not in _ENVELOPE},
            "prev_hash": record.get("prev_hash"),
            "hash": record.get("hash"),
        })
    return entries


def evidence_bundle(row: dict[str, Any], records: list[dict[str, Any]], chain: dict[str, Any],
                    related: list[dict[str, Any]], receipts: dict[str, Any] | None,
                    state_as_of: dict[str, Any] | None = None, as_of_version: int | None = None) -> dict[str, Any]:
    card = row.get("card") or {}
    return {
        "schema": BUNDLE_SCHEMA,
        "transaction_id": row["id"],
        "as_of_version": as_of_version,
        "summary": {
            "kind": row["kind"], "payment_method": row["payment_method"], "status": row["status"],
            "outcome": row["outcome"], "amount_minor": row["amount_minor"], "currency": row["currency"],
            "merchant_no": row["merchant_no"], "merchant_name": row["merchant_name"],
            "terminal_no": row["terminal_no"], "store_id": row["store_id"], "operator_no": row["operator_no"],
            "batch_no": row["batch_no"], "trace_no": row["trace_no"], "stan": row["stan"],
            "auth_code": row["auth_code"], "rrn": row["rrn"], "response_code": row["response_code"],
            "opened_at": row["opened_at"], "authorized_at": row["authorized_at"], "completed_at": row["completed_at"],
        },
        "card": {
            "masked_pan": card.get("masked_pan"), "brand": card.get("brand"),
            "entry_mode": card.get("entry_mode"), "fallback": row.get("fallback", False),
            "chip_read": card.get("entry_mode") in ("chip", "contactless"),
        },
        "chip_data": {k: card.get(k) for k in ("aid", "app_label", "tvr", "tsi", "atc", "cryptogram", "cvm_results")},
        "cvm": {
            "method": row["cvm"], "pin_verified": (row["cvm"] or "").startswith("pin_"),
            "pin_tries_failed": row.get("pin_tries_failed", 0),
            "signature": row["signature"], "signature_image_sha256": row.get("signature_sha256"),
        },
        "receipts": receipts,
        "related": [{"id": r["id"], "kind": r["kind"], "status": r["status"], "outcome": r["outcome"],
                     "amount_minor": r["amount_minor"], "currency": r["currency"], "rrn": r["rrn"],
                     "completed_at": r["completed_at"]} for r in related],
        "timeline": timeline(records, as_of_version),
        "state_as_of": state_as_of,
        "hash_chain": chain,
    }


def evidence_text(bundle: dict[str, Any]) -> list[str]:
    """The bundle as printable lines (the PDF export): summary, card, CVM, timeline, chain, receipts."""
    lines = [f"Dispute evidence / 争议证据  {bundle['transaction_id']}", ""]
    if bundle["as_of_version"] is not None:
        lines.append(f"As of event version {bundle['as_of_version']}")
    for title, section in (("Summary", bundle["summary"]), ("Card", bundle["card"]),
                           ("Chip data", bundle["chip_data"]), ("CVM", bundle["cvm"]),
                           ("Hash chain", bundle["hash_chain"])):
        lines += [f"== {title}", *(f"  {key}: {value}" for key, value in section.items()), ""]
    lines.append("== Timeline (server time | terminal time | operator | event)")
    for entry in bundle["timeline"]:
        lines.append(f"  v{entry['version']} {entry['server_time']} | {entry['terminal_time']} | "
                     f"{entry['operator_no']} | {entry['type']}")
        lines += [f"      {key}: {value}" for key, value in entry["fields"].items()]
        lines.append(f"      hash {entry['hash']}")
    lines.append("")
    if bundle["related"]:
        lines += ["== Related voids and refunds",
                  *(f"  {r['kind']} {r['id']} {r['status']} {r['amount_minor']} {r['currency']} rrn {r['rrn']}"
                    for r in bundle["related"]), ""]
    for copy, receipt in (bundle["receipts"] or {}).items():
        lines += [f"== Receipt, {copy} copy (printed {receipt['printed']}x, sha256 {receipt['receipt_sha256']})",
                  *receipt["text"].splitlines(), ""]
    return lines
