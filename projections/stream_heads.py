"""Saved stream heads: the anchor that makes the last event of every stream tamper-evident too.

A hash chain protects each event by the ``prev_hash`` of the event after it, so the last event of
a stream has no witness inside the store: its bytes can be changed, or it can be deleted, leaving a
valid shorter chain. A heads file, written by ``till verify --store --save-heads FILE`` when the
store is intact and kept away from the database (another machine, write-once storage), records each
stream's last version, its hash and notification id, the log's head and the gaps it had then. A later
``till verify --store --heads FILE`` checks every recorded head against the store: any change to an
event up to that point, a deletion at the end of a stream, or a new gap in the log is then named.

The file is signed with the service's Ed25519 key (``TILL_SIGNING_KEY_FILE``) when this process can
read it, and the signature is checked on load, so a file changed on its way is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.signing import SigningKey, verify

FORMAT = "till-ledger/stream-heads/1"


class HeadsUnusable(Exception):
    """The heads file cannot be read, or was changed after it was saved."""


@dataclass
class StreamHeads:
    head: int = 0  # the log's last notification id when saved
    gaps: list[tuple[int, int]] = field(default_factory=list)  # gaps the log had then (inclusive ranges)
    streams: dict[str, tuple[str, int, str | None, int]] = field(default_factory=dict)  # id -> kind, version, hash, id
    note: str = ""  # how the file was trusted (signed by …, or not signed)

    def known_gap(self, first: int, last: int) -> bool:
        """Whether the whole range was already missing when the heads were saved (or lies after them)."""
        if first > self.head:
            return True
        last = min(last, self.head)
        return any(a <= first and last <= b for a, b in self.gaps)


def _body(heads: StreamHeads, store: str) -> dict[str, Any]:
    return {"format": FORMAT, "store": store, "saved_at": datetime.now(UTC).isoformat(), "head": heads.head,
            "gaps": [list(g) for g in heads.gaps],
            "streams": [[stream, *entry] for stream, entry in sorted(heads.streams.items())]}


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def save_heads(path: Path, heads: StreamHeads, store: str, key: SigningKey | None) -> None:
    body = _body(heads, store)
    if key is not None:
        body["signature"] = {"algorithm": "Ed25519", "key_id": key.key_id, "value": key.sign(_canonical(body))}
    path.write_text(json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")


def load_heads(path: Path, key: SigningKey | None) -> StreamHeads:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HeadsUnusable(f"cannot read the heads file {path}: {exc}") from exc
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise HeadsUnusable(f"{path} is not a stream-heads file (format {FORMAT})")
    signature = body.pop("signature", None)
    if signature is not None and key is not None:
        if signature.get("key_id") != key.key_id or not verify(key.public, _canonical(body), signature.get("value", "")):
            raise HeadsUnusable(f"the heads file {path} was changed after it was saved (its signature does not "
                                "match the service's key)")
        note = f"signed by the service's key {key.key_id}, saved {body.get('saved_at')}"
    elif signature is not None:
        note = f"signed by key {signature.get('key_id')} (not checked: this process cannot read the signing key)"
    else:
        note = "not signed: trusted as it is"
    try:
        return StreamHeads(int(body["head"]), [(int(a), int(b)) for a, b in body["gaps"]],
                           {str(s): (str(k), int(v), h, int(n)) for s, k, v, h, n in body["streams"]}, note)
    except (KeyError, TypeError, ValueError) as exc:
        raise HeadsUnusable(f"the heads file {path} is malformed: {exc}") from exc
