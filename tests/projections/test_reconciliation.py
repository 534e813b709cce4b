"""The accountant's X report: lines per terminal, operator, brand and kind that net voids and refunds out,
fees per brand, declines, reversals and doubts kept apart, the cash drawer's variance, one store at a
time, never two currencies in one sum, a CSV a spreadsheet cannot turn into formulas, the same bytes
for the same rows."""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
from typing import Any

import pytest

from projections.reconciliation import day_report, decimal_text, report_csv
from projections.rows import TERMINAL, TILL, TRANSACTION, Folder, MemoryRows, Row, fee_minor
from tests.domain.world import MERCHANT_NO, Counter

DAY = "2026-11-24"  # the Counter's clock starts at 2026-11-24 02:00 UTC, 10:00 in Shanghai
GENERATED_AT = "2026-11-24T12:00:00+00:00"
UNIONPAY_PPM = 6_000
FLOAT = 50_000  # what Counter.open_till puts in the drawer
_ids = itertools.count(1)


# ---- given: rows folded from real events, or written by hand ----------------------------------------

def folded(counter: Counter) -> tuple[list[Row], list[Row], list[Row]]:
    """Every event in the counter's ledger folded into rows: (transactions, tills, terminals)."""
    ledger, rows, folder = counter.ledger, MemoryRows(), Folder()
    for notification in ledger.recorder.select_notifications(start=1, limit=10_000):
        folder.apply(rows, ledger.mapper.to_domain_event(notification), notification.id)
    txns, tills, terminals = (list(rows.tables.get(table, {}).values()) for table in (TRANSACTION, TILL, TERMINAL))
    return txns, tills, terminals


def report_of(counter: Counter, store_id: str | None = None) -> dict[str, Any]:
    return day_report(DAY, *folded(counter), store_id=store_id, generated_at=GENERATED_AT)


def txn_row(amount_minor: int = 10_000, *, brand: str | None = "unionpay", rate_ppm: int = 0,
            **fields: Any) -> Row:
    """A transaction row as the fold leaves it; a completed authorized card sale unless told otherwise."""
    cash = fields.get("payment_method") == "cash"
    row: Row = {
        "id": f"txn-{next(_ids):04d}", "kind": "sale", "payment_method": "card", "status": "completed",
        "outcome": "authorized", "amount_minor": amount_minor, "currency": "CNY",
        "card": None if cash else {"brand": brand, "masked_pan": "622202******1234"},
        "operator_no": "01", "terminal_id": "terminal-1", "terminal_no": "10000001", "merchant_no": MERCHANT_NO,
        "store_id": "main", "till_session_id": "till-1", "business_day": DAY, "opened_at": f"{DAY}T02:00:00+00:00",
        "fee_rate_ppm": 0 if cash else rate_ppm, "fee_minor": 0 if cash else fee_minor(amount_minor, rate_ppm),
        "batch_no": "000001", "trace_no": "000001"}
    return {**row, **fields}


def till_row(**fields: Any) -> Row:
    return {"id": "till-1", "terminal_id": "terminal-1", "terminal_no": "10000001", "merchant_no": MERCHANT_NO,
            "store_id": "main", "business_day": DAY, "opened_at": f"{DAY}T01:00:00+00:00", "float_minor": FLOAT,
            "currency": "CNY", "counted_minor": None, "count_note": None, "closed_at": None, **fields}


def by_hand(txns: list[Row], tills: list[Row] | None = None) -> dict[str, Any]:
    return day_report(DAY, txns, tills or [], [], generated_at=GENERATED_AT)


def amounts(entry: dict[str, Any]) -> tuple[int, int, int, int]:
    return entry["count"], entry["gross_minor"], entry["fee_minor"], entry["net_minor"]


def line(report: dict[str, Any], brand: str, kind: str) -> dict[str, Any]:
    (found,) = [x for x in report["lines"] if (x["brand"], x["kind"]) == (brand, kind)]
    return found


def the_total(report: dict[str, Any], currency: str = "CNY") -> dict[str, Any]:
    (found,) = [t for t in report["totals"] if t["currency"] == currency]
    return found


# ---- voids, refunds, fees ----------------------------------------------------------------------------

