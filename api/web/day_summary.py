"""The accountant's day page, from the X report: totals grouped three ways, and the hourly bars.

Pure: the day report (``projections.reconciliation``) and the hourly aggregate rows in; lists of
plain dicts out. Amounts stay integer minor units, summed only within one currency.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_AMOUNTS = ("count", "gross_minor", "fee_minor", "net_minor")
HOURS = [f"{h:02d}" for h in range(24)]


def grouped(lines: Iterable[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    """The report's lines summed per ``keys`` (and currency), in the lines' order of first appearance."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for line in lines:
        key = (*(line.get(k) for k in keys), line["currency"])
        group = groups.setdefault(key, {**{k: line.get(k) for k in keys}, "currency": line["currency"],
                                        **dict.fromkeys(_AMOUNTS, 0)})
        for name in _AMOUNTS:
            group[name] += line[name]
    return sorted(groups.values(), key=lambda g: tuple("" if g[k] is None else str(g[k]) for k in (*keys, "currency")))


def hourly(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per currency, 24 entries (00…23) of count and gross (zero where nothing sold), store totals summed."""
    per_currency: dict[str, dict[str, dict[str, int]]] = {}
    for row in rows:
        hours = per_currency.setdefault(row["currency"] or "", {h: {"count": 0, "gross_minor": 0} for h in HOURS})
        slot = hours[row["hour"]]
        slot["count"] += row["count"]
        slot["gross_minor"] += row["gross_minor"]
    return {currency: [{"hour": h, **hours[h]} for h in HOURS] for currency, hours in sorted(per_currency.items())}


def bars(hours: list[dict[str, Any]], height: int = 120) -> list[dict[str, Any]]:
    """Each hour's bar height in pixels, the tallest gross at ``height`` (integer arithmetic).

    Negative hours (more refunded than sold) are drawn as empty bars; the table beside shows the figure."""
    top = max((h["gross_minor"] for h in hours), default=0)
    return [{**h, "px": (max(h["gross_minor"], 0) * height // top) if top > 0 else 0} for h in hours]


def variance_class(drawer: dict[str, Any]) -> str:
    """CSS class of a cash drawer's row: a variance not zero stands out; an uncounted till is muted."""
    if drawer.get("variance_minor") is None:
        return "uncounted"
    return "variance" if drawer["variance_minor"] != 0 else ""
