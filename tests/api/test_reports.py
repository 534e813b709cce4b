"""Receipts, the day report and dispute evidence over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from typing import Any

import pytest
from starlette.testclient import TestClient

import api.routers.reports as reports
from api.services import Services
from projections.receipt import display_width
from tests.api.test_auth import issue
from tests.counter import Till

DAY = "2026-11-24"  # the test clock's day in Asia/Shanghai


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def staff(client: TestClient, admin_token: str) -> dict[str, dict[str, str]]:
    return {role: bearer(issue(client, admin_token, role)["token"]) for role in ("accountant", "dispute")}


def caught_up(services: Services) -> int:
    services.views().runner.catch_up()
    return services.views().projection.position()


def test_a_terminal_reads_both_receipt_copies_as_json_and_as_32_and_48_column_text(till: Till) -> None:
    sale = till.card_sale(12_345, brand="visa", last4="4242")

    merchant = till.client.get(f"/v1/transactions/{sale.stream_id}/receipt?copy=merchant", headers=till.headers)
    text32 = till.client.get(f"/v1/transactions/{sale.stream_id}/receipt?format=text", headers=till.headers)
    text48 = till.client.get(f"/v1/transactions/{sale.stream_id}/receipt?format=text&columns=48&lang=en",
                             headers=till.headers)

    assert merchant.status_code == 200, merchant.text
    body = merchant.json()
    assert body["document"]["copy"] == "merchant" and re.fullmatch(r"[0-9a-f]{64}", body["receipt_sha256"])
    values = {line["key"]: line["value"]["en"] for line in body["document"]["lines"]}
    assert values["card_no"].endswith("4242") and "*" in values["card_no"]
    assert values["amount"] == "RMB 123.45"
    assert text32.status_code == 200 and text48.status_code == 200 and "持卡人存根" in text32.text
    assert all(display_width(line) == 32 for line in text32.text.splitlines())
    assert all(display_width(line) == 48 for line in text48.text.splitlines()) and "CARDHOLDER COPY" in text48.text


def test_a_receipt_is_refused_before_the_outcome_and_to_another_terminal(
        till: Till, client: TestClient, admin_token: str) -> None:
    pending = till.begin()
    other = Till(client, admin_token).register().open()
    sale = till.card_sale(500)

    early = till.client.get(f"/v1/transactions/{pending.stream_id}/receipt", headers=till.headers)
    theirs = client.get(f"/v1/transactions/{sale.stream_id}/receipt", headers=other.headers)

    assert early.status_code == 422 and early.json()["code"] == "out_of_sequence"
    assert theirs.status_code == 403 and theirs.json()["code"] == "forbidden"


def test_the_accountant_reads_the_day_report_as_json_and_csv_once_the_view_has_the_last_append(
        till: Till, services: Services, staff: dict[str, dict[str, str]]) -> None:
    till.card_sale(10_000, brand="visa")
    till.cash_sale(1_500, 2_000)
    last = till.till_event({"type": "CashCounted", "counted_minor": 51_500, "note": "ok"})
    position = caught_up(services)
    assert position >= last["position"]

    report = till.client.get(f"/v1/reports/day?date={DAY}&wait_for_position={last['position']}",
                             headers=staff["accountant"])
    as_csv = till.client.get(f"/v1/reports/day?date={DAY}&format=csv", headers=staff["accountant"])

    assert report.status_code == 200, report.text
    body = report.json()
    assert body["position"] == position
    text = repr(body)
    assert "10000" in text and "1500" in text  # both sales are in the day's lines
    visa = [line for line in body["lines"] if line.get("brand") == "visa"]
    assert visa and visa[0]["fee_minor"] == 55 and visa[0]["net_minor"] == 9_945  # 5,500 ppm of 100.00
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    assert list(csv.reader(io.StringIO(as_csv.text)))[0]


def test_a_read_that_waits_for_a_position_the_view_has_not_reached_is_a_503_with_a_stable_code(
        till: Till, services: Services, staff: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "TIMEOUT_S", 0.2)
    appended = till.card_sale(700)
    head = services.views().runner.head()

    response = till.client.get(f"/v1/reports/day?date={DAY}&wait_for_position={head}", headers=staff["accountant"])

    assert appended.version > 0
    assert response.status_code == 503 and response.json()["code"] == "projection_behind"


def test_the_dispute_handler_finds_a_sale_by_rrn_and_gets_its_evidence_with_timeline_receipts_and_chain(
        till: Till, services: Services, staff: dict[str, dict[str, str]]) -> None:
    sale = till.card_sale(8_800, brand="unionpay", last4="9876")
    history = till.history(sale)
    rrn = next(e for e in history["events"] if e["type"] == "Authorized")["data"]["rrn"]
    caught_up(services)

    found = till.client.get(f"/v1/disputes/search?rrn={rrn}", headers=staff["dispute"])
    evidence = till.client.get(f"/v1/disputes/{sale.stream_id}/evidence", headers=staff["dispute"])
    as_of = till.client.get(f"/v1/disputes/{sale.stream_id}/evidence?as_of_version=3", headers=staff["dispute"])

    assert found.status_code == 200 and [m["transaction_id"] for m in found.json()["matches"]] == [sale.stream_id]
    assert evidence.status_code == 200, evidence.text
    bundle: dict[str, Any] = evidence.json()
    assert [e["version"] for e in bundle["timeline"]] == list(range(1, sale.version + 1))
    assert all(e["server_time"] and e["terminal_time"] for e in bundle["timeline"])
    assert bundle["hash_chain"]["valid"] is True
    assert bundle["card"]["chip_read"] is True and bundle["cvm"]["pin_verified"] is True
    assert bundle["chip_data"]["aid"] and bundle["summary"]["rrn"] == rrn
    assert set(bundle["receipts"]) == {"merchant", "customer"}
    assert as_of.json()["state_as_of"]["version"] == 3 and len(as_of.json()["timeline"]) == 3


def test_reports_and_evidence_are_for_their_roles_only(
        till: Till, services: Services, staff: dict[str, dict[str, str]]) -> None:
    sale = till.card_sale(300)
    caught_up(services)

    assert till.client.get(f"/v1/reports/day?date={DAY}", headers=till.headers).status_code == 403
    assert till.client.get(f"/v1/reports/day?date={DAY}", headers=staff["dispute"]).status_code == 403
    assert till.client.get(f"/v1/disputes/{sale.stream_id}/evidence", headers=staff["accountant"]).status_code == 403
    assert till.client.get("/v1/disputes/search?rrn=1", headers=till.headers).status_code == 403
    assert till.client.get(f"/v1/reports/day?date={DAY}").status_code == 401


def test_a_dispute_search_needs_a_usable_key(till: Till, staff: dict[str, dict[str, str]]) -> None:
    response = till.client.get("/v1/disputes/search?trace_no=000001", headers=staff["dispute"])

    assert response.status_code == 422 and response.json()["code"] == "invalid_input"


def test_the_accountant_lists_the_days_z_reports_and_reads_one_as_recorded_at_settlement_and_a_terminal_its_own(
        till: Till, services: Services, staff: dict[str, dict[str, str]]) -> None:
    till.card_sale(6_600, brand="unionpay")
    till.settle()
    caught_up(services)

    listed = till.client.get(f"/v1/reports/z?date={DAY}", headers=staff["accountant"])
    [summary] = listed.json()["z_reports"]
    one = till.client.get(f"/v1/reports/z/{summary['id']}", headers=staff["accountant"])

    assert (summary["batch_no"], summary["z_number"], summary["terminal_no"]) == ("000001", 1, till.terminal_no)
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["chain_valid"] is True and body["report"]["report"] == "Z"
    assert body["report"]["totals"][0]["gross_minor"] == 6_600
    assert till.client.get(f"/v1/reports/z/{summary['id']}", headers=till.headers).json() == body
    other = Till(till.client, till.admin_token).register()
    assert till.client.get(f"/v1/reports/z/{summary['id']}", headers=other.headers).status_code == 403


def test_the_accountant_imports_a_settlement_file_once_and_sees_it_matched_against_the_ledger(
        till: Till, services: Services, staff: dict[str, dict[str, str]]) -> None:
    settled = till.card_sale(4_000, brand="unionpay", last4="1234")
    missing = till.card_sale(1_500)
    rrn = next(e for e in till.history(settled)["events"] if e["type"] == "Authorized")["data"]["rrn"]
    trace = till.state(settled)["trace_no"]
    caught_up(services)
    header = "settlement_date,merchant_no,terminal_no,batch_no,trace_no,rrn,auth_code,masked_card,amount,fee,net,type\n"
    body = (header + f"2026-11-24,898310048990001,{till.terminal_no},000001,{trace},{rrn},A1B2C3,622202******1234,"
            "40.00,0.15,39.85,sale\n"
            f"2026-11-24,898310048990001,{till.terminal_no},000001,000777,000000000777,B2C3D4,622202******5678,"
            "9.99,0,9.99,sale\n").encode()

    first = till.client.post("/v1/settlements?file_name=acq-20261124.csv", content=body,
                             headers={**staff["accountant"], "content-type": "text/csv"})
    again = till.client.post("/v1/settlements", content=body, headers={**staff["accountant"], "content-type": "text/csv"})

    assert first.status_code == 201, first.text
    result = first.json()
    assert result["summary"] == {"matched": 1, "amount_differs": 0, "ledger_only": 1, "file_only": 1}
    assert result["ledger_only"][0]["transaction_id"] == missing.stream_id
    assert result["matched"][0]["ledger"]["transaction_id"] == settled.stream_id
    assert again.status_code == 200 and again.json()["imported"] is False
    assert again.json()["settlement_id"] == result["settlement_id"]
    matches = till.client.get(f"/v1/settlements/{result['settlement_id']}/matches", headers=staff["accountant"])
    assert matches.status_code == 200 and matches.json()["summary"] == result["summary"]


def test_a_settlement_file_with_a_bad_line_is_refused_whole_with_the_line_named(
        till: Till, staff: dict[str, dict[str, str]]) -> None:
    body = (b"settlement_date,merchant_no,terminal_no,batch_no,trace_no,rrn,auth_code,masked_card,amount,fee,net,type\n"
            b"2026-11-24,898310048990001,30000001,000001,000001,000000000001,A1,622202******1234,1.00,0,1.00,sale\n"
            b"2026-11-24,898310048990001,30000001,000001,000002,000000000002,A1,622202******1234,one,0,1.00,sale\n")

    response = till.client.post("/v1/settlements", content=body, headers={**staff["accountant"], "content-type": "text/csv"})

    assert response.status_code == 422 and response.json()["code"] == "invalid_input"
    assert "line 2" in response.json()["detail"]


def test_receipts_evidence_and_the_day_report_also_come_as_pdf_and_xlsx(
        till: Till, services: Services, staff: dict[str, dict[str, str]]) -> None:
    sale = till.card_sale(2_000)
    caught_up(services)

    receipt = till.client.get(f"/v1/transactions/{sale.stream_id}/receipt?format=pdf&columns=48", headers=till.headers)
    evidence = till.client.get(f"/v1/disputes/{sale.stream_id}/evidence?format=pdf", headers=staff["dispute"])
    report = till.client.get(f"/v1/reports/day?date={DAY}&format=xlsx", headers=staff["accountant"])

    assert receipt.status_code == 200 and receipt.headers["content-type"] == "application/pdf"
    assert receipt.content.startswith(b"%PDF-") and receipt.content.rstrip().endswith(b"%%EOF")
    assert evidence.status_code == 200 and evidence.content.startswith(b"%PDF-")
    assert report.status_code == 200 and report.headers["content-type"].endswith("spreadsheetml.sheet")
    with zipfile.ZipFile(io.BytesIO(report.content)) as book:
        sheets = [name for name in book.namelist() if name.startswith("xl/worksheets/")]
        assert len(sheets) == 6
        assert b"2000" in book.read("xl/worksheets/sheet1.xml")
