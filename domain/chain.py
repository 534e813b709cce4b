"""Tamper evidence: each event carries ``prev_hash``, the SHA-256 of its predecessor's canonical form.

The canonical form is a JSON document with sorted keys and no insignificant white space, built
only from what is stored (topic, stream id, version, server timestamp and the event's fields), so
anyone holding the exported events can recompute the chain offline.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

GENESIS = "0" * 64

# Attributes every eventsourcing event has; they are part of the canonical form under fixed names.
_ENVELOPE = ("originator_id", "originator_version", "timestamp")


def _plain(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def canonical_record(topic: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-native record of one stored event (what bundles export and verifiers hash)."""
    record = {"topic": topic}
    record.update({k: _plain(v) for k, v in attributes.items()})
    return record


def _json_default(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} has no canonical JSON form")


def record_hash(record: Mapping[str, Any]) -> str:
    # UUIDs and datetimes become the same strings canonical_record() gives them, so hashing an event
    # object and hashing its exported JSON record agree.
    body = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _topic(event: Any) -> str:
    cls = type(event)
    return f"{cls.__module__}:{cls.__qualname__}"


def _hashed(event: Any) -> dict[str, Any]:
    """The event's attributes, less a field a later ``class_version`` added (named in the class's
    ``hashed_only_when_set``) while it is null: an event stored before the field existed, upcast with
    it set to None, then hashes as it did when its successor was chained to it."""
    optional = getattr(type(event), "hashed_only_when_set", ())
    return {k: v for k, v in vars(event).items() if v is not None or k not in optional}


def event_record(event: Any) -> dict[str, Any]:
    """Canonical record of an eventsourcing domain event object."""
    return canonical_record(_topic(event), _hashed(event))


def event_hash(event: Any) -> str:
    return record_hash({"topic": _topic(event), **_hashed(event)})


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """Outcome of walking a stream's hash chain."""

    valid: bool
    broken_at_version: int | None = None
    reason: str = ""


def verify_records(records: Iterable[Mapping[str, Any]]) -> ChainCheck:
    """Check versions run 1, 2, 3… and each prev_hash matches the hash of the record before."""
    expected_prev = GENESIS
    expected_version = 1
    for record in records:
        version = record.get("originator_version")
        if version != expected_version:
            return ChainCheck(False, expected_version, f"expected version {expected_version}, found {version}")
        if record.get("prev_hash") != expected_prev:
            return ChainCheck(False, version, "prev_hash does not match the previous event")
        expected_prev = record_hash(record)
        expected_version += 1
    return ChainCheck(True)
