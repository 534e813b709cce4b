"""The whole store checked for tampering, read-only: hash chains, the notification log, snapshots, the view.

``audit_store`` reads the raw stored rows (``adapters.raw_store``, one consistent snapshot) in three
passes, each streaming a page at a time:

1. **The log**, in notification order: every missing notification id (a gap) is noted; events up to
   the view's position are folded again into fresh rows (``view_audit``), and each Z report's figures
   are compared with its batch's transactions as folded up to the batch's settlement.
2. **The streams**, each in version order: every event must decode into its event class with exactly
   that class's fields; versions run 1..n without a hole; each ``prev_hash`` equals the hash of the
   event before (``GENESIS`` for version 1); notification ids grow with the version; every event of
   a stream has the stream's kind; each snapshot equals the events replayed up to it; and, given a
   heads file (``stream_heads``), each saved head is still there, unchanged, in its place.
3. **The view**: every row, indexed column and running total equals the recomputation.

Where a change is seen decides how precisely it is named. A changed event breaks the chain at the
event after it: an edit of version v shows as version v+1's ``prev_hash`` not matching; an edit of
version v's own ``prev_hash`` breaks at v and v+1. The last event of a stream has no successor, so
a change to it, or its deletion, is seen only through the view (or a Z report's recomputed figures),
a snapshot, a gap in the log (SQLite never skips an id) or a saved heads file.

Gaps: SQLite assigns ``rowid`` = max + 1 inside the writing transaction, so a rolled-back insert
leaves no gap and every gap is a deleted event. PostgreSQL takes ids from a sequence, which a
rollback does not give back: eventsourcing's recorder locks the table, which orders inserts but
does not stop a failed insert (a version conflict, a lost connection) from using up ids. There a gap
is tampering only with evidence (a chain missing that version, the view, or a heads file saved
before); otherwise it is a warning, or tampering with ``strict_gaps``.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification

from adapters.raw_store import RawStore
from adapters.settings import Settings
from domain.chain import GENESIS, event_hash
from domain.ledger import Ledger
from projections.audit_report import AuditReport
from projections.rows import Folder
from projections.stream_heads import StreamHeads
from projections.view_audit import KIND_OF_TABLE, DiskRows, ZReportCheck, compare_rows, compare_totals

FOLDED_KINDS = frozenset(KIND_OF_TABLE.values())


def kind_of(topic: str) -> str:
    """``domain.transaction:Transaction.AmountEntered`` -> ``Transaction``."""
    return topic.rpartition(":")[2].partition(".")[0] or "?"


def _short(exc: BaseException) -> str:
    text = str(exc).split(": ")[-1] if isinstance(exc, Exception) else repr(exc)
    return f"{type(exc).__name__}: {text[:120]}"


@dataclasses.dataclass
class _Event:
    version: int
    notification_id: int
    hash: str | None  # None: it could not be decoded or hashed
    prev_hash: str | None


class StreamWalker:
    """Pass 2: one stream at a time, each in version order, with O(1) state per stream."""

    def __init__(self, mapper: Mapper[UUID], raw: RawStore, report: AuditReport, gaps: list[tuple[int, int]],
                 heads: StreamHeads | None, collect: StreamHeads | None) -> None:
        self.mapper, self.raw, self.report, self.heads, self.collect = mapper, raw, report, heads, collect
        self.gaps, self.gap_starts = gaps, [g[0] for g in gaps]
        self.explained: set[tuple[int, int]] = set()  # gaps a missing version accounts for
        self.saved = dict(heads.streams) if heads else {}
        self.snapshots = raw.snapshot_keys()
        self.stream: Any = None
        self.kind = "?"
        self.prev: _Event | None = None
        self.earlier: _Event | None = None  # the event before ``prev``
        self.pending: int | None = None  # a version whose prev_hash broke, not yet attributed
        self.aggregate: Any = None
        self.replaying = False

    def where(self, **more: Any) -> dict[str, Any]:
        return {"stream_id": str(self.stream), "kind": self.kind, **more}

    # ---- per event -----------------------------------------------------------------------------------
    def feed(self, n: Notification) -> None:
        if n.originator_id != self.stream:
            self.finish_stream()
            self.start(n)
        event = self.decode(n)
        current = _Event(n.originator_version, n.id, None, None)
        if event is not None:
            current.prev_hash = getattr(event, "prev_hash", None)
            try:
                current.hash = event_hash(event)
            except (TypeError, ValueError) as exc:
                self.report.tamper("decode", f"cannot be hashed ({_short(exc)}): edited", **self.where(
                    version=n.originator_version, notification_id=n.id))
        if kind_of(n.topic) != self.kind:
            self.report.tamper("chain", f"its topic {n.topic} is not an event of a {self.kind} stream: edited",
                               **self.where(version=n.originator_version, notification_id=n.id))
        self.check_chain(current)
        self.check_heads(current)
        self.replay(event, current)
        self.earlier = self.prev
        self.prev = current
        self.report.events += 1

    def start(self, n: Notification) -> None:
        self.stream, self.kind, self.prev, self.pending = n.originator_id, kind_of(n.topic), None, None
        self.earlier = None
        self.aggregate, self.replaying = None, n.originator_id in self.snapshots

    def decode(self, n: Notification) -> Any:
        try:
            event = self.mapper.to_domain_event(n)
        except Exception as exc:  # noqa: BLE001 — changed bytes raise whatever the decoder meets: report, go on
            self.report.tamper("decode", f"cannot be decoded ({_short(exc)}): its stored bytes were changed",
                               **self.where(version=n.originator_version, notification_id=n.id))
            return None
        if dataclasses.is_dataclass(event):
            expected = {f.name for f in dataclasses.fields(event)}
            found = set(vars(event))
            if expected != found:
                extra, missing = sorted(found - expected), sorted(expected - found)
                self.report.tamper("decode", f"its fields are not those of a {type(event).__qualname__} event "
                                   f"(missing {missing or 'none'}, unexpected {extra or 'none'}): edited",
                                   **self.where(version=n.originator_version, notification_id=n.id))
                return event
        if self.canonical(event, n) is False:
            self.report.tamper("decode", "its stored bytes are not those the service writes for what they say "
                               "(same meaning, other bytes, e.g. a hex digit's case): edited",
                               **self.where(version=n.originator_version, notification_id=n.id))
        return event

    def canonical(self, event: Any, n: Notification) -> bool | None:
        """Whether the stored bytes are exactly the encoding of the event they decode to. The encoding is
        deterministic (JSON in field order), so a byte changed without changing the meaning shows here.
        None when it cannot tell: a cipher (random nonce), or an old event upcast to a newer class version."""
        if self.mapper.cipher is not None:
            return None
        if getattr(type(event), "class_version", 1) > 1 and b'"class_version"' not in n.state:
            return None
        try:
            return self.mapper.to_stored_event(event).state == n.state
        except Exception:  # noqa: BLE001 — an event changed so far it no longer encodes
            return False

    def check_chain(self, e: _Event) -> None:
        prev = self.prev
        expected = 1 if prev is None else prev.version + 1
        if prev is not None and e.notification_id < prev.notification_id:
            self.report.tamper("order", f"version {e.version} was stored before version {prev.version} "
                               f"(notification {e.notification_id} < {prev.notification_id}): the events were "
                               "reordered", **self.where(version=e.version, notification_id=e.notification_id,
                                                         versions=(prev.version, e.version)))
        if e.version != expected:
            self.missing(expected, e)
            self.settle(broke=None)
            return
        before = GENESIS if prev is None else prev.hash
        broke = None if before is None or e.hash is None else e.prev_hash != before
        if not self.settle(broke) and broke:
            self.pending = e.version

    def settle(self, broke: bool | None) -> bool:
        """Attribute a pending break at version p, now that version p+1's check is known.

        One changed event v breaks the chain at v+1 only; if its own prev_hash was changed, at v and
        v+1. So a break at p followed by one at p+1 means p was changed, and a break at p alone means
        p-1 was (or, when p+1 cannot tell, p's prev_hash)."""
        p, self.pending = self.pending, None
        if p is None:
            return False
        if broke:
            before = "the genesis hash" if p == 1 else f"version {p - 1}"
            self.report.tamper("chain", f"version {p} was changed: its prev_hash does not match {before} "
                               f"and version {p + 1}'s prev_hash does not match it", **self.where(
                                   version=p, versions=(p,), notification_id=self.prev.notification_id
                                   if self.prev else None))
            return True  # the break at p+1 is this same change
        if p == 1:
            self.report.tamper("chain", "version 1 was changed: its prev_hash is not the genesis hash",
                               **self.where(version=1, versions=(1,)))
            return False
        certain = broke is False
        changed = self.earlier  # ``prev`` is p until the next event is fed
        self.report.tamper("chain", f"version {p - 1} was changed: its content no longer matches the hash "
                           f"version {p} recorded" + ("" if certain else f" (or version {p}'s prev_hash was)"),
                           **self.where(version=p - 1, versions=(p - 1,) if certain else (p - 1, p),
                                        notification_id=changed.notification_id if changed and
                                        changed.version == p - 1 else None))
        return False

    def missing(self, expected: int, e: _Event) -> None:
        lost = list(range(expected, e.version))
        low = self.prev.notification_id if self.prev else 0
        ids = self.gap_ids(low, e.notification_id)
        named = f" (it was notification {ids[0]})" if len(lost) == 1 and len(ids) == 1 else \
            (f" (among notifications {', '.join(map(str, ids[:10]))})" if ids else "")
        label = f"version {lost[0]} is" if len(lost) == 1 else f"versions {lost[0]}..{lost[-1]} are"
        self.report.tamper("chain", f"{label} missing: deleted{named}", **self.where(
            version=lost[0], versions=tuple(lost[:50]), notification_id=ids[0] if len(ids) == 1 else None))

    def gap_ids(self, low: int, high: int) -> list[int]:
        """The missing notification ids strictly between two of a stream's events (marked explained)."""
        ids: list[int] = []
        i = max(0, bisect.bisect_right(self.gap_starts, low) - 1)
        while i < len(self.gaps) and self.gaps[i][0] < high:
            first, last = self.gaps[i]
            inside = range(max(first, low + 1), min(last, high - 1) + 1)
            if inside:
                self.explained.add(self.gaps[i])
                ids.extend(inside[:20])
            i += 1
        return ids

    def check_heads(self, e: _Event) -> None:
        saved = self.saved.get(str(self.stream))
        if saved is None or saved[1] != e.version:
            return
        self.report.heads_checked += 1
        _, version, digest, notification = saved
        if e.hash != digest:
            self.report.tamper("heads", f"version {version} was changed after the heads were saved (its hash was "
                               f"{str(digest)[:12]}…, now {str(e.hash)[:12]}…)",
                               **self.where(version=version, versions=(version,), notification_id=e.notification_id))
        if e.notification_id != notification:
            self.report.tamper("heads", f"version {version} moved in the log: it was notification {notification}, "
                               f"now {e.notification_id}", **self.where(version=version, notification_id=notification))

    # ---- snapshots ---------------------------------------------------------------------------------
    def replay(self, event: Any, e: _Event) -> None:
        if not self.replaying:
            return
        if event is None:
            self.replaying = False
            return
        try:
            self.aggregate = event.mutate(self.aggregate)
        except Exception as exc:  # noqa: BLE001 — a changed event may not apply at all
            self.report.tamper("snapshot", f"the events cannot be replayed at version {e.version} "
                               f"({_short(exc)})", **self.where(version=e.version))
            self.replaying = False
            return
        if e.version in self.snapshots.get(self.stream, ()):
            self.compare_snapshot(e.version)

    def compare_snapshot(self, version: int) -> None:
        self.report.snapshots += 1
        where = self.where(version=version, versions=(version,))
        try:
            stored = self.mapper.to_domain_event(self.raw.snapshot(self.stream, version))
            stored_state = stored.state  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001
            self.report.tamper("snapshot", f"the snapshot at version {version} cannot be decoded ({_short(exc)})",
                               **where)
            return
        taken = type(self.aggregate).Snapshot.take(self.aggregate)
        transcoder = self.mapper.transcoder
        expected = transcoder.decode(transcoder.encode(taken.state))
        found = transcoder.decode(transcoder.encode(stored_state))
        if expected != found or stored.topic != taken.topic:  # type: ignore[attr-defined]
            fields = sorted(k for k in set(expected) | set(found) if expected.get(k) != found.get(k))
            self.report.tamper("snapshot", f"the snapshot at version {version} differs from the events replayed "
                               f"to it (fields {', '.join(fields) or 'topic'}): the snapshot or an event was changed",
                               **where)

    # ---- per stream ----------------------------------------------------------------------------------
    def finish_stream(self) -> None:
        prev = self.prev
        if self.stream is None or prev is None:
            return
        self.settle(broke=None)
        self.report.streams += 1
        key = str(self.stream)
        saved = self.saved.pop(key, None)
        if saved is not None and prev.version < saved[1]:
            lost = tuple(range(prev.version + 1, saved[1] + 1))
            self.report.tamper("heads", f"the stream ends at version {prev.version}, but it ended at version "
                               f"{saved[1]} (notification {saved[3]}) when the heads were saved: "
                               f"{'version' if len(lost) == 1 else 'versions'} {lost[0]}"
                               f"{'' if len(lost) == 1 else f'..{lost[-1]}'} deleted",
                               **self.where(version=lost[0], versions=lost[:50],
                                            notification_id=saved[3] if len(lost) == 1 else None))
        for version in self.snapshots.pop(self.stream, []):
            if version > prev.version:
                self.report.tamper("snapshot", f"a snapshot at version {version} exists but the stream ends at "
                                   f"version {prev.version}: events were deleted",
                                   **self.where(version=prev.version + 1, versions=tuple(
                                       range(prev.version + 1, version + 1))[:50]))
        if self.collect is not None:
            self.collect.streams[key] = (self.kind, prev.version, prev.hash, prev.notification_id)
        self.stream = None

    def finish(self) -> None:
        self.finish_stream()
        for stream, (kind, version, _, notification) in sorted(self.saved.items()):
            self.report.tamper("heads", f"the whole stream is gone: it had {version} events when the heads were "
                               "saved", stream_id=stream, kind=kind, version=1, versions=tuple(range(1, version + 1))[:50],
                               notification_id=notification if version == 1 else None)
        for stream, versions in self.snapshots.items():
            self.report.tamper("snapshot", f"snapshots exist (versions {versions[:5]}) for a stream without events: "
                               "its events were deleted", stream_id=str(stream), version=1)


@functools.lru_cache(maxsize=256)
def _folds(folder: Folder, topic: str) -> bool:
    """Whether the view's Folder does anything with this topic's events (else: not worth decoding)."""
    aggregate, _, name = topic.rpartition(":")[2].partition(".")
    return aggregate in FOLDED_KINDS and hasattr(folder, f"_{aggregate.lower()}_{name}")


def _log_pass(raw: RawStore, mapper: Mapper[UUID], report: AuditReport, head: int, position: int,
              rows: DiskRows, folder: Folder) -> list[tuple[int, int]]:
    """Pass 1: the notification log's gaps; the events up to the view's position folded into ``rows``."""
    gaps: list[tuple[int, int]] = []
    last = 0
    z_reports = ZReportCheck(rows)
    for n in raw.events_by_position(head):
        if n.id > last + 1:
            gaps.append((last + 1, n.id - 1))
        last = n.id
        if n.id > position or not _folds(folder, n.topic):
            continue
        try:
            event = mapper.to_domain_event(n)
        except Exception:  # noqa: BLE001 — reported by the stream pass, with its place in the stream
            continue
        try:
            folder.apply(rows, event, n.id)
            if n.topic.endswith(":TillSession.BatchSettled"):
                z_reports.settled(event)
            elif n.topic.endswith(":ZReport.Issued"):
                z_reports.issued(event, n.id, report)
        except Exception as exc:  # noqa: BLE001 — a changed event may not fold: name it, fold the rest
            report.tamper("decode", f"cannot be applied to the view ({_short(exc)}): edited",
                          stream_id=str(n.originator_id), kind=kind_of(n.topic), version=n.originator_version,
                          notification_id=n.id)
    return gaps


def _judge_gaps(report: AuditReport, gaps: list[tuple[int, int]], explained: set[tuple[int, int]],
                postgres: bool, heads: StreamHeads | None, strict_gaps: bool) -> None:
    witnessed = {f.notification_id for f in report.findings if f.check == "view" and f.notification_id}
    for first, last in gaps:
        if (first, last) in explained or any(first <= n <= last for n in witnessed):
            continue
        ids = f"notification id {first} is" if first == last else f"notification ids {first}..{last} are"
        where = {"notification_id": first}
        if heads is not None and not heads.known_gap(first, last):
            report.tamper("log", f"{ids} missing, and {'it was' if first == last else 'they were'} there when the "
                          "heads were saved: deleted", **where)
        elif not postgres:
            report.tamper("log", f"{ids} missing: an event was deleted (SQLite never skips an id; the stream "
                          "it belonged to ends without it)", **where)
        elif strict_gaps:
            report.tamper("log", f"{ids} missing (counted as tampering: --strict-gaps)", **where)
        else:
            report.warn("log", f"{ids} missing: a rolled-back insert (a version conflict, a lost connection) "
                        "leaves such a gap on PostgreSQL, and so does deleting the last event of a stream; "
                        "a heads file saved earlier (--save-heads) tells them apart", **where)


def audit_store(settings: Settings, *, heads: StreamHeads | None = None, strict_gaps: bool = False,
                collect_heads: bool = False) -> tuple[AuditReport, StreamHeads | None]:
    """Check the store ``settings`` name, changing nothing. With ``collect_heads``, also return the
    stream heads to save (``stream_heads.save_heads``) when the store is intact."""
    started = time.monotonic()
    raw = RawStore(settings)
    ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})  # only its mapper: the service's decoding
    report = AuditReport(store=raw.description)
    try:
        position = raw.view_position() if raw.has_view else None
        head = raw.head()
        report.head, report.view_position = head, position
        with tempfile.TemporaryDirectory(prefix="till-audit-") as scratch:
            db = sqlite3.connect(Path(scratch) / "recomputed.sqlite", isolation_level=None)
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            try:
                rows = DiskRows(db)
                gaps = _log_pass(raw, ledger.mapper, report, head, position or 0, rows,
                                 Folder(settings.business_day_cutoff))
                collect = StreamHeads(head=head, gaps=gaps) if collect_heads else None
                walker = StreamWalker(ledger.mapper, raw, report, gaps, heads, collect)
                for notification in raw.events_by_stream():
                    walker.feed(notification)
                walker.finish()
                if position is None:
                    report.warn("view", "no ledger view to compare (never built here)")
                else:
                    _check_position(report, position, head)
                    compare_rows(raw, rows, report)
                    compare_totals(raw, rows, report)
                _judge_gaps(report, gaps, walker.explained, settings.uses_postgres, heads, strict_gaps)
            finally:
                db.close()
    finally:
        raw.close()
        ledger.close()
    report.seconds = time.monotonic() - started
    return report, (collect if collect_heads and report.intact else None)


def _check_position(report: AuditReport, position: int, head: int) -> None:
    if position > head:
        report.tamper("log", f"the view applied the log up to notification {position}, but the log ends at {head}: "
                      f"the last {position - head} events were deleted", notification_id=head + 1)
    elif position < head:
        report.warn("view", f"the view is {head - position} events behind the log (it runs in `till serve` or "
                    f"`till project run`); rows are compared as of notification {position}")
