"""What a store audit found: each finding names where (stream and version, or view table and row).

``tampering`` findings make the audit fail (exit 1). ``warning`` findings are facts that need a
human but are not proof of tampering by themselves (a notification-id gap on PostgreSQL, a view that
is behind the log). The report keeps the first ``MAX_KEPT`` findings in full and counts the rest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

TAMPERING, WARNING = "tampering", "warning"
MAX_KEPT = 1_000
EXIT_INTACT, EXIT_TAMPERED, EXIT_UNCHECKED = 0, 1, 2


@dataclass(frozen=True)
class Finding:
    severity: str
    check: str  # chain, order, decode, log, snapshot, heads, view, totals
    message: str
    stream_id: str | None = None
    kind: str | None = None  # Transaction, TillSession, Terminal, ZReport, ApiToken, …
    version: int | None = None
    notification_id: int | None = None
    table: str | None = None  # view table (txn, till, terminal, zreport, day_line, …)
    row_id: str | None = None
    # Every version the finding may mean, when the evidence cannot tell which of two was changed.
    versions: tuple[int, ...] = ()

    def where(self) -> str:
        if self.table is not None:
            return f"view {self.table} {self.row_id}"
        parts = [f"{self.kind or 'stream'} {self.stream_id}" if self.stream_id else "log"]
        if self.version is not None:
            parts.append(f"version {self.version}")
        if self.notification_id is not None:
            parts.append(f"notification {self.notification_id}")
        return " ".join(parts)


@dataclass
class AuditReport:
    store: str = ""
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {TAMPERING: 0, WARNING: 0})
    events: int = 0
    streams: int = 0
    head: int = 0
    view_position: int | None = None
    view_rows: int = 0
    view_totals: int = 0
    snapshots: int = 0
    heads_checked: int = 0
    seconds: float = 0.0

    def add(self, finding: Finding) -> None:
        self.counts[finding.severity] += 1
        if len(self.findings) < MAX_KEPT:
            self.findings.append(finding)

    def tamper(self, check: str, message: str, **where: Any) -> None:
        self.add(Finding(TAMPERING, check, message, **where))

    def warn(self, check: str, message: str, **where: Any) -> None:
        self.add(Finding(WARNING, check, message, **where))

    @property
    def intact(self) -> bool:
        return self.counts[TAMPERING] == 0

    @property
    def exit_code(self) -> int:
        return EXIT_INTACT if self.intact else EXIT_TAMPERED

    def summary(self) -> str:
        view = "no view" if self.view_position is None else \
            f"{self.view_rows} view rows and {self.view_totals} running totals as of notification {self.view_position}"
        verdict = "INTACT" if self.intact else "TAMPERING FOUND"
        return (f"{verdict}: {self.events} events in {self.streams} streams (log head {self.head}), {view}, "
                f"{self.snapshots} snapshots checked in {self.seconds:.1f} s: {self.counts[TAMPERING]} problems, "
                f"{self.counts[WARNING]} warnings")

    def lines(self) -> list[str]:
        out = [f"{'TAMPERED' if f.severity == TAMPERING else 'WARNING'}  {f.check:<8} {f.where()}: {f.message}"
               for f in self.findings]
        hidden = sum(self.counts.values()) - len(self.findings)
        if hidden:
            out.append(f"… and {hidden} more findings (the first {MAX_KEPT} are shown)")
        return [*out, self.summary()]

    def to_json(self) -> str:
        body = {"status": "intact" if self.intact else "tampered", "exit_code": self.exit_code, "store": self.store,
                "summary": self.summary(), "problems": self.counts[TAMPERING], "warnings": self.counts[WARNING],
                "events": self.events, "streams": self.streams, "head": self.head,
                "view_position": self.view_position, "view_rows": self.view_rows, "view_totals": self.view_totals,
                "snapshots": self.snapshots, "heads_checked": self.heads_checked,
                "seconds": round(self.seconds, 3), "findings": [asdict(f) for f in self.findings]}
        return json.dumps(body, ensure_ascii=False, indent=2)