def test_a_card_sale_and_its_void_net_to_zero_over_the_day() -> None:
    counter = Counter.at_open_till(fee_rates_ppm={"unionpay": UNIONPAY_PPM})
    counter.void(counter.card_sale(12_345))
    report = report_of(counter)
    assert amounts(line(report, "unionpay", "sale")) == (1, 12_345, 74, 12_271)
    assert amounts(line(report, "unionpay", "void")) == (1, -12_345, -74, -12_271)
    assert [line["kind"] for line in report["lines"]] == ["sale", "void"]
    assert amounts(the_total(report)) == (2, 0, 0, 0)


def test_a_partial_refund_is_a_negative_line_of_its_own() -> None:
    counter = Counter.at_open_till(fee_rates_ppm={"unionpay": UNIONPAY_PPM})
    sale = counter.card_sale(12_345)
    counter.settle()
    counter.refund(sale, 2_000)
    report = report_of(counter)
    assert amounts(line(report, "unionpay", "refund")) == (1, -2_000, -12, -1_988)
    assert amounts(line(report, "unionpay", "sale")) == (1, 12_345, 74, 12_271)
    assert amounts(the_total(report)) == (2, 10_345, 62, 10_283)


def test_fees_follow_each_brands_rate_and_net_is_gross_less_fee() -> None:
    report = by_hand([
        txn_row(10_000, brand="unionpay", rate_ppm=6_000),
        txn_row(5_555, brand="unionpay", rate_ppm=6_000),  # 33.33 rounds to 33
        txn_row(10_000, brand="visa", rate_ppm=25_000),
        txn_row(3_000, payment_method="cash", outcome=None),
    ])
    assert amounts(line(report, "unionpay", "sale")) == (2, 15_555, 93, 15_462)
    assert amounts(line(report, "visa", "sale")) == (1, 10_000, 250, 9_750)
    assert amounts(line(report, "cash", "sale")) == (1, 3_000, 0, 3_000)
    total = the_total(report)
    assert amounts(total) == (4, 28_555, 343, 28_212)
    assert [(b["brand"], amounts(b)) for b in total["brands"]] == [
        ("cash", (1, 3_000, 0, 3_000)), ("unionpay", (2, 15_555, 93, 15_462)), ("visa", (1, 10_000, 250, 9_750))]


def test_lines_are_kept_apart_per_terminal_and_operator() -> None:
    report = by_hand([txn_row(100), txn_row(200, operator_no="02"), txn_row(400, terminal_no="10000002")])
    assert [(x["terminal_no"], x["operator_no"], x["gross_minor"]) for x in report["lines"]] == [
        ("10000001", "01", 100), ("10000001", "02", 200), ("10000002", "01", 400)]


# ---- what never reaches gross ------------------------------------------------------------------------

def test_declines_and_reversals_are_counted_apart_and_never_in_gross() -> None:
    counter = Counter.at_open_till()
    counter.card_sale(1_000)
    declined = counter.begin()
    counter.send_for_authorization(declined, 700)
    counter.decline(declined)
    counter.finish(declined)
    left_open = counter.begin()
    counter.send_for_authorization(left_open, 600)
    counter.decline(left_open)
    reversed_ = counter.begin()
    counter.send_for_authorization(reversed_, 800)
    counter.time_out(reversed_)
    counter.reverse(reversed_)
    counter.finish(reversed_)
    report = report_of(counter)
    assert [amounts(x) for x in report["lines"]] == [(1, 1_000, 0, 1_000)]
    assert [(d["terminal_no"], d["kind"], d["count"], d["amount_minor"]) for d in report["declined"]] == [
        ("10000001", "sale", 2, 1_300)]
    assert [(r["terminal_no"], r["kind"], r["count"], r["amount_minor"]) for r in report["reversed"]] == [
        ("10000001", "sale", 1, 800)]
    assert the_total(report)["gross_minor"] == 1_000 and report["in_doubt"] == []


def test_transactions_whose_outcome_is_pending_or_unknown_are_listed_in_doubt() -> None:
    counter = Counter.at_open_till()
    pending = counter.begin()
    counter.send_for_authorization(pending, 900)
    unknown = counter.begin()
    counter.send_for_authorization(unknown, 1_000)
    counter.time_out(unknown)
    report = report_of(counter)
    assert [(d["id"], d["outcome"], d["terminal_no"], d["amount_minor"], d["currency"]) for d in report["in_doubt"]] \
        == [(str(pending), "pending", "10000001", 900, "CNY"), (str(unknown), "unknown", "10000001", 1_000, "CNY")]
    assert report["lines"] == report["totals"] == report["declined"] == report["reversed"] == []


