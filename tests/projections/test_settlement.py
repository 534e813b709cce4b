"""The settlement file format, its validation and the three-way match (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from domain.errors import CardDataRejected, InvalidInput
from domain.settlement import SettlementFile
from domain.stamp import Stamp
from projections.settlement_file import parse_settlement_csv
from projections.settlement_match import match

HEADER = "settlement_date,merchant_no,terminal_no,batch_no,trace_no,rrn,auth_code,masked_card,amount,fee,net,type\r\n"
STAMP = Stamp(None, None, None, datetime(2026, 11, 25, tzinfo=UTC))


def line(trace: str, rrn: str, amount: str, fee: str, net: str, kind: str = "sale",
         card: str = "622202******1234") -> str:
    return f"2026-11-24,898310048990001,30000001,000001,{trace},{rrn},A1B2C3,{card},{amount},{fee},{net},{kind}\r\n"


def row(trace: str, rrn: str, amount: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"txn-{trace}", "payment_method": "card", "status": "completed", "outcome": "authorized",
            "kind": "sale", "terminal_no": "30000001", "batch_no": "000001", "trace_no": trace, "rrn": rrn,
            "auth_code": "A1B2C3", "card": {"masked_pan": "622202******1234"}, "amount_minor": amount,
            "currency": "CNY", "voided_by": None, **extra}


def test_a_file_is_parsed_into_integer_minor_units_without_floating_point() -> None:
    data = ("\ufeff" + HEADER + line("000001", "000000000001", "123.45", "0.47", "122.98")
            + line("000002", "000000000002", "0.1", "0", "0.1", kind="REFUND")).encode()

    lines = parse_settlement_csv(data)

    assert [(l["amount_minor"], l["fee_minor"], l["net_minor"], l["type"]) for l in lines] == [
        (12_345, 47, 12_298, "sale"), (10, 0, 10, "refund")]
    assert SettlementFile.import_file(STAMP, "a" * 64, "f.csv", lines).lines == lines


@pytest.mark.parametrize("bad, code, where", [
    (line("000001", "000000000001", "1.234", "0", "1.234"), "invalid_input", "amount"),
    (line("000001", "12345", "1.00", "0", "1.00"), "invalid_input", "rrn"),
    (line("000001", "000000000001", "1.00", "0.10", "1.00"), "invalid_input", "net_minor"),
    (line("000001", "000000000001", "1.00", "0", "1.00", kind="capture"), "invalid_input", "type"),
])
def test_a_bad_line_is_refused_naming_its_line_and_column(bad: str, code: str, where: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        SettlementFile.import_file(STAMP, "a" * 64, "f.csv",
                                   parse_settlement_csv((HEADER + line("000009", "000000000009", "1", "0", "1") + bad).encode()))
    assert refused.value.code == code and "line 2" in refused.value.detail and where in refused.value.detail


def test_a_full_card_number_in_a_settlement_file_is_refused_and_not_echoed() -> None:
    pan = "6222021234567890128"
    lines = parse_settlement_csv((HEADER + line("000001", "000000000001", "1", "0", "1", card=pan)).encode())

    with pytest.raises((CardDataRejected, InvalidInput)) as refused:
        SettlementFile.import_file(STAMP, "a" * 64, "f.csv", lines)
    assert pan not in str(refused.value.detail)


def test_a_header_without_a_required_column_is_refused() -> None:
    with pytest.raises(InvalidInput, match="rrn"):
        parse_settlement_csv(b"settlement_date,merchant_no\r\n2026-11-24,898310048990001\r\n")


def test_the_match_sorts_every_line_into_matched_amount_differs_ledger_only_and_file_only() -> None:
    lines = parse_settlement_csv((HEADER + line("000001", "000000000001", "10.00", "0.04", "9.96")
                                  + line("000002", "000000000002", "20.00", "0.08", "19.92")
                                  + line("000099", "000000000099", "5.00", "0", "5.00")).encode())
    ledger = [row("000001", "000000000001", 1_000), row("000002", "000000000002", 2_500),
              row("000003", "000000000003", 700), row("000004", "000000000004", 900, voided_by="v"),
              row("000005", "", 800, kind="void"), row("000006", "000000000006", 300, outcome="declined")]

    result = match(lines, ledger)

    assert result["summary"] == {"matched": 1, "amount_differs": 1, "ledger_only": 1, "file_only": 1}
    assert result["balanced"] is False
    assert result["amount_differs"][0]["ledger"]["amount_minor"] == 2_500
    assert result["amount_differs"][0]["file"]["amount_minor"] == 2_000
    assert [e["transaction_id"] for e in result["ledger_only"]] == ["txn-000003"]
    assert result["file_only"][0]["line"] == 3


def test_a_line_without_its_rrn_in_the_ledger_matches_by_terminal_batch_and_trace() -> None:
    lines = parse_settlement_csv((HEADER + line("000001", "999999999999", "10.00", "0", "10.00")).encode())

    result = match(lines, [row("000001", "000000000001", 1_000)])

    assert result["balanced"] is True and result["summary"]["matched"] == 1
