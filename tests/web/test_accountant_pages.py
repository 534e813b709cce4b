"""The accountant in a real browser: sign in, pick a day and a store, check the figures against the
API, see the cash variance, download the exports, open a Z report, upload a settlement file."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import Page

from tests.e2e.live_service import LiveService
from tests.web.conftest import DAY, StoreDay, add_staff, api_get, screenshot, sign_in


@pytest.fixture(autouse=True)
def accountant(live: LiveService) -> None:
    add_staff(live, "li.kuaiji", "accountant", "李会计")


def day_report(live: LiveService, day: StoreDay, store: str | None = None) -> dict:  # type: ignore[type-arg]
    response = api_get(live, "/v1/reports/day", day.admin, date=DAY, **({"store_id": store} if store else {}))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_the_accountant_signs_in_picks_a_day_and_a_store_and_sees_the_totals_the_api_reports(
        page: Page, live: LiveService, store_day: StoreDay, request: pytest.FixtureRequest) -> None:
    sign_in(page, "li.kuaiji", then=f"/ui/day?date={DAY}")
    screenshot(page, request, "day-all-stores")
    everything = day_report(live, store_day)
    assert page.get_attribute("#gross-CNY", "data-minor") == str(everything["totals"][0]["gross_minor"])

    page.select_option("#store", "S1")
    page.click("#show")
    page.wait_for_url("**store=S1**")
    screenshot(page, request, "day-store-S1")
    s1 = day_report(live, store_day, "S1")
    assert page.get_attribute("#gross-CNY", "data-minor") == str(s1["totals"][0]["gross_minor"])
    assert s1["totals"][0]["gross_minor"] == 12_345 + 8_800 + 2_500  # the void cancels its sale
    # Per terminal, operator and brand+type; the void shows as a line of its own with a negative gross.
    assert page.locator("#by-terminal tbody tr").count() == 1
    assert "-30.00" in page.inner_text("#by-brand")
    # The drawer counted 10.00 short stands out; the chart has bars at 09:00 and 11:00 (Shanghai).
    short = page.locator("#cash tbody tr.variance")
    assert short.count() == 1 and "-10.00" in short.inner_text()
    heights = [int(page.locator("#chart-CNY rect").nth(h).get_attribute("height") or 0) for h in range(24)]
    assert [h for h, px in enumerate(heights) if px > 0] == [9, 11]


def test_the_accountant_downloads_the_csv_and_xlsx_and_opens_the_days_z_report(
        page: Page, live: LiveService, store_day: StoreDay, request: pytest.FixtureRequest) -> None:
    sign_in(page, "li.kuaiji", then=f"/ui/day?date={DAY}&store=S1")
    with page.expect_download() as csv_download:
        page.click("#download-csv")
    with page.expect_download() as xlsx_download:
        page.click("#download-xlsx")
    csv_text = csv_download.value.path().read_bytes().decode("utf-8")
    api_csv = api_get(live, "/v1/reports/day", store_day.admin, date=DAY, store_id="S1", format="csv").text
    rows = list(csv.reader(io.StringIO(csv_text)))
    assert csv_text == api_csv and rows[0][:3] == ["store_id", "merchant_no", "terminal_no"]
    assert csv_download.value.suggested_filename == f"till-ledger-{DAY}-S1.csv"
    with open(xlsx_download.value.path(), "rb") as xlsx:
        assert xlsx.read(2) == b"PK"  # a zip container, as every .xlsx is

    page.click("#z-reports a")
    page.wait_for_selector("#z-chain")
    screenshot(page, request, "z-report")
    assert "完整" in page.inner_text("#z-chain")
    assert "123.45" in page.inner_text("#z-by-brand")


def test_the_accountant_uploads_a_settlement_file_and_sees_the_mismatches_highlighted(
        page: Page, live: LiveService, store_day: StoreDay, request: pytest.FixtureRequest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s1 = store_day.tills["S1"]
    rows = {name: api_get(live, f"/v1/disputes/{store_day.sales[name].stream_id}/evidence",
                          store_day.admin).json()["summary"] for name in ("visa", "unionpay")}
    header = "settlement_date,merchant_no,terminal_no,batch_no,trace_no,rrn,auth_code,masked_card,amount,fee,net,type"
    visa, unionpay = rows["visa"], rows["unionpay"]
    lines = [header,
             # the Visa sale as recorded
             f"{DAY},898310048990001,{s1.terminal_no},000001,{visa['trace_no']},{visa['rrn']},A1B2C3,"
             f"476173******4242,123.45,0.68,122.77,sale",
             # the UnionPay sale, but the acquirer settled 1.00 more
             f"{DAY},898310048990001,{s1.terminal_no},000001,{unionpay['trace_no']},{unionpay['rrn']},A1B2C3,"
             f"622202******1234,89.00,0.34,88.66,sale",
             # a sale the ledger never saw
             f"{DAY},898310048990001,{s1.terminal_no},000001,000999,999999999999,ZZ9999,"
             f"622202******9999,5.00,0.02,4.98,sale"]
    upload = tmp_path / "settlement-20261124.csv"
    upload.write_text("\n".join(lines) + "\n")

    sign_in(page, "li.kuaiji", then=f"/ui/day?date={DAY}")
    page.set_input_files("#settlement-file", str(upload))
    page.click("#upload")
    page.wait_for_selector("#verdict")
    screenshot(page, request, "settlement")
    summary = {item.get_attribute("data-kind"): item for item in page.locator("#settlement-summary li").all()}
    assert "1" in summary["matched"].inner_text() and "1" in summary["amount_differs"].inner_text()
    assert "mismatch" in (summary["amount_differs"].get_attribute("class") or "")
    assert "mismatch" not in (summary["matched"].get_attribute("class") or "")
    assert page.locator("#amount-differs tr.mismatch").count() == 1
    assert page.locator("#file-only tr.mismatch").count() == 1
    assert "账不平" in page.inner_text("#verdict")
