"""No card data at rest after a whole simulated day, on SQLite and on PostgreSQL.

The day, all real processes on loopback: ``till serve --acquirer-sim`` (the service with its embedded
projection and the built-in acquirer simulator, JSON logs at DEBUG to a file), then ``till simulate
--terminals 2`` against it (two terminal agents; virtual chip and contactless cards with real test PANs
and PIN 1234; cash; each till counts, settles with its Z report and closes). Then, through the API, the
day report as CSV and XLSX, every card sale's dispute evidence as JSON, signed bundle and PDF, receipts
as text and PDF, and the acquirer's settlement file imported and matched. The service is stopped by its
PID (the files are read while it runs and again after, so SQLite's WAL is read both before and after
its checkpoint).

Everything is then scanned:

* the database: every file in the data directory byte for byte (SQLite: the databases, their -wal and
  -shm files) and every column of every row of every table (PostgreSQL: every table of the schema,
  ``bytea`` decoded as latin-1);
* the service's log and its standard output; what ``till simulate`` printed;
* the agents' work directories: journals byte for byte (with their -wal) and every row;
* the exported files: CSV, XLSX (every member unzipped), PDF (text by ``pdftotext`` and the raw bytes),
  bundle JSON, receipt text, the settlement import's answer;
* the acquirer simulator's journal and settlement file. The simulator plays the BANK: in ISO 8583
  field 2 it legitimately receives the full PAN, and a real acquirer keeps it under its own PCI scope,
  not ours. It is in scope here all the same, because ``--acquirer-sim`` writes it into our data
  directory and adapters/acquirer_journal.py promises masked numbers only: the scan holds it to that.

What counts as card data (the rules, precisely):

1. A full PAN: a run of 13–19 digits (single spaces or dashes allowed between digit groups) that passes
   Luhn and is not glued to letters or digits on either side. UUIDs and runs of 32+ hex characters
   (hashes, tokens, ids the service writes) are blanked first, even glued to other bytes: their digit
   groups are not card numbers;
   so are a raw PDF's cross-reference entries (``0000001573 00000 n``: a byte offset and a generation).
   In a database file's raw bytes, a run made of two or more whole values of the rows read (e.g. a
   terminal number and a batch number that SQLite stored back to back) is reported as explained, not
   as a hit: rule 1 applies to the rows cell by cell, and to the raw bytes for what rows do not show
   (free pages, WAL frames).
2. The virtual cards' own PANs, anywhere, even glued to other characters (a TLV hex dump such as
   ``5A08…``), and as packed BCD bytes in the binary files.
3. Track 2 and its chip form: 12–19 digits that pass Luhn, then ``=`` or ``D``, then YYMM with a month
   01–12 (``PAN=YYMM…``, tag 57 ``PAN D YYMM…``), and each virtual card's own ``PAN=YYMM`` / ``PANDYYMM``.
4. The PIN (1234, the only PIN of the run) is NOT searched as a bare string: "1234" is in amounts,
   traces and the last four digits of a masked PAN. It counts when it is the value of a field whose
   name says PIN (``pin``, ``pins``, ``pin_block``, ``offline_pin``, …: ``"pin": "1234"``, ``pin=1234``,
   ``"pins": ["1234"]``), or as a PIN block: the ISO 9564 format-2 block the card's VERIFY receives
   (``241234FFFFFFFFFF``), the format-0 PIN field (``041234FFFFFFFFFF``) and the format-0 block under
   each virtual PAN, as hex text or raw bytes.

Every hit is reported with where it was and its context, the digits masked.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from psycopg import sql

from adapters.settings import Settings
from adapters.store import libpq_conninfo
from adapters.virtual_card import PROFILES
from domain.card_data import luhn_valid
from terminal_agent.simulate import PIN

SALES_PER_TERMINAL = 10
PINS = (PIN,)
CARDS = [(p.pan, p.expiry) for p in PROFILES.values()]
TILL = Path(sys.executable).with_name("till")

# ---- the rules ---------------------------------------------------------------------------------------
# Wherever they are: in a database file's raw bytes an id may sit right against a length byte that
# reads as a digit. (A card number inside a hex run could not pass rule 1 anyway: it has no boundary.)
_OWN_IDS = re.compile(r"[0-9a-fA-F]{32,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# A PDF's cross-reference entries: a 10-digit byte offset, a 5-digit generation, n or f.
_PDF_XREF = re.compile(r"(?<![0-9A-Za-z])\d{10} \d{5} [nf](?![0-9A-Za-z])")
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d){12,18}(?![0-9A-Za-z])")
_TRACK_2 = re.compile(r"(?<![0-9A-Za-z])(\d{12,19})[=Dd](\d{2})(\d{2})")
_PIN_FIELD = re.compile(r"""(?i)["']?\b[a-z_]*pin[a-z_]*\b["']?\s*[:=]\s*\[?\s*["']?(\d{4,12})(?!\d)""")


def masked(digits: str) -> str:
    return f"{digits[:6]}…{digits[-4:]}" if len(digits) > 10 else "…"


def _context(text: str, start: int, end: int) -> str:
    around = text[max(0, start - 40):end + 40]
    return re.sub(r"\d{11,}", lambda m: masked(m.group(0)), around).replace("\n", " ")


def pin_blocks(pin: str) -> list[str]:
    """The PIN's blocks as hex: format 2 (offline, to the card), format 0's PIN field, and format 0
    under each virtual card's PAN."""
    pin_field = f"0{len(pin)}{pin}".ljust(16, "F")
    blocks = [f"2{len(pin)}{pin}".ljust(16, "F"), pin_field]
    for pan, _ in CARDS:
        pan_field = "0000" + pan[-13:-1]
        blocks.append(f"{int(pin_field, 16) ^ int(pan_field, 16):016X}")
    return blocks


