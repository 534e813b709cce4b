"""The settlement file (清算文件) the acquirer simulator writes, in the format of docs/settlement-file.md.

One file per settlement day, ``settlement-YYYYMMDD.csv``, rewritten after every settlement of that
day: approved sales not voided or reversed (type sale) and approved refunds not reversed (type
refund). Voids and the sales they cancelled never reach the acquirer's books, so they are absent.
The fee is ``amount * fee_ppm // 1_000_000`` in minor units (integer arithmetic), net = amount - fee.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from adapters.acquirer_journal import JournalEntry
from domain.money import decimal_text

COLUMNS = ("settlement_date", "merchant_no", "terminal_no", "batch_no", "trace_no", "rrn", "auth_code",
           "masked_card", "amount", "fee", "net", "type", "currency")


def settlement_csv(day: date, entries: Iterable[JournalEntry], fee_ppm: int) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in entries:
        fee = entry.amount_minor * fee_ppm // 1_000_000
        writer.writerow([day.isoformat(), entry.merchant_no, entry.terminal_no, entry.batch_no, entry.stan,
                         entry.rrn, entry.auth_code, entry.masked_pan,
                         decimal_text(entry.amount_minor, entry.currency), decimal_text(fee, entry.currency),
                         decimal_text(entry.amount_minor - fee, entry.currency), entry.kind, entry.currency])
    return out.getvalue()


def write_settlement_file(directory: Path, day: date, entries: Iterable[JournalEntry], fee_ppm: int) -> Path:
    """Write the day's file atomically (a reader never sees half a file); returns its path."""
    path = directory / f"settlement-{day:%Y%m%d}.csv"
    partial = path.with_suffix(".csv.partial")
    partial.write_text(settlement_csv(day, entries, fee_ppm), encoding="utf-8", newline="")
    os.replace(partial, path)
    return path
