"""Web sign-in, sessions and CSRF over HTTP, on SQLite and PostgreSQL: who gets in, for how long, and
what a forged request or a hostile link achieves (nothing)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from adapters.group_commit import run_alone
from adapters.settings import Settings
from api.app import create_app
from api.services import Services
from api.web.session import SESSION_COOKIE
from domain.ledger import Ledger
from domain.stamp import Stamp
from tests.api.test_reports import DAY, caught_up
from tests.counter import Till

PASSWORD = "correct horse battery staple"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # No account cache: a change made "elsewhere" (the CLI) shows at once, as it does after TILL_TOKEN_CACHE_S.
    return settings.model_copy(update={"token_cache_s": 0.0})


@pytest.fixture
def browser(services: Services) -> Iterator[TestClient]:
    """A client that follows no redirects, so each hop can be checked."""
    with TestClient(create_app(services=services), raise_server_exceptions=False,
                    follow_redirects=False) as client:
        yield client


def open_account(services: Services, user_name: str, role: str) -> None:
    run_alone(services.ledger, Ledger.open_staff_account(Stamp(None, None, None, services.clock.now()), user_name,
                                                         role, user_name.title(), services.hasher.hash(PASSWORD)))


def sign_in(client: TestClient, user_name: str, password: str = PASSWORD, next_page: str = "") -> object:
    form = client.get("/ui/sign-in")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token, form.text
    return client.post("/ui/sign-in", data={"user_name": user_name, "password": password, "csrf": token.group(1),
                                            "next": next_page})


def csrf_of(page_html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page_html)
    assert found
    return found.group(1)


def test_a_page_without_a_session_sends_the_reader_to_sign_in_and_back(browser: TestClient, services: Services) -> None:
    open_account(services, "ana", "accountant")
    first = browser.get(f"/ui/day?date={DAY}")
    assert first.status_code == 303 and first.headers["location"] == f"/ui/sign-in?next=%2Fui%2Fday%3Fdate%3D{DAY}"

    signed = sign_in(browser, "ana", next_page=f"/ui/day?date={DAY}")
    assert signed.status_code == 303 and signed.headers["location"] == f"/ui/day?date={DAY}"  # type: ignore[attr-defined]
    cookie = signed.headers["set-cookie"]  # type: ignore[attr-defined]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert browser.get(f"/ui/day?date={DAY}").status_code == 200


def test_the_root_leads_to_the_pages_and_each_role_lands_on_its_own_page(browser: TestClient,
                                                                         services: Services) -> None:
    assert browser.get("/").headers["location"] == "/ui/"
    assert browser.get("/ui/").headers["location"] == "/ui/sign-in"
    open_account(services, "dora", "dispute")
    assert sign_in(browser, "dora").headers["location"] == "/ui/disputes"  # type: ignore[attr-defined]
    assert browser.get("/ui/").headers["location"] == "/ui/disputes"


def test_a_next_page_on_another_site_is_ignored(browser: TestClient, services: Services) -> None:
    open_account(services, "ana", "accountant")
    for hostile in ("https://evil.example/", "//evil.example/ui/", "/ui/\\evil", "javascript:alert(1)"):
        browser.cookies.clear()
        assert sign_in(browser, "ana", next_page=hostile).headers["location"] == "/ui/day"  # type: ignore[attr-defined]


def test_a_wrong_password_an_unknown_name_and_a_missing_form_token_are_refused(browser: TestClient,
                                                                              services: Services) -> None:
    open_account(services, "ana", "accountant")
    wrong = sign_in(browser, "ana", "not the password")
    unknown = sign_in(browser, "nobody", PASSWORD)
    forged = browser.post("/ui/sign-in", data={"user_name": "ana", "password": PASSWORD, "csrf": "guess"})
    assert wrong.status_code == 401 and unknown.status_code == 401  # type: ignore[attr-defined]
    assert "用户名或密码错误" in wrong.text and SESSION_COOKIE not in wrong.headers.get("set-cookie", "")  # type: ignore[attr-defined]
    assert forged.status_code == 403 and SESSION_COOKIE not in forged.headers.get("set-cookie", "")


def test_after_five_failures_a_name_is_held_off_even_with_the_right_password(browser: TestClient,
                                                                            services: Services) -> None:
    open_account(services, "ana", "accountant")
    for _ in range(5):
        assert sign_in(browser, "ana", "guess " * 3).status_code == 401  # type: ignore[attr-defined]
    held = sign_in(browser, "ana")
    assert held.status_code == 429 and SESSION_COOKIE not in held.headers.get("set-cookie", "")  # type: ignore[attr-defined]


def test_a_password_change_or_disabling_ends_the_sessions_opened_before(browser: TestClient,
                                                                       services: Services) -> None:
    open_account(services, "ana", "accountant")
    sign_in(browser, "ana")
    assert browser.get("/ui/day").status_code == 200
    stamp = Stamp(None, None, None, services.clock.now())
    run_alone(services.ledger, Ledger.change_staff_account(stamp, "ana", password_hash=services.hasher.hash("new " * 4)))
    assert browser.get("/ui/day").status_code == 303

    sign_in(browser, "ana", "new " * 4)
    assert browser.get("/ui/day").status_code == 200
    run_alone(services.ledger, Ledger.change_staff_account(stamp, "ana", disable_reason="left the company"))
    assert browser.get("/ui/day").status_code == 303
    refused = sign_in(browser, "ana", "new " * 4)
    assert refused.status_code == 401 and "停用" in refused.text  # type: ignore[attr-defined]


def test_a_tampered_or_expired_session_cookie_is_not_a_session(browser: TestClient, services: Services) -> None:
    open_account(services, "ana", "accountant")
    sign_in(browser, "ana")
    genuine = browser.cookies[SESSION_COOKIE]
    payload, _, mac = genuine.partition(".")
    browser.cookies.clear()
    browser.cookies.set(SESSION_COOKIE, genuine)
    assert browser.get("/ui/day").status_code == 200  # the same cookie, set by hand, is a session
    sealer = browser.app.state.web_sessions.sealer  # type: ignore[attr-defined]
    account = services.ledger.find_staff_account(sealer.open(genuine)[0])
    expired = sealer.seal(account, now=time.time() - sealer.lifetime_s - 1)
    for cookie in (payload[:-2] + "AA." + mac, payload + "." + "0" * 64, expired, "garbage"):
        browser.cookies.clear()
        browser.cookies.set(SESSION_COOKIE, cookie)
        assert browser.get("/ui/day").status_code == 303, cookie


def test_a_settlement_upload_without_the_pages_form_token_records_nothing(browser: TestClient,
                                                                          services: Services) -> None:
    open_account(services, "ana", "accountant")
    sign_in(browser, "ana")
    before = services.ledger.recorder.max_notification_id()
    csv_file = ("settlement_date,merchant_no,terminal_no,batch_no,trace_no,rrn,auth_code,masked_card,amount,fee,net,"
                "type\n2026-11-24,898310048990001,30000001,000001,000001,000000000001,A1B2C3,622202******1234,"
                "1.00,0.00,1.00,sale\n")
    forged = browser.post("/ui/settlements", files={"file": ("s.csv", csv_file, "text/csv")}, data={"csrf": "x" * 32})
    assert forged.status_code == 422 and "form expired" in forged.text and forged.headers["content-type"].startswith(
        "text/html")
    assert services.ledger.recorder.max_notification_id() == before

    token = csrf_of(browser.get("/ui/day").text)
    accepted = browser.post("/ui/settlements", files={"file": ("s.csv", csv_file, "text/csv")}, data={"csrf": token})
    assert accepted.status_code == 303 and accepted.headers["location"].startswith("/ui/settlements/")
    assert browser.get(accepted.headers["location"]).status_code == 200


def test_the_pages_forbid_caching_framing_and_scripts_and_a_bad_query_is_an_html_page(
        browser: TestClient, services: Services) -> None:
    open_account(services, "ana", "accountant")
    sign_in(browser, "ana")
    page = browser.get("/ui/day")
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    assert "script-src 'none'" in page.headers["content-security-policy"]
    bad = browser.get("/ui/day?date=yesterday")
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html") and "date" in bad.text


def test_the_session_cookie_is_secure_when_the_service_is_told_it_sits_behind_tls(services: Services) -> None:
    services.settings = services.settings.model_copy(update={"cookie_secure": True})
    open_account(services, "ana", "accountant")
    with TestClient(create_app(services=services), follow_redirects=False) as client:
        assert "Secure" in sign_in(client, "ana").headers["set-cookie"]  # type: ignore[attr-defined]


def test_no_page_shows_more_of_a_card_than_the_masked_pan(browser: TestClient, client: TestClient,
                                                         admin_token: str, services: Services) -> None:
    till = Till(client, admin_token).register().open()
    sale = till.card_sale(12_345, brand="visa", last4="4242")
    caught_up(services)
    open_account(services, "root", "admin")
    sign_in(browser, "root")
    pages = [browser.get(f"/ui/day?date={DAY}"), browser.get(f"/ui/disputes?last4=4242&date={DAY}"),
             browser.get(f"/ui/disputes/{sale.stream_id}")]
    assert all(p.status_code == 200 for p in pages)
    assert all("476173******4242" in p.text for p in pages[1:])
    assert not any(re.search(r"476173\d{6}4242", p.text) for p in pages)


def test_signing_out_ends_the_session_even_for_a_copy_of_its_cookie(browser: TestClient, services: Services) -> None:
    open_account(services, "ana", "accountant")
    sign_in(browser, "ana")
    copied = browser.cookies[SESSION_COOKIE]
    forged = browser.post("/ui/sign-out", data={"csrf": "not the token"})
    assert forged.status_code == 303 and browser.get("/ui/day").status_code == 200  # a forged sign-out does nothing

    signed_out = browser.post("/ui/sign-out", data={"csrf": csrf_of(browser.get("/ui/day").text)})
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/ui/sign-in"
    browser.cookies.clear()
    browser.cookies.set(SESSION_COOKIE, copied)
    assert browser.get("/ui/day").status_code == 303
    sign_in(browser, "ana")  # and the person signs in again as usual
    assert browser.get("/ui/day").status_code == 200


def test_a_nul_in_a_page_query_is_a_422_page_and_never_a_500(browser: TestClient, services: Services) -> None:
    open_account(services, "root", "admin")
    sign_in(browser, "root")
    for path in (f"/ui/day?date={DAY}&store=S%001", f"/ui/day.csv?date={DAY}&store=%00",
                 f"/ui/disputes?rrn=1%002", f"/ui/disputes?terminal_no=1%00&trace_no=000001",
                 f"/ui/disputes?auth_code=A%00"):
        response = browser.get(path)
        assert response.status_code == 422 and response.headers["content-type"].startswith("text/html"), path


def test_the_page_asked_for_survives_a_wrong_password(browser: TestClient, services: Services) -> None:
    open_account(services, "ana", "accountant")
    failed = sign_in(browser, "ana", "not the password", next_page=f"/ui/day?date={DAY}")
    assert failed.status_code == 401 and f'name="next" value="/ui/day?date={DAY}"' in failed.text  # type: ignore[attr-defined]