def card_data_in(text: str, side_by_side: Callable[[str], bool] = lambda digits: False,
                 explained: list[str] | None = None) -> list[str]:
    """Each hit of rules 1–4 in ``text``, with its context (digits masked). A digit run for which
    ``side_by_side`` holds is not a hit but goes to ``explained`` (see ``Scanned.side_by_side``)."""
    hits = []
    for pan, expiry in CARDS:
        for needle in (pan, f"{pan}={expiry}", f"{pan}D{expiry}", f"{pan}d{expiry}"):
            for m in re.finditer(re.escape(needle), text):
                hits.append(f"virtual card {masked(pan)}{needle[len(pan):len(pan) + 1]}: …{_context(text, *m.span())}…")
    for pin in PINS:
        for block in pin_blocks(pin):
            for m in re.finditer(block, text, re.I):
                hits.append(f"PIN block {block[:2]}…: …{_context(text, *m.span())}…")
    for m in _PIN_FIELD.finditer(text):
        if m.group(1) in PINS:
            hits.append(f"PIN in a PIN field: …{_context(text, *m.span())}…")
    blanked = _PDF_XREF.sub(lambda m: "#" * len(m.group(0)), _OWN_IDS.sub(lambda m: "#" * len(m.group(0)), text))
    for m in _DIGIT_RUN.finditer(blanked):
        digits = re.sub(r"[ -]", "", m.group(0))
        if luhn_valid(digits):
            found = f"Luhn-valid {len(digits)}-digit run {masked(digits)}: …{_context(blanked, *m.span())}…"
            if side_by_side(digits):
                (explained if explained is not None else []).append(found)
            else:
                hits.append(found)
    for m in _TRACK_2.finditer(blanked):
        if luhn_valid(m.group(1)) and 1 <= int(m.group(3)) <= 12:
            hits.append(f"track 2 pattern {masked(m.group(1))}: …{_context(blanked, *m.span())}…")
    return hits


def card_data_in_bytes(data: bytes, side_by_side: Callable[[str], bool] = lambda digits: False,
                       explained: list[str] | None = None) -> list[str]:
    """Rules 1–4 on the bytes read as latin-1 (no byte lost), plus packed BCD PANs and PIN blocks."""
    hits = card_data_in(data.decode("latin-1"), side_by_side, explained)
    for pan, _ in CARDS:
        if data.find(bytes.fromhex(pan)) >= 0:
            hits.append(f"virtual card {masked(pan)} as packed BCD")
    for pin in PINS:
        for block in pin_blocks(pin):
            if data.find(bytes.fromhex(block)) >= 0:
                hits.append(f"PIN block {block[:2]}… as bytes")
    return hits