def test_only_the_days_completed_transactions_reach_the_lines() -> None:
    report = by_hand([
        txn_row(100),
        txn_row(200, status="open"),  # authorized, the receipt not yet printed
        txn_row(400, status="cancelled", outcome="declined"),
        txn_row(800, business_day="2026-11-23"),
        txn_row(1_600, business_day="2026-11-23", status="open", outcome="unknown"),
    ])
    assert [amounts(x) for x in report["lines"]] == [(1, 100, 0, 100)]
    assert [d["amount_minor"] for d in report["declined"]] == [400]
    assert report["in_doubt"] == []


# ---- the cash drawer ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("difference", "variance"), [(200, 200), (-250, -250), (0, 0), (None, None)],
                         ids=["over", "short", "exact", "not counted"])
def test_the_drawer_expects_float_plus_cash_sales_less_cash_refunds_and_voids(
        difference: int | None, variance: int | None) -> None:
    counter = Counter.at_open_till()
    kept = counter.cash_sale(1_250, 2_000)
    counter.void(counter.cash_sale(3_000))
    counter.card_sale(5_000)  # card money never enters the drawer
    counter.settle()
    counter.refund(kept, 500)
    expected = FLOAT + 1_250 + 3_000 - 3_000 - 500
    if difference is not None:
        counter.till_event("CashCounted", counted_minor=expected + difference, note="counted by 01")
    (drawer,) = report_of(counter)["cash"]
    assert drawer["till_session_id"] == str(counter.till_id) and drawer["currency"] == "CNY"
    assert (drawer["float_minor"], drawer["sales_minor"], drawer["refunds_minor"], drawer["voids_minor"]) == \
           (FLOAT, 4_250, 500, 3_000)
    assert drawer["expected_minor"] == expected == 50_750
    assert drawer["variance_minor"] == variance
    if difference is None:
        assert (drawer["counted_minor"], drawer["note"]) == (None, None)
    else:
        assert (drawer["counted_minor"], drawer["note"]) == (expected + difference, "counted by 01")


def test_each_till_session_of_the_day_has_its_own_drawer() -> None:
    counter = Counter.at_open_till()
    counter.cash_sale(1_000)
    other = counter.beside("10000002")
    other.cash_sale(2_000)
    drawers = report_of(counter)["cash"]
    assert [(d["terminal_no"], d["expected_minor"]) for d in drawers] == [
        ("10000001", FLOAT + 1_000), ("10000002", FLOAT + 2_000)]


# ---- one store, one currency at a time ---------------------------------------------------------------

def test_a_store_filter_keeps_only_that_stores_lines_doubts_and_drawers() -> None:
    north = Counter.at_open_till(store_id="north")
    north.card_sale(1_000)
    north.cash_sale(2_000)
    south = north.beside("10000002", store_id="south")
    south.cash_sale(4_000)
    pending = south.begin()
    south.send_for_authorization(pending, 8_000)

    report = report_of(north, store_id="north")
    assert report["store_id"] == "north"
    assert {x["store_id"] for x in report["lines"] + report["cash"]} == {"north"}
    assert the_total(report)["gross_minor"] == 3_000
    assert report["in_doubt"] == []
    everything = report_of(north)
    assert the_total(everything)["gross_minor"] == 7_000
    assert [d["store_id"] for d in everything["cash"]] == ["north", "south"]
    assert [d["store_id"] for d in everything["in_doubt"]] == ["south"]


def test_a_row_folded_before_its_terminal_takes_store_and_numbers_from_the_terminal_row() -> None:
    orphan = txn_row(100, store_id=None, terminal_no=None, merchant_no=None)
    terminal = {"id": "terminal-1", "store_id": "north", "terminal_no": "10000009", "merchant_no": MERCHANT_NO}
    report = day_report(DAY, [orphan], [], [terminal], store_id="north", generated_at=GENERATED_AT)
    assert [(x["store_id"], x["merchant_no"], x["terminal_no"]) for x in report["lines"]] == [
        ("north", MERCHANT_NO, "10000009")]


