"""An evidence bundle's statements recomputed from its own events, to name what an editor changed.

The bundle's signature covers everything, so any edit of the evidence fails it; this says where.
The transaction's events are folded with the view's own ``rows.Folder`` into a fresh row, and the
evidence's summary, card, chip data and CVM are compared with what that row gives. Fields that come
from the terminal's stream (merchant and terminal numbers, store) are not in the bundle's events and
are left to the signature. The timeline must list exactly the bundle's events, and the chain's
head hash must be the last event's.

Event classes are looked up by name on ``Transaction`` only: a topic in the file never makes the
verifier import anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.aggregate import LedgerAggregate
from domain.transaction import Transaction
from projections.rows import TRANSACTION, Folder, MemoryRows

_TOPIC_PREFIX = f"{Transaction.__module__}:{Transaction.__qualname__}."
_TIMES = ("timestamp", "device_time")
_SECTIONS: dict[str, tuple[str, ...]] = {
    "summary": ("kind", "payment_method", "status", "outcome", "amount_minor", "currency", "operator_no", "batch_no",
                "trace_no", "stan", "auth_code", "rrn", "response_code", "opened_at", "authorized_at",
                "completed_at"),
    "card": ("masked_pan", "brand", "entry_mode", "fallback"),
    "chip_data": ("aid", "app_label", "tvr", "tsi", "atc", "cryptogram", "cvm_results"),
    "cvm": ("method", "pin_tries_failed", "signature", "signature_image_sha256"),
}


def _event(record: dict[str, Any]) -> Any | None:
    topic = str(record.get("topic", ""))
    if not topic.startswith(_TOPIC_PREFIX):
        return None
    cls = getattr(Transaction, topic[len(_TOPIC_PREFIX):], None)
    if not (isinstance(cls, type) and issubclass(cls, LedgerAggregate.Event)):
        return None
    event = object.__new__(cls)
    state = {k: v for k, v in record.items() if k not in ("topic", "hash")}
    for name in _TIMES:
        if isinstance(state.get(name), str):
            state[name] = datetime.fromisoformat(state[name])
    object.__setattr__(event, "__dict__", state)
    return event


def _expected(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    card = row.get("card") or {}
    return {
        "summary": {name: row.get(name) for name in _SECTIONS["summary"]},
        "card": {"masked_pan": card.get("masked_pan"), "brand": card.get("brand"),
                 "entry_mode": card.get("entry_mode"), "fallback": row.get("fallback", False)},
        "chip_data": {name: card.get(name) for name in _SECTIONS["chip_data"]},
        "cvm": {"method": row.get("cvm"), "pin_tries_failed": row.get("pin_tries_failed", 0),
                "signature": row.get("signature"), "signature_image_sha256": row.get("signature_sha256")},
    }


def evidence_disagreements(evidence: dict[str, Any], records: list[dict[str, Any]]) -> list[str]:
    """Each statement of the evidence that its events do not bear out, in words."""
    problems: list[str] = []
    by_version = {r.get("originator_version"): r for r in records}
    for entry in evidence.get("timeline") or []:
        if isinstance(entry, dict) and entry.get("version") not in by_version:
            problems.append(f"event version {entry.get('version')} is missing (deleted): the evidence's timeline "
                            "lists it")
    chain = evidence.get("hash_chain") if isinstance(evidence.get("hash_chain"), dict) else {}
    if records and evidence.get("as_of_version") is None and chain.get("head_hash") not in (None, records[-1].get("hash")):
        problems.append(f"the last event is not the one the evidence's hash chain ends with (version "
                        f"{records[-1].get('originator_version')} is there instead): an event was deleted or changed")
    rows = MemoryRows()
    folder = Folder()
    try:
        for record in sorted(records, key=lambda r: int(r.get("originator_version") or 0)):
            event = _event(record)
            if event is not None:
                folder.apply(rows, event, int(record.get("originator_version") or 0))
    except (AttributeError, KeyError, TypeError, ValueError):
        return problems  # events too broken to fold: check_events has named them
    row = rows.get(TRANSACTION, str(evidence.get("transaction_id")))
    if row is None:
        return problems
    for section, expected in _expected(row).items():
        stated = evidence.get(section) if isinstance(evidence.get(section), dict) else {}
        for name, value in expected.items():
            if stated.get(name) != value:
                problems.append(f"evidence {section}.{name} says {stated.get(name)!r}, its events say {value!r}")
    return problems
