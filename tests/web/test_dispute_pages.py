"""The dispute handler in a real browser: search four ways, open a transaction's evidence (timeline with
both clocks, chip data, CVM, receipts as printed, hash-chain verdict), download the bundle and the PDF."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page

from api.cli import main as till_main
from tests.e2e.live_service import LiveService
from tests.web.conftest import DAY, StoreDay, add_staff, api_get, screenshot, sign_in

FULL_PAN = re.compile(r"\d{13,19}")


@pytest.fixture(autouse=True)
def dispute_handler(live: LiveService) -> None:
    add_staff(live, "wang.zhengyi", "dispute", "王争议")


def search(page: Page, **fields: str) -> None:
    page.goto("/ui/disputes")
    for name, value in fields.items():
        page.fill(f"#{name}", value)
    page.click("#search")
    page.wait_for_load_state()


def test_the_dispute_handler_finds_a_sale_by_last4_date_and_amount_and_by_rrn_and_by_terminal_and_trace(
        page: Page, live: LiveService, store_day: StoreDay, request: pytest.FixtureRequest) -> None:
    sign_in(page, "wang.zhengyi")
    search(page, last4="4242", date=DAY, amount_minor="12345")
    screenshot(page, request, "search")
    assert page.locator("#matches tbody tr").count() == 1
    assert "476173******4242" in page.inner_text("#matches")

    summary = api_get(live, f"/v1/disputes/{store_day.sales['visa'].stream_id}/evidence", store_day.admin).json()
    for fields in ({"rrn": summary["summary"]["rrn"]},
                   {"terminal_no": summary["summary"]["terminal_no"], "trace_no": summary["summary"]["trace_no"]}):
        search(page, **fields)
        assert page.locator("#matches tbody tr").count() == 1, fields
    search(page, last4="4242")  # not enough to search by: the page says how to search
    assert page.locator("#message.alert").count() == 1


def test_the_dispute_handler_reads_the_evidence_and_downloads_a_bundle_that_verifies_and_the_pdf(
        page: Page, live: LiveService, store_day: StoreDay, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    sale = store_day.sales["visa"]
    sign_in(page, "wang.zhengyi")
    search(page, last4="4242", date=DAY)
    page.click("#matches a.open-transaction")
    page.wait_for_selector("#chain-verdict")
    screenshot(page, request, "evidence")

    assert "✔" in page.inner_text("#chain-verdict")
    timeline = page.locator("#timeline tbody tr")
    assert timeline.count() == 10 and "TransactionOpened" in timeline.first.inner_text()
    first = timeline.first.locator("td")
    # Both clocks: the server's in the display zone (+08:00), the terminal's as it recorded it.
    assert first.nth(2).inner_text().endswith("+08:00") and first.nth(3).inner_text()
    assert "A0000000031010" in page.inner_text("#chip-data") and "online" in page.inner_text("#cvm")
    assert "4242" in page.inner_text("#receipt-customer") and "1" in page.inner_text("#receipt-merchant figcaption")
    body = page.inner_text("body")
    assert not [run for run in FULL_PAN.findall(body) if run.endswith("4242")], "more than the masked PAN shown"

    with page.expect_download() as bundle_download:
        page.click("#download-bundle")
    with page.expect_download() as pdf_download:
        page.click("#download-pdf")
    bundle = json.loads(bundle_download.value.path().read_bytes())
    assert bundle["evidence"]["transaction_id"] == sale.stream_id
    public_key = tmp_path / "signing.pub.pem"
    public_key.write_text(api_get(live, "/v1/keys/signing", {}).json()["public_key"])
    # The offline verifier a dispute handler runs: every hash, the chain and the service's signature.
    assert till_main(["verify", str(bundle_download.value.path()), "--public-key", str(public_key)]) == 0
    assert pdf_download.value.path().read_bytes().startswith(b"%PDF-")


def test_the_pages_speak_chinese_or_english_and_remember_the_choice(
        page: Page, store_day: StoreDay, request: pytest.FixtureRequest) -> None:
    sign_in(page, "wang.zhengyi")
    page.goto(f"/ui/disputes/{store_day.sales['visa'].stream_id}")
    assert "时间线" in page.inner_text("main")
    page.click("text=English")
    page.wait_for_url("**lang=en**")
    screenshot(page, request, "evidence-en")
    assert "Timeline" in page.inner_text("main") and "Hash-chain verdict" in page.inner_text("main")
    page.goto("/ui/disputes")  # no ?lang: the cookie remembers
    assert "Search by RRN" in page.inner_text("main")


def test_on_a_tablet_the_evidence_page_fits_the_screen_and_the_wide_tables_scroll_inside_it(
        browser, live: LiveService, store_day: StoreDay, request: pytest.FixtureRequest) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=live.url, viewport={"width": 768, "height": 1024}, is_mobile=True,
                                  has_touch=True, locale="zh-CN")
    try:
        tablet = context.new_page()
        sign_in(tablet, "wang.zhengyi", then=f"/ui/disputes/{store_day.sales['visa'].stream_id}")
        screenshot(tablet, request, "evidence-tablet")
        assert tablet.evaluate("document.documentElement.scrollWidth") <= 768
    finally:
        context.close()


def test_a_dispute_handler_is_refused_the_accountants_page_and_a_wrong_password_is_refused(
        page: Page, live: LiveService, request: pytest.FixtureRequest) -> None:
    page.goto("/ui/sign-in")
    page.fill("#user_name", "wang.zhengyi")
    page.fill("#password", "not the password")
    page.click("#sign-in")
    assert "用户名或密码错误" in page.inner_text("#message")
    sign_in(page, "wang.zhengyi")
    response = page.goto(f"/ui/day?date={DAY}")
    screenshot(page, request, "forbidden")
    assert response is not None and response.status == 403 and "无权" in page.inner_text("#message")
    page.click("#sign-out")
    page.wait_for_url("**/ui/sign-in")
    assert page.goto("/ui/disputes") is not None and "/ui/sign-in" in page.url  # the session is gone