# ---- what a day leaves behind ----------------------------------------------------------------------------
@dataclass
class Scanned:
    """Every place scanned (its label) with its content."""

    sources: dict[str, bytes] = field(default_factory=dict)
    cells: set[str] = field(default_factory=set)  # every all-digit value of every SQLite row read
    explained: list[str] = field(default_factory=list)

    def add(self, label: str, data: bytes | str) -> None:
        self.sources[label] = data.encode("utf-8") if isinstance(data, str) else data

    def add_files(self, label: str, folder: Path, *, when: str) -> None:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.add(f"{label}: {path.relative_to(folder)} ({when})", path.read_bytes())

    def add_sqlite_rows(self, label: str, folder: Path, pattern: str) -> int:
        tables = 0
        for database in sorted(folder.rglob(pattern)):
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
                for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                    rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
                    values = list(_cells(rows))
                    self.add(f"{label}: {database.name} table {table}", "\n".join(values))
                    self.cells.update(v for v in values if v.isdigit())
                    tables += 1
            conn.close()
        return tables

    def side_by_side(self, digits: str) -> bool:
        """Whether a digit run read from a database file's raw bytes is two or more whole column values
        stored next to each other. SQLite writes a record's values back to back (its header says where
        each ends), so a terminal number followed by a batch number reads as one run of digits; read
        row by row (cells apart), the same data holds no such run. Two or three values of 6+ digits each
        (terminal, batch, trace, STAN, RRN, merchant numbers): short values such as versions or amounts
        could piece together almost any run, so they explain nothing."""
        n, never = len(digits), 99
        fewest = [0] + [never] * n  # fewest whole values that make up digits[:end]
        for end in range(6, n + 1):
            fewest[end] = min((fewest[start] + 1 for start in range(0, end - 5)
                               if fewest[start] < never and (start, end) != (0, n) and digits[start:end] in self.cells),
                              default=never)
        return 2 <= fewest[n] <= 3

    def hits(self) -> list[str]:
        found = []
        for label, data in self.sources.items():
            raw_database = "(service running)" in label or "(service stopped)" in label or "(after the day)" in label
            found += [f"{label}: {hit}" for hit in card_data_in_bytes(
                data, self.side_by_side if raw_database else lambda digits: False, self.explained)]
        return found

    def text(self, prefix: str) -> str:
        return "\n".join(data.decode("latin-1") for label, data in self.sources.items() if label.startswith(prefix))


def _cells(rows: list[Any]) -> Iterator[str]:
    for row in rows:
        for value in row:
            yield bytes(value).decode("latin-1") if isinstance(value, (bytes, bytearray, memoryview)) else str(value)


