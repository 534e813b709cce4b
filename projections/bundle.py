"""Self-contained, signed dispute evidence: the bundle a dispute handler sends, and its offline check.

A bundle holds the evidence (projections.dispute), every stored event of the transaction as its
canonical record with its hash, and an Ed25519 signature by the service's key over the canonical
JSON of both. ``verify_bundle`` needs nothing but the file (and, to trust the signer, the service's
public key): it recomputes each event's hash and the chain, and names any edited, deleted or
reordered event, then checks the signature over everything else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from domain.chain import GENESIS, record_hash
from projections.evidence_recheck import evidence_disagreements

FORMAT = "till-ledger/evidence-bundle/1"


def canonical_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def bundle_body(evidence: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"format": FORMAT, "evidence": evidence, "events": records}


@dataclass
class BundleVerdict:
    valid: bool = True
    problems: list[str] = field(default_factory=list)
    key_id: str | None = None
    signer_trusted: bool = False

    def fail(self, problem: str) -> None:
        self.valid = False
        self.problems.append(problem)


def _without_hash(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "hash"}


def check_events(records: list[dict[str, Any]], verdict: BundleVerdict) -> None:
    versions = [r.get("originator_version") for r in records]
    if not records or not all(isinstance(v, int) for v in versions):
        verdict.fail("the bundle holds no events, or an event without a version")
        return
    if len({r.get("originator_id") for r in records}) != 1:
        verdict.fail("the events belong to more than one transaction")
    present = sorted(versions)
    for missing in sorted(set(range(1, present[-1] + 1)) - set(present)):
        verdict.fail(f"event version {missing} is missing (deleted)")
    for earlier, later in zip(versions, versions[1:]):
        if later < earlier:
            verdict.fail(f"events are out of order: version {later} comes after version {earlier}")
    by_version = {r["originator_version"]: r for r in records}
    previous = GENESIS
    for version in range(1, present[-1] + 1):
        record = by_version.get(version)
        if record is None:
            previous = ""  # the successor of a deleted event cannot be chained
            continue
        if record_hash(_without_hash(record)) != record.get("hash"):
            verdict.fail(f"event version {version} ({str(record.get('topic', '?')).rpartition('.')[2]}) was edited: "
                         "its content does not match its hash")
        if previous and record.get("prev_hash") != previous:
            verdict.fail(f"event version {version} does not follow version {version - 1} (prev_hash differs)")
        previous = record.get("hash", "")


def check_evidence(evidence: dict[str, Any], records: list[dict[str, Any]], verdict: BundleVerdict) -> None:
    if records and evidence.get("transaction_id") != records[0].get("originator_id"):
        verdict.fail("the evidence names another transaction than its events")
    by_version = {r.get("originator_version"): r for r in records}
    for entry in evidence.get("timeline", []):
        record = by_version.get(entry.get("version"))
        if record is not None and entry.get("hash") != record.get("hash"):
            verdict.fail(f"timeline entry {entry.get('version')} differs from event version {entry.get('version')}")


def verify_bundle(bundle: dict[str, Any], check_signature: Callable[[bytes, dict[str, Any]], tuple[bool, bool]]
                  ) -> BundleVerdict:
    """``check_signature(message, signature)`` -> (signature valid, signer trusted)."""
    verdict = BundleVerdict()
    if bundle.get("format") != FORMAT:
        verdict.fail(f"not a Till Ledger evidence bundle (format {bundle.get('format')!r})")
        return verdict
    records = bundle.get("events") or []
    evidence = bundle.get("evidence") or {}
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records) or not isinstance(evidence, dict):
        verdict.fail("the bundle's events or evidence are not in the bundle format (edited)")
        return verdict
    check_events(records, verdict)
    check_evidence(evidence, records, verdict)
    signature = bundle.get("signature") or {}
    verdict.key_id = signature.get("key_id")
    valid, trusted = check_signature(canonical_bytes(bundle_body(evidence, records)), signature)
    verdict.signer_trusted = trusted
    if not valid:
        verdict.fail("the signature does not match: the bundle was changed after the service signed it")
        # Where: what the evidence states that its own events do not bear out (only now: a service
        # that signed a summary its view had not yet caught up with is not an editor).
        for problem in evidence_disagreements(evidence, records):
            if not any(problem.partition(":")[0] in known for known in verdict.problems):
                verdict.fail(problem)
    return verdict
