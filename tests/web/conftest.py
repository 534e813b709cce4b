"""Browser tests: Debian's Chromium (``/usr/bin/chromium``, headless) driven by Playwright, against the
service on a real loopback port, on SQLite and PostgreSQL. Playwright never downloads a browser here.

Each test saves a screenshot of every page it looks at under ``test-artifacts/screenshots/`` (or
``$TILL_TEST_ARTIFACTS/screenshots/``): CI keeps that folder as the run's artifacts.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from adapters.group_commit import run_alone
from adapters.settings import Settings
from api.auth import new_token
from domain.ledger import Ledger
from domain.stamp import Stamp
from tests.conftest import SteppingClock, make_services
from tests.counter import Stream, Till
from tests.e2e.live_service import LiveService

CHROMIUM = os.environ.get("TILL_TEST_CHROMIUM", "/usr/bin/chromium")
# As the machine notes say: without the background-networking flags Chromium keeps dialling out.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
ARTIFACTS = Path(os.environ.get("TILL_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
SCREENSHOTS = ARTIFACTS / "screenshots"
PASSWORD = "correct horse battery staple"
DAY = "2026-11-24"


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make install` (infra/install.sh installs Debian's chromium)",
                    pytrace=False)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, live: LiveService, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(base_url=live.url, viewport={"width": 1280, "height": 900}, accept_downloads=True,
                                  locale="zh-CN")
    context.set_default_timeout(10_000)
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page: Page, request: pytest.FixtureRequest, name: str) -> Path:
    """Save the whole page as ``<test>-<name>.png`` among the run's artifacts."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    path = SCREENSHOTS / f"{test}-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000, f"{path} is nearly empty"
    return path


@pytest.fixture(scope="session", autouse=True)
def fresh_screenshots() -> None:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)


@pytest.fixture
def web_clock() -> SteppingClock:
    return SteppingClock(datetime(2026, 11, 24, 1, 0, tzinfo=UTC))  # 09:00 in Shanghai


@pytest.fixture
def live(settings: Settings, web_clock: SteppingClock) -> Iterator[LiveService]:
    with LiveService(lambda: make_services(settings, web_clock)) as service:
        yield service


def add_staff(live: LiveService, user_name: str, role: str, display_name: str) -> None:
    services = live.services
    assert services is not None
    run_alone(services.ledger, Ledger.open_staff_account(Stamp(None, None, None, services.clock.now()), user_name,
                                                         role, display_name, services.hasher.hash(PASSWORD)))


def sign_in(page: Page, user_name: str, then: str = "/ui/") -> None:
    page.goto(then)
    page.fill("#user_name", user_name)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_selector("#signed-in")


@dataclass
class StoreDay:
    """A day at two stores, rung up over HTTP: what the pages should show."""

    admin: dict[str, str]
    tills: dict[str, Till] = field(default_factory=dict)
    sales: dict[str, Stream] = field(default_factory=dict)

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def store_day(live: LiveService, web_clock: SteppingClock) -> Iterator[StoreDay]:
    """Store S1: a Visa sale at 09:xx, a UnionPay sale at 11:xx, a cash sale, a voided sale, the drawer
    counted 10.00 short; settled (a Z report). Store S2: one Mastercard sale at 14:xx, drawer not counted."""
    services = live.services
    assert services is not None
    admin_token = new_token()
    run_alone(services.ledger, Ledger.issue_token(Stamp(None, None, None, services.clock.now()), admin_token,
                                                  "admin", None, "web tests"))
    client = httpx.Client(base_url=live.url, timeout=10)
    day = StoreDay(admin={"Authorization": f"Bearer {admin_token}"})
    one = Till(client, admin_token).register(store_id="S1").open(float_minor=50_000)  # type: ignore[arg-type]
    two = Till(client, admin_token).register(store_id="S2").open(float_minor=20_000)  # type: ignore[arg-type]
    day.tills = {"S1": one, "S2": two}
    day.sales["visa"] = one.card_sale(12_345, brand="visa", last4="4242")
    web_clock.current = web_clock.current.replace(hour=3)  # 11:00 in Shanghai
    day.sales["unionpay"] = one.card_sale(8_800, brand="unionpay", last4="1234")
    day.sales["cash"] = one.cash_sale(2_500, 5_000)
    voided = one.card_sale(3_000, brand="unionpay", last4="5678")
    day.sales["void"] = one.card_sale(3_000, brand="unionpay", last4="5678", kind="void", original=voided)
    one.till_event({"type": "CashCounted", "counted_minor": 50_000 + 2_500 - 1_000, "note": "short by 10.00"})
    one.settle()
    web_clock.current = web_clock.current.replace(hour=6)  # 14:00 in Shanghai
    day.sales["mastercard"] = two.card_sale(4_200, brand="mastercard", last4="5454")
    services.views().runner.catch_up()
    try:
        yield day
    finally:
        client.close()


def api_get(live: LiveService, path: str, headers: dict[str, str], **params: Any) -> httpx.Response:
    return httpx.get(live.url + path, headers=headers, params=params, timeout=10)
