"""Running totals the ledger view keeps beside its rows, so a day's reconciliation reads a few
hundred aggregate rows instead of every transaction of the day.

Pure. Each transaction row contributes to at most one key of each aggregate (``contributions``);
when a page changes a row, the view adds ``new − old`` to the aggregates in the same transaction as
the rows and the tracking position, so the totals stay exactly once like everything else. The
semantics are those of ``projections.reconciliation.day_report`` over the rows, which the tests
use as the independent computation to compare with.

Key columns never hold NULL (a NULL never conflicts in a unique key, which would split a total):
a missing value is stored as ``""`` and read back as None.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from projections.rows import CREDIT_KINDS, Row, brand_of, counts_in_gross

Key = tuple[str, ...]


@dataclass(frozen=True)
class Aggregate:
    table: str
    keys: tuple[str, ...]
    values: tuple[str, ...]


DAY_LINE = Aggregate("day_line", ("business_day", "store_id", "merchant_no", "terminal_no", "operator_no", "brand",
                                  "kind", "currency"), ("count", "gross_minor", "fee_minor"))
DAY_APART = Aggregate("day_apart", ("business_day", "outcome", "store_id", "merchant_no", "terminal_no", "kind",
                                    "currency"), ("count", "amount_minor"))
TILL_CASH = Aggregate("till_cash", ("till_session_id", "currency"), ("sales_minor", "refunds_minor", "voids_minor"))
# The accountant's chart: gross per local hour of completion (the terminal's time zone).
DAY_HOUR = Aggregate("day_hour", ("business_day", "store_id", "hour", "currency"), ("count", "gross_minor"))
AGGREGATES = (DAY_LINE, DAY_APART, TILL_CASH, DAY_HOUR)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_hour(moment_iso: str, timezone: str) -> str:
    """``"00"``…``"23"``: the hour of ``moment_iso`` on the terminal's wall clock."""
    return f"{datetime.fromisoformat(moment_iso).astimezone(_zone(timezone)).hour:02d}"


def _key(row: Row, names: Iterable[str], **override: str) -> Key:
    return tuple(str(override.get(n, row.get(n)) if override.get(n, row.get(n)) is not None else "") for n in names)


def contributions(row: Row | None) -> list[tuple[Aggregate, Key, tuple[int, ...]]]:
    """What one transaction row adds to each aggregate in its present state."""
    if row is None:
        return []
    found: list[tuple[Aggregate, Key, tuple[int, ...]]] = []
    amount = row.get("amount_minor") or 0
    completed = row.get("status") == "completed"
    card = row.get("payment_method") == "card"
    if counts_in_gross(row):
        sign = -1 if row["kind"] in CREDIT_KINDS else 1
        found.append((DAY_LINE, _key(row, DAY_LINE.keys, brand=brand_of(row)),
                      (1, sign * amount, sign * (row.get("fee_minor") or 0))))
        if row.get("completed_at") and row.get("timezone"):
            hour = local_hour(row["completed_at"], row["timezone"])
            found.append((DAY_HOUR, _key(row, DAY_HOUR.keys, hour=hour), (1, sign * amount)))
    if card and row.get("outcome") in ("declined", "reversed"):
        found.append((DAY_APART, _key(row, DAY_APART.keys), (1, amount)))
    if completed and not card:
        slot = {"sale": 0, "refund": 1, "void": 2}.get(row["kind"], 0)
        values = [0, 0, 0]
        values[slot] = amount
        found.append((TILL_CASH, _key(row, TILL_CASH.keys), tuple(values)))
    return found


def deltas(before: Iterable[tuple[Aggregate, Key, tuple[int, ...]]],
           after: Iterable[tuple[Aggregate, Key, tuple[int, ...]]],
           into: dict[tuple[str, Key], list[int]] | None = None) -> dict[tuple[str, Key], list[int]]:
    """Add ``after − before`` into ``into`` (keyed by aggregate table and key); zero changes are dropped."""
    totals: dict[tuple[str, Key], list[int]] = into if into is not None else defaultdict(list)
    for sign, entries in ((-1, before), (1, after)):
        for aggregate, key, values in entries:
            slot = totals.setdefault((aggregate.table, key), [0] * len(values))
            for i, value in enumerate(values):
                slot[i] += sign * value
    for slot_key in [k for k, v in totals.items() if not any(v)]:
        del totals[slot_key]
    return totals


AGGREGATE_BY_TABLE = {a.table: a for a in AGGREGATES}
