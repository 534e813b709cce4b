"""Everything a store holds, as text, and a scan of that text for card data (PCI DSS at rest).

SQLite: every file in the data directory byte for byte (latin-1, so no byte is lost), plus every
row of every table. PostgreSQL: every column of every row of every table in the test's schema
(``bytea`` columns such as ``state`` decoded the same way).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import psycopg
from psycopg import sql

from adapters.settings import Settings
from adapters.store import libpq_conninfo
from domain.card_data import luhn_valid

_SEPARATOR = "\n"  # not a digit separator, so values never run into one another


def _text(value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    return str(value)


def _sqlite_text(data_dir: Path) -> str:
    parts = [path.read_bytes().decode("latin-1") for path in sorted(data_dir.rglob("*")) if path.is_file()]
    for database in sorted(data_dir.rglob("*.sqlite")):
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
            tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in conn.execute(f'SELECT * FROM "{table}"'):
                    parts.extend(_text(value) for value in row)
        conn.close()
    return _SEPARATOR.join(parts)


def _postgres_text(settings: Settings) -> str:
    parts: list[str] = []
    with psycopg.connect(libpq_conninfo(settings)) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY table_name",
            (settings.database_schema,))]
        assert tables, f"no tables in schema {settings.database_schema}"
        for table in tables:
            for row in conn.execute(sql.SQL("SELECT * FROM {}.{}").format(
                    sql.Identifier(settings.database_schema), sql.Identifier(table))):
                parts.extend(_text(value) for value in row)
    return _SEPARATOR.join(parts)


def stored_text(settings: Settings) -> str:
    return _postgres_text(settings) if settings.uses_postgres else _sqlite_text(settings.data_dir)


# ---- what card data looks like ----------------------------------------------------------------------
# 13-19 digits, single spaces or dashes allowed between them, not glued to other letters or digits.
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d){12,18}(?![0-9A-Za-z])")
_TRACK_2 = re.compile(r"\d{12,19}=\d{4}")  # PAN=YYMM...
_TAG_57 = re.compile(r"\d{12,19}[Dd]\d{4}")  # chip track-2 equivalent (tag 57 / 9F6B): PAN, 'D', YYMM
_TRACK_1 = re.compile(r"[Bb]\d{12,19}\^")  # %B PAN ^ NAME ^
# Identifiers and digests the service writes itself. A UUID's digit groups can pass for a dashed
# digit run, and a lowercase SHA-256 digest can hold "digits d digits": neither is card data.
_OWN_IDENTIFIERS = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9a-f]{64}|[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"(?![0-9A-Za-z])")


def masked(digits: str) -> str:
    return f"{digits[:6]}…{digits[-4:]}" if len(digits) > 10 else "…"


def card_data_in(text: str) -> list[str]:
    """What in ``text`` looks like a full PAN or track data, masked so a report never repeats it."""
    text = _OWN_IDENTIFIERS.sub("#", text)
    found = []
    for match in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"[ -]", "", match.group(0))
        if luhn_valid(digits):
            found.append(f"Luhn-valid digit run {masked(digits)}")
    for name, pattern in (("track 2", _TRACK_2), ("tag 57", _TAG_57), ("track 1", _TRACK_1)):
        found.extend(f"{name} pattern {masked(re.sub(r'[^0-9]', '', m.group(0)))}" for m in pattern.finditer(text))
    return found