def postgres_rows(settings: Settings) -> dict[str, str]:
    tables: dict[str, str] = {}
    with psycopg.connect(libpq_conninfo(settings)) as conn:
        names = [n for (n,) in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                                            (settings.database_schema,))]
        for name in names:
            rows = conn.execute(sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(settings.database_schema),
                                                                        sql.Identifier(name))).fetchall()
            tables[name] = "\n".join(_cells(rows))
    return tables


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(settings: Settings, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILL_")}
    env["TILL_DATA_DIR"] = str(data_dir)
    if settings.database_url:
        env["TILL_DATABASE_URL"] = settings.database_url
        env["TILL_DATABASE_SCHEMA"] = settings.database_schema
    return env


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def wait_until(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
            if result:
                return result
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s:g} s")
        time.sleep(0.2)


def export_everything(http: httpx.Client, day: str, data_dir: Path, out: Path) -> list[str]:
    """The day report (CSV, XLSX), every card sale's evidence (JSON, bundle, PDF), receipts (text, PDF)
    and the settlement file's import; saved under ``out``. Returns the card sales' ids."""
    out.mkdir()

    def save(name: str, response: httpx.Response) -> bytes:
        assert response.status_code in (200, 201), f"{name}: {response.status_code} {response.text[:300]}"
        (out / name).write_bytes(response.content)
        return response.content

    save("day.csv", http.get("/v1/reports/day", params={"date": day, "format": "csv"}))
    save("day.xlsx", http.get("/v1/reports/day", params={"date": day, "format": "xlsx"}))
    save("day.json", http.get("/v1/reports/day", params={"date": day}))
    sales: list[str] = []
    for pan, _ in CARDS:
        found = http.get("/v1/disputes/search", params={"last4": pan[-4:], "date": day}).json()["matches"]
        sales += [m["transaction_id"] for m in found]
    for txn in sales:
        save(f"evidence-{txn}.json", http.get(f"/v1/disputes/{txn}/evidence"))
        save(f"bundle-{txn}.json", http.get(f"/v1/disputes/{txn}/evidence", params={"format": "bundle"}))
        save(f"evidence-{txn}.pdf", http.get(f"/v1/disputes/{txn}/evidence", params={"format": "pdf"}))
        for copy in ("merchant", "customer"):
            save(f"receipt-{txn}-{copy}.txt", http.get(f"/v1/transactions/{txn}/receipt",
                                                       params={"copy": copy, "format": "text"}))
        save(f"receipt-{txn}.pdf", http.get(f"/v1/transactions/{txn}/receipt", params={"format": "pdf"}))
    [settlement_file] = sorted((data_dir / "acquirer-sim").glob("settlement-*.csv"))
    imported = save("settlement-import.json", http.post(
        "/v1/settlements", params={"file_name": settlement_file.name}, content=settlement_file.read_bytes(),
        headers={"content-type": "text/csv"}))
    settlement_id = json.loads(imported)["settlement_id"]
    save("settlement-matches.json", http.get(f"/v1/settlements/{settlement_id}/matches"))
    return sales


def add_exports(scanned: Scanned, out: Path) -> None:
    for path in sorted(out.iterdir()):
        scanned.add(f"export {path.name}", path.read_bytes())
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as book:
                for member in book.namelist():
                    scanned.add(f"export {path.name}!{member}", book.read(member))
        if path.suffix == ".pdf":
            text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True,
                                  timeout=30).stdout
            scanned.add(f"export {path.name} (pdftotext)", text)


@dataclass
class Day:
    scanned: Scanned
    simulate_output: str
    sales: list[str]
    exports: Path
    seconds: float


@pytest.fixture
def day(settings: Settings, tmp_path: Path) -> Iterator[Day]:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is needed to read the PDFs' text")
    started = time.monotonic()
    data_dir, agents, exports = tmp_path / "service", tmp_path / "agents", tmp_path / "exports"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = service_env(settings, data_dir)
    log, out = (tmp_path / "service.log").open("wb"), (tmp_path / "service.out").open("wb")
    service = subprocess.Popen([str(TILL), "serve", "--acquirer-sim", "--host", "127.0.0.1", "--port", str(port),
                                "--log-format", "json", "--log-level", "debug"],
                               env=env, cwd=tmp_path, stdout=out, stderr=log)
    simulate = None
    try:
        wait_until(lambda: service.poll() is None and httpx.get(f"{url}/healthz", timeout=1).status_code == 200, 30,
                   "the service did not answer /healthz")
        simulate = subprocess.Popen([str(TILL), "simulate", "--service-url", url, "--terminals", "2",
                                     "--sales", str(SALES_PER_TERMINAL), "--seed", "11", "--work-dir", str(agents),
                                     "--admin-token-file", str(data_dir / "admin.token")],
                                    env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        printed = simulate.communicate(timeout=120)[0].decode()
        assert simulate.returncode == 0, printed
        admin = (data_dir / "admin.token").read_text().strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=30) as http:
            wait_until(lambda: http.get("/v1/projections").json()["projections"][0]["lag"] == 0, 20,
                       "the projection did not catch up")
            reported = re.search(r"Reconciliation for (\d{4}-\d{2}-\d{2})", printed)
            day = reported.group(1) if reported else datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
            sales = export_everything(http, day, data_dir, exports)
        scanned = Scanned()
        scanned.add_files("database", data_dir, when="service running")
        scanned.add_files("agents", agents, when="after the day")
    finally:
        if simulate is not None and simulate.poll() is None:
            os.kill(simulate.pid, signal.SIGKILL)
            simulate.wait(timeout=5)
        stop(service)
        log.close()
        out.close()
    scanned.add_files("database", data_dir, when="service stopped")
    tables = scanned.add_sqlite_rows("database rows", data_dir, "*.sqlite")
    tables += scanned.add_sqlite_rows("acquirer journal rows (bank side)", data_dir / "acquirer-sim", "*.sqlite3")
    tables += scanned.add_sqlite_rows("agent journal rows", agents, "*.sqlite3")
    if settings.uses_postgres:
        for table, text in postgres_rows(settings).items():
            scanned.add(f"database rows: PostgreSQL {settings.database_schema}.{table}", text)
            tables += 1
    assert tables >= 5, "the scan found too few tables to be reading the stores"
    scanned.add("service log", (tmp_path / "service.log").read_bytes())
    scanned.add("service stdout", (tmp_path / "service.out").read_bytes())
    scanned.add("till simulate output", printed)
    add_exports(scanned, exports)
    yield Day(scanned, printed, sales, exports, time.monotonic() - started)


