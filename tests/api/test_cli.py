"""The `till` command line against a real store (SQLite and PostgreSQL through TILL_* variables)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from uuid import uuid4

import pytest

from adapters.settings import Settings
from api.cli import main
from tests.conftest import SteppingClock, make_services, point_env_at
from tests.integration.counter_commands import CounterCommands


@pytest.fixture
def store_with_a_day(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CounterCommands:
    """A terminal, a till and one card sale of 25.00, written before the CLI runs; TILL_* point at it."""
    clock = SteppingClock()
    services = make_services(settings, clock)
    counter = CounterCommands(clock)
    try:
        for command in [*counter.setup(), *counter.card_sale(uuid4(), 2_500)]:
            services.executor.run(command)
    finally:
        services.close()
    point_env_at(settings, monkeypatch)
    monkeypatch.setenv("TILL_EMBEDDED_PROJECTIONS", "false")
    return counter


def test_report_day_prints_the_days_lines_as_csv_after_bringing_the_view_up_to_date(
        store_with_a_day: CounterCommands, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "day", "2026-11-24", "--format", "csv"]) == 0

    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out.split("\r\n\r\n")[0])))
    assert [(r["kind"], r["gross_minor"], r["terminal_no"]) for r in rows] == [("sale", "2500", "30000001")]


def test_project_rebuild_and_status_report_the_position_and_no_lag(
        store_with_a_day: CounterCommands, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["project", "rebuild", "ledger_view"]) == 0
    assert main(["project", "status"]) == 0

    out = capsys.readouterr().out
    assert "ledger_view rebuilt from zero" in out
    status = out.strip().splitlines()[-1].split()
    assert status[0] == "ledger_view" and status[1] == status[2] and status[3] == "0"


def test_settlement_import_matches_the_file_and_exits_1_when_it_does_not_balance(
        store_with_a_day: CounterCommands, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "acq.csv"
    file.write_text("settlement_date,merchant_no,terminal_no,batch_no,trace_no,rrn,auth_code,masked_card,amount,fee,"
                    "net,type\n2026-11-24,898310048990001,30000001,000001,000404,000000000404,A1B2C3,"
                    "622202******1234,1.00,0,1.00,sale\n")

    assert main(["settlement", "import", str(file)]) == 1

    result = json.loads(capsys.readouterr().out)
    assert result["summary"] == {"matched": 0, "amount_differs": 0, "ledger_only": 1, "file_only": 1}


def test_report_day_writes_a_workbook_with_format_xlsx(
        store_with_a_day: CounterCommands, tmp_path: Path) -> None:
    out = tmp_path / "day.xlsx"

    assert main(["report", "day", "2026-11-24", "--format", "xlsx", "--output", str(out)]) == 0
    assert main(["report", "day", "2026-11-24", "--format", "xlsx"]) == 2  # a workbook needs a file

    with zipfile.ZipFile(out) as book:
        assert b"2500" in book.read("xl/worksheets/sheet1.xml")