def test_two_currencies_are_never_summed_together() -> None:
    report = by_hand([
        txn_row(10_000),
        txn_row(2_500, currency="USD", terminal_no="10000002", terminal_id="terminal-2", till_session_id="till-2"),
        txn_row(700, currency="USD", payment_method="cash", outcome=None),  # into the CNY till
    ], [till_row(counted_minor=FLOAT)])
    assert [(t["currency"], t["gross_minor"]) for t in report["totals"]] == [("CNY", 10_000), ("USD", 3_200)]
    assert [(x["currency"], x["gross_minor"]) for x in report["lines"]] == [
        ("USD", 700), ("CNY", 10_000), ("USD", 2_500)]
    assert [(d["currency"], d["float_minor"], d["expected_minor"], d["counted_minor"], d["variance_minor"])
            for d in report["cash"]] == [("CNY", FLOAT, FLOAT, FLOAT, 0), ("USD", 0, 700, None, None)]


# ---- CSV ---------------------------------------------------------------------------------------------

def test_the_csv_reads_back_with_minor_units_and_decimals_and_neutralises_formulas() -> None:
    counter = Counter.at_open_till(store_id="+store", fee_rates_ppm={"unionpay": UNIONPAY_PPM})
    counter.void(counter.card_sale(12_345))
    counter.till_event("CashCounted", counted_minor=49_990, note='=HYPERLINK("http://x","y")')
    text = report_csv(report_of(counter))
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    header, sale, void, blank, cash_header, drawer = list(csv.reader(io.StringIO(text, newline="")))
    assert header == ["store_id", "merchant_no", "terminal_no", "operator_no", "brand", "kind", "currency", "count",
                      "gross_minor", "gross", "fee_minor", "fee", "net_minor", "net"]
    assert sale == ["'+store", MERCHANT_NO, "10000001", "01", "unionpay", "sale", "CNY", "1",
                    "12345", "123.45", "74", "0.74", "12271", "122.71"]
    assert void[7:] == ["1", "-12345", "-123.45", "-74", "-0.74", "-12271", "-122.71"], "numbers stay numbers"
    assert blank == []
    assert cash_header[-1] == "note" and cash_header[5:7] == ["float_minor", "float"]
    cells = dict(zip(cash_header, drawer, strict=True))
    assert cells["store_id"] == "'+store" and cells["note"] == """'=HYPERLINK("http://x","y")"""
    assert (cells["expected_minor"], cells["expected"]) == ("50000", "500.00")
    assert (cells["variance_minor"], cells["variance"]) == ("-10", "-0.10")


def test_a_drawer_not_counted_leaves_its_count_and_variance_cells_empty() -> None:
    text = report_csv(by_hand([], [till_row()]))
    _, _, cash_header, drawer = list(csv.reader(io.StringIO(text, newline="")))
    cells = dict(zip(cash_header, drawer, strict=True))
    assert [cells[name] for name in ("counted_minor", "counted", "variance_minor", "variance", "note")] == [""] * 5


@pytest.mark.parametrize(("minor", "currency", "shown"), [
    (12_345, "CNY", "123.45"), (-5, "CNY", "-0.05"), (0, "CNY", "0.00"), (500, "JPY", "500"),
    (-1, "KWD", "-0.001"), (10**20 + 1, "CNY", "1000000000000000000.01"),
])
def test_decimals_are_computed_from_minor_units_with_integers(minor: int, currency: str, shown: str) -> None:
    assert decimal_text(minor, currency) == shown


# ---- determinism -------------------------------------------------------------------------------------

def test_the_same_rows_in_any_order_give_the_same_bytes() -> None:
    north = Counter.at_open_till(store_id="north", fee_rates_ppm={"unionpay": UNIONPAY_PPM})
    north.void(north.card_sale(12_345))
    north.cash_sale(2_000)
    south = north.beside("10000002", store_id="south")
    south.cash_sale(4_000)
    declined = south.begin()
    south.send_for_authorization(declined, 700)
    south.decline(declined)
    pending = south.begin()
    south.send_for_authorization(pending, 800)
    txns, tills, terminals = folded(north)
    first = day_report(DAY, txns, tills, terminals, generated_at=GENERATED_AT)
    shuffler = random.Random(2026)
    for _ in range(3):
        shuffled = [shuffler.sample(rows, len(rows)) for rows in (txns, tills, terminals)]
        again = day_report(DAY, *shuffled, generated_at=GENERATED_AT)
        assert json.dumps(again, ensure_ascii=False).encode() == json.dumps(first, ensure_ascii=False).encode()
        assert report_csv(again).encode() == report_csv(first).encode()