# ---- the tests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("sample", [
    "6222020000031234", "6222 0200 0003 1234", "4761-7390-0101-0010", "5454545454545454=28122010000000",
    "4761739001010010D29122010000", '{"pin": "1234"}', "pins=['1234']", "pin_block=241234FFFFFFFFFF",
    "5A0862220200000312345F3401", "4111111111111111", ";4111111111111111=2512101?",
])
def test_the_scan_finds_each_kind_of_card_data(sample: str) -> None:
    assert card_data_in(sample), sample


@pytest.mark.parametrize("sample", [
    "622202******1234", '"amount_minor": 1234', "trace 001234", '"pin_token": "' + "a1" * 32 + '"',
    '"cvm": "offline_pin"', "3f2b1c4d-1234-4321-8765-123456789012", "2026-11-25T05:05:35.123456+08:00",
    '"pin_tries_left": 2', "x" * 5 + "6222020000031234"[:12], "0000000111 00000 n \n0000000168 00000 n ",
])
def test_the_scan_passes_what_only_looks_like_card_data(sample: str) -> None:
    assert card_data_in(sample) == [], sample


def test_the_scan_finds_packed_bcd_pans_and_pin_blocks_in_binary_data() -> None:
    assert card_data_in_bytes(b"\x00\x5a\x08" + bytes.fromhex("6222020000031234") + b"\x00")
    assert card_data_in_bytes(b"\x00\x20\x00\x80\x08" + bytes.fromhex("241234FFFFFFFFFF"))


def test_after_a_simulated_day_no_card_data_is_at_rest_anywhere(day: Day) -> None:
    scanned = day.scanned

    assert "The ledger matches what was sold." in day.simulate_output
    assert scanned.sources["service log"].count(b'"logger": "till.access"') >= 50  # the JSON log was written
    assert len(day.sales) >= 5, "too few card sales to mean anything"
    # The scan reads the content itself (not compressed or encrypted bytes): the masked numbers are there.
    for where in ("database", "export bundle-", "agents", "acquirer journal rows"):
        assert re.search(r"\d{6}\*{6}\d{4}", scanned.text(where)), f"no masked PAN seen in {where}: the scan is blind"
    assert "unionpay" in scanned.text("export day.xlsx!")  # the workbook's sheets, unzipped (no PAN in a day report)
    assert any(label.endswith("(pdftotext)") and "******" in data.decode() for label, data in scanned.sources.items())
    hits = scanned.hits()
    assert hits == [], f"card data at rest ({len(hits)} hits):\n" + "\n".join(hits[:50])
    print(f"card data at rest: {len(scanned.sources)} sources, {sum(map(len, scanned.sources.values()))} bytes "
          f"scanned, {len(day.sales)} card sales exported, 0 hits; the day took {day.seconds:.1f} s")
    distinct = sorted({line.split(":")[0] for line in scanned.explained})
    print(f"  explained, not hits: {len(scanned.explained)} digit runs in raw database bytes made of column values "
          f"stored side by side ({', '.join(distinct[:6])}{' …' if len(distinct) > 6 else ''})")
