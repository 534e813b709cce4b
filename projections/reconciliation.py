"""Reconciliation: the accountant's X report for one business day, and its CSV.

Pure: the rows ``projections.rows`` folds in, a JSON-able dict and CSV text out; no store, no clock.

    day_report(day, txns, tills, terminals, store_id=, generated_at=) -> dict   totals so far, no period close
    report_csv(report)                                                  -> str    the lines, then the cash drawers

What counts (DOMAIN.md, "Reconciliation" and "Void, refund, reversal"):

* ``lines``: completed transactions of the day, cash or authorized card, summed per store, merchant,
  terminal, operator, brand (``cash`` for cash), kind and currency. Voids and refunds are lines of their
  own with negative gross, fee and net, so a sale and its void net to zero over the day.
* ``declined`` / ``reversed``: card transactions with that outcome, completed or not, counted apart
  per terminal and kind; never in gross.
* ``in_doubt``: every transaction whose outcome is pending or unknown, one entry each.
* ``totals``: per currency over the lines, and per brand within it.
* ``cash``: per till session of the day (and currency): float + cash sales − cash refunds − cash voids
  is the expected drawer; variance = counted − expected.

Amounts are integer minor units and are never summed across currencies. Every list is sorted, so the
same rows give the same JSON byte for byte whatever order they arrive in.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from domain.money import decimal_text
from projections.rows import CREDIT_KINDS, Row, brand_of, counts_in_gross
from projections.xlsx import workbook

_KIND_ORDER = {"sale": 0, "void": 1, "refund": 2}
_IN_DOUBT = ("pending", "unknown")
_AMOUNTS = ("count", "gross_minor", "fee_minor", "net_minor")
# A spreadsheet runs a text cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def day_report(business_day: str, txns: list[Row], tills: list[Row], terminals: list[Row], *,
               store_id: str | None = None, generated_at: str) -> dict[str, Any]:
    """The X report for ``business_day`` (``YYYY-MM-DD``), of one store when ``store_id`` is given.

    ``txns`` must hold the day's transactions; for the cash drawers, also any later transaction of the
    day's till sessions (a session open across the cut-off). Rows of other days or stores are ignored.
    """
    where = _Where(terminals)
    day = [t for t in txns if t.get("business_day") == business_day and where.in_store(t, store_id)]
    day_tills = [t for t in tills if t.get("business_day") == business_day and where.in_store(t, store_id)]
    lines = _lines(day, where)
    return {
        "report": "X", "business_day": business_day, "store_id": store_id, "generated_at": generated_at,
        "lines": lines,
        "totals": _totals(lines),
        "declined": _apart(day, "declined", where),
        "reversed": _apart(day, "reversed", where),
        "in_doubt": _in_doubt(day, where),
        "cash": _cash(day_tills, txns, where),
    }


def day_report_from_totals(business_day: str, line_totals: list[Row], apart_totals: list[Row], in_doubt: list[Row],
                           tills: list[Row], till_cash: list[Row], terminals: list[Row], *,
                           store_id: str | None = None, generated_at: str) -> dict[str, Any]:
    """The same X report as ``day_report``, from the running totals the ledger view keeps
    (``projections.aggregates``): a day of a million transactions is a few hundred rows here."""
    where = _Where(terminals)
    lines = [t for t in line_totals if t["count"]]
    for line in lines:  # the rows are ours to complete: no copy per line (there may be thousands)
        del line["business_day"]
        line["net_minor"] = line["gross_minor"] - line["fee_minor"]
    lines.sort(key=lambda line: (  # the order of _lines, with None as ""
        line["store_id"] or "", line["merchant_no"] or "", line["terminal_no"] or "", line["operator_no"] or "",
        line["brand"] or "", _KIND_ORDER.get(line["kind"], 9), line["kind"] or "", line["currency"] or ""))

    def apart(outcome: str) -> list[dict[str, Any]]:
        groups = [{k: t[k] for k in ("store_id", "merchant_no", "terminal_no", "kind", "currency", "count",
                                     "amount_minor")} for t in apart_totals if t["outcome"] == outcome and t["count"]]
        return sorted(groups, key=lambda g: _order(g["store_id"], g["merchant_no"], g["terminal_no"],
                                                   _KIND_ORDER.get(g["kind"], 9), g["kind"], g["currency"]))

    # The drawer sums as the rows _cash expects: one per till, currency and kind.
    moved = [{"payment_method": "cash", "status": "completed", "till_session_id": t["till_session_id"],
              "currency": t["currency"], "kind": kind, "amount_minor": t[f"{name}_minor"]}
             for t in till_cash for kind, name in (("sale", "sales"), ("refund", "refunds"), ("void", "voids"))]
    day_tills = [t for t in tills if t.get("business_day") == business_day and where.in_store(t, store_id)]
    return {
        "report": "X", "business_day": business_day, "store_id": store_id, "generated_at": generated_at,
        "lines": lines, "totals": _totals(lines), "declined": apart("declined"), "reversed": apart("reversed"),
        "in_doubt": _in_doubt([t for t in in_doubt if where.in_store(t, store_id)], where),
        "cash": _cash(day_tills, moved, where),
    }


def batch_totals(batch_no: str, txns: list[Row], terminals: list[Row]) -> dict[str, Any]:
    """The Z report's figures: one terminal batch's lines and totals, declines and reversals apart,
    and anything still in doubt (``txns`` are the batch's transactions)."""
    where = _Where(terminals)
    batch = [t for t in txns if t.get("batch_no") == batch_no]
    lines = _lines(batch, where)
    return {"report": "Z", "batch_no": batch_no, "lines": lines, "totals": _totals(lines),
            "declined": _apart(batch, "declined", where), "reversed": _apart(batch, "reversed", where),
            "in_doubt": _in_doubt(batch, where)}


class _Where:
    """Store, merchant and terminal number of a row: the row's own, else its terminal's."""

    def __init__(self, terminals: Iterable[Row]) -> None:
        self.terminals = {t["id"]: t for t in terminals}

    def __call__(self, row: Row) -> dict[str, Any]:
        terminal = self.terminals.get(row.get("terminal_id"), {})
        return {name: row.get(name) if row.get(name) is not None else terminal.get(name)
                for name in ("store_id", "merchant_no", "terminal_no")}

    def in_store(self, row: Row, store_id: str | None) -> bool:
        return store_id is None or self(row)["store_id"] == store_id


def _order(*values: Any) -> tuple[Any, ...]:
    """A sort key that puts None first (as "", below every real value) instead of failing to compare it."""
    return tuple("" if value is None else value for value in values)


def _lines(day: list[Row], where: _Where) -> list[dict[str, Any]]:
    lines: dict[tuple[Any, ...], dict[str, Any]] = {}
    for txn in filter(counts_in_gross, day):
        line = {**where(txn), "operator_no": txn.get("operator_no"), "brand": brand_of(txn), "kind": txn["kind"],
                "currency": txn.get("currency")}
        summed = lines.setdefault(tuple(line.values()), {**line, **dict.fromkeys(_AMOUNTS, 0)})
        sign = -1 if txn["kind"] in CREDIT_KINDS else 1
        gross, fee = sign * (txn.get("amount_minor") or 0), sign * (txn.get("fee_minor") or 0)
        summed["count"] += 1
        summed["gross_minor"] += gross
        summed["fee_minor"] += fee
        summed["net_minor"] += gross - fee
    return sorted(lines.values(), key=lambda line: _order(
        line["store_id"], line["merchant_no"], line["terminal_no"], line["operator_no"], line["brand"],
        _KIND_ORDER.get(line["kind"], 9), line["kind"], line["currency"]))


def _totals(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sums: dict[tuple[Any, Any], list[int]] = {}
    for line in lines:  # one pass over plain lists: a day of many terminals has thousands of lines
        slot = sums.get((line["currency"], line["brand"]))
        if slot is None:
            slot = sums[(line["currency"], line["brand"])] = [0, 0, 0, 0]
        slot[0] += line["count"]
        slot[1] += line["gross_minor"]
        slot[2] += line["fee_minor"]
        slot[3] += line["net_minor"]
    totals = []
    for currency in sorted({currency for currency, _ in sums}, key=_order):
        brands = sorted(brand for c, brand in sums if c == currency)
        per_brand = [{"brand": brand, **dict(zip(_AMOUNTS, sums[(currency, brand)]))} for brand in brands]
        totals.append({"currency": currency, **{name: sum(b[name] for b in per_brand) for name in _AMOUNTS},
                       "brands": per_brand})
    return totals


def _apart(day: list[Row], outcome: str, where: _Where) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for txn in day:
        if txn.get("payment_method") == "card" and txn.get("outcome") == outcome:
            key = {**where(txn), "kind": txn["kind"], "currency": txn.get("currency")}
            group = groups.setdefault(tuple(key.values()), {**key, "count": 0, "amount_minor": 0})
            group["count"] += 1
            group["amount_minor"] += txn.get("amount_minor") or 0
    return sorted(groups.values(), key=lambda g: _order(
        g["store_id"], g["merchant_no"], g["terminal_no"], _KIND_ORDER.get(g["kind"], 9), g["kind"], g["currency"]))


def _in_doubt(day: list[Row], where: _Where) -> list[dict[str, Any]]:
    doubtful = [{"id": txn["id"], **where(txn), "terminal_id": txn.get("terminal_id"),
                 "operator_no": txn.get("operator_no"), "kind": txn["kind"], "outcome": txn["outcome"],
                 "amount_minor": txn.get("amount_minor"), "currency": txn.get("currency"),
                 "batch_no": txn.get("batch_no"), "trace_no": txn.get("trace_no"), "opened_at": txn.get("opened_at")}
                for txn in day if txn.get("outcome") in _IN_DOUBT]
    return sorted(doubtful, key=lambda d: _order(
        d["store_id"], d["merchant_no"], d["terminal_no"], d["opened_at"], d["id"]))


def _cash(tills: list[Row], txns: list[Row], where: _Where) -> list[dict[str, Any]]:
    cash = [t for t in txns if t.get("payment_method") == "cash" and t.get("status") == "completed"]
    drawers = []
    for till in tills:
        in_till = [t for t in cash if t.get("till_session_id") == till["id"]]
        # A cash transaction in another currency than the float's gets a drawer entry of its own.
        currencies = sorted({till.get("currency")} | {t.get("currency") for t in in_till}, key=_order)
        for currency in currencies:
            own = currency == till.get("currency")
            drawers.append(_drawer(till, [t for t in in_till if t.get("currency") == currency], currency, own, where))
    return sorted(drawers, key=lambda d: _order(
        d["store_id"], d["merchant_no"], d["terminal_no"], d["opened_at"], d["till_session_id"], d["currency"]))


def _drawer(till: Row, cash: list[Row], currency: str | None, own: bool, where: _Where) -> dict[str, Any]:
    moved = {kind: sum(t.get("amount_minor") or 0 for t in cash if t["kind"] == kind) for kind in _KIND_ORDER}
    float_minor = (till.get("float_minor") or 0) if own else 0
    expected = float_minor + moved["sale"] - moved["refund"] - moved["void"]
    counted = till.get("counted_minor") if own else None
    return {
        "till_session_id": till["id"], **where(till), "terminal_id": till.get("terminal_id"),
        "opened_at": till.get("opened_at"), "closed_at": till.get("closed_at"), "currency": currency,
        "float_minor": float_minor, "sales_minor": moved["sale"], "refunds_minor": moved["refund"],
        "voids_minor": moved["void"], "expected_minor": expected, "counted_minor": counted,
        "variance_minor": None if counted is None else counted - expected,
        "note": till.get("count_note") if own else None}


# ---- CSV -----------------------------------------------------------------------------------------
_LINE_TEXT = ("store_id", "merchant_no", "terminal_no", "operator_no", "brand", "kind", "currency")
_LINE_MONEY = ("gross_minor", "fee_minor", "net_minor")
_CASH_TEXT = ("till_session_id", "store_id", "merchant_no", "terminal_no", "currency")
_CASH_MONEY = ("float_minor", "sales_minor", "refunds_minor", "voids_minor", "expected_minor", "counted_minor",
               "variance_minor")


def report_csv(report: dict[str, Any]) -> str:
    """The report's lines, a blank line, then its cash drawers (RFC 4180, CRLF, a header row each).

    Each amount appears twice: integer minor units (``gross_minor``) and as a decimal (``gross``).
    Text cells that a spreadsheet would run as a formula are prefixed with an apostrophe.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*_LINE_TEXT, "count", *_money_headers(_LINE_MONEY)])
    for line in report["lines"]:
        writer.writerow([*(_text(line[name]) for name in _LINE_TEXT), line["count"],
                         *_money_cells(line, _LINE_MONEY)])
    writer.writerow([])
    writer.writerow([*_CASH_TEXT, *_money_headers(_CASH_MONEY), "note"])
    for drawer in report["cash"]:
        writer.writerow([*(_text(drawer[name]) for name in _CASH_TEXT), *_money_cells(drawer, _CASH_MONEY),
                         _text(drawer["note"])])
    return out.getvalue()


def _money_headers(names: tuple[str, ...]) -> list[str]:
    return [header for name in names for header in (name, name.removesuffix("_minor"))]


def _money_cells(row: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    cells = []
    for name in names:
        minor = row[name]
        cells += ["", ""] if minor is None else [str(minor), decimal_text(minor, row["currency"])]
    return cells


def _text(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def report_xlsx(report: dict[str, Any]) -> bytes:
    """The report as a workbook: lines, totals by brand, cash drawers, declines, reversals, in doubt.
    Amounts are integer minor units (numeric cells; a spreadsheet float never holds the money)."""
    def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[list[str | int | None]]:
        return [list(columns), *[[row.get(column) for column in columns] for row in rows]]

    totals = [{"currency": t["currency"], **b} for t in report["totals"] for b in t["brands"]]
    apart = ("store_id", "merchant_no", "terminal_no", "kind", "currency", "count", "amount_minor")
    return workbook([
        ("Lines", table(report["lines"], (*_LINE_TEXT, "count", *_LINE_MONEY))),
        ("Totals", table(totals, ("currency", "brand", "count", "gross_minor", "fee_minor", "net_minor"))),
        ("Cash", table(report["cash"], (*_CASH_TEXT, *_CASH_MONEY, "note"))),
        ("Declined", table(report["declined"], apart)),
        ("Reversed", table(report["reversed"], apart)),
        ("In doubt", table(report["in_doubt"], ("id", "store_id", "terminal_no", "operator_no", "kind", "outcome",
                                                 "currency", "amount_minor", "batch_no", "trace_no", "opened_at"))),
    ])
