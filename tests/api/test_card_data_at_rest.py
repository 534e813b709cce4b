"""No full PAN or track data is ever stored: after a realistic day at the counter, and after
attempts to append card data that the service refused, everything in the store is scanned.

The PANs of the refused attempts are made up when the test runs and live only in its memory;
failure messages show them masked.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

import pytest
from starlette.testclient import TestClient

from adapters.settings import Settings
from tests.api.settlement import resync_session, settle
from tests.api.stored_text import card_data_in, masked, stored_text
from tests.counter import Stream, Till, card


def luhn_complete(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def made_up_pan(bin6: str, length: int = 16) -> str:
    return luhn_complete(bin6 + "".join(secrets.choice("0123456789") for _ in range(length - 7)))


def groups(pan: str, sep: str) -> str:
    return sep.join(pan[i:i + 4] for i in range(0, len(pan), 4))


# ---- a realistic day --------------------------------------------------------------------------------------
def declined_sale(till: Till, amount_minor: int) -> Stream:
    txn = till.begin()
    till.append(txn, {"type": "AmountEntered", "amount_minor": amount_minor, "currency": "CNY"})
    till.append(txn, {"type": "AmountConfirmed"})
    till.append(txn, card("visa", "0119"))
    till.append(txn, {"type": "PinVerified", "method": "online"})
    till.append(txn, {"type": "AuthorizationRequested", "stan": "000401"})
    till.append(txn, {"type": "Declined", "response_code": "51", "reason": "insufficient funds"})
    till.finish(txn)
    return txn


def sale_after_a_failed_pin(till: Till, amount_minor: int) -> Stream:
    txn = till.begin()
    till.append(txn, {"type": "AmountEntered", "amount_minor": amount_minor, "currency": "CNY"})
    till.append(txn, {"type": "AmountConfirmed"})
    till.append(txn, card("mastercard", "5100"))
    till.append(txn, {"type": "PinFailed", "tries_left": 2})
    till.append(txn, {"type": "PinVerified", "method": "offline"})
    till.append(txn, {"type": "AuthorizationRequested", "stan": "000402"})
    till.append(txn, {"type": "Authorized", "auth_code": "M5N6P7", "rrn": "000000000402", "response_code": "00"})
    till.finish(txn)
    return txn


def reversed_sale(till: Till, amount_minor: int) -> Stream:
    txn = till.begin()
    till.append(txn, {"type": "AmountEntered", "amount_minor": amount_minor, "currency": "CNY"})
    till.append(txn, {"type": "AmountConfirmed"})
    till.append(txn, card("unionpay", "7788", entry_mode="contactless"))
    till.append(txn, {"type": "CvmNotRequired"})
    till.append(txn, {"type": "AuthorizationRequested", "stan": "000403"})
    till.append(txn, {"type": "OutcomeUnknown", "reason": "host timeout after 60 s"})
    till.append(txn, {"type": "Reversed", "reason_code": "4021", "response_code": "00"})
    till.append(txn, {"type": "TransactionCompleted"})
    return txn


def signed_fallback_sale(till: Till, amount_minor: int) -> Stream:
    txn = till.begin()
    till.append(txn, {"type": "ItemScanned", "barcode": "6901028075831", "name": "矿泉水 550ml", "quantity": 2,
                      "unit_price_minor": 200})
    till.append(txn, {"type": "ItemScanned", "barcode": "6920459950180", "name": "绿茶", "quantity": 1,
                      "unit_price_minor": amount_minor - 400})
    till.append(txn, {"type": "AmountEntered", "amount_minor": amount_minor, "currency": "CNY"})
    till.append(txn, {"type": "AmountConfirmed"})
    for _ in range(3):
        till.append(txn, {"type": "CardReadFailed", "entry_mode": "chip", "reason": "chip did not answer"})
    till.append(txn, card("unionpay", "4321", entry_mode="fallback_swipe"))
    till.append(txn, {"type": "PinBypassed", "reason": "cardholder has no PIN"})
    till.append(txn, {"type": "AuthorizationRequested", "stan": "000404"})
    till.append(txn, {"type": "Authorized", "auth_code": "Q8R9S0", "rrn": "000000000404", "response_code": "00"})
    till.append(txn, {"type": "SignatureCaptured", "image_sha256": hashlib.sha256(b"signature").hexdigest(),
                      "image_ref": "signatures/2026-11-24/000404.png"})
    till.finish(txn)
    return txn


def a_day_at_the_counter(till: Till) -> list[Stream]:
    """Card sales of each brand, cash, a void, a declined sale, a failed PIN, a reversal, settlement
    and a partial refund in the next batch."""
    sales = [till.card_sale(1_000 + i, brand=brand, last4=last4)
             for i, (brand, last4) in enumerate([("unionpay", "1234"), ("unionpay", "0001"), ("visa", "4242"),
                                                 ("visa", "1881"), ("mastercard", "4444"), ("mastercard", "0005")])]
    streams = [*sales, till.cash_sale(2_350, 5_000)]
    streams.append(till.card_sale(1_001, kind="void", original=sales[1], brand="unionpay", last4="0001"))
    streams += [declined_sale(till, 9_900), sale_after_a_failed_pin(till, 4_500), reversed_sale(till, 300),
                signed_fallback_sale(till, 1_200)]
    settle(till)
    streams.append(till.card_sale(400, kind="refund", original=sales[2], brand="visa", last4="4242"))
    resync_session(till)
    till.till_event({"type": "CashCounted", "counted_minor": 52_350, "note": "end of day count, 2 notes torn"})
    return streams


# ---- what the service must refuse -----------------------------------------------------------------------
def refused_attempts(client: TestClient, admin_token: str, till: Till) -> list[str]:
    """Try to slip full PANs and track data into every free-text and card field; all must be refused.

    Returns every secret used, for the scan.
    """
    pans = [made_up_pan("622202"), made_up_pan("476173"), made_up_pan("545454"), made_up_pan("622848", 19)]
    unionpay, visa, mastercard, long_unionpay = pans
    track2 = f"{unionpay}=2512{secrets.randbelow(10**12):012d}"
    tag57 = f"{visa}D2512201{secrets.randbelow(10**8):08d}F"
    track1 = f"%B{mastercard}^WANG/FANG^2512201{secrets.randbelow(10**6):06d}?"
    secrets_used = [*pans, track2, tag57, track1]

    txn = till.begin()
    till.append(txn, {"type": "AmountEntered", "amount_minor": 1_500, "currency": "CNY"})
    till.append(txn, {"type": "AmountConfirmed"})
    attempts = [
        {**card(), "masked_pan": unionpay},
        {**card(), "masked_pan": f"{unionpay[:6]}******{unionpay[-4:]}", "app_label": f"UP {long_unionpay}"},
        {**card(), "cryptogram": tag57[:32]},
        {**card(), "pan_token": track2},
        {**card(), "aid": unionpay},
        {"type": "CardReadFailed", "entry_mode": "swipe", "reason": track2},
        {"type": "CardReadFailed", "entry_mode": "chip", "reason": f"tag 57 {tag57}"},
        {"type": "CardReadFailed", "entry_mode": "swipe", "reason": track1},
        {"type": "CardReadFailed", "entry_mode": "chip", "reason": f"card {groups(visa, ' ')} would not read"},
        {"type": "CardReadFailed", "entry_mode": "chip", "reason": f"card {groups(mastercard, '-')}"},
        {"type": "TransactionCancelled", "reason": f"customer said {long_unionpay}"},
        {"type": "ItemScanned", "barcode": visa, "name": "gift card", "quantity": 1, "unit_price_minor": 100},
        {"type": "ItemScanned", "barcode": "6901028075831", "name": f"卡 {mastercard}", "quantity": 1,
         "unit_price_minor": 100},
    ]
    for event in attempts:
        response = till.post(f"/v1/transactions/{txn.stream_id}/events", txn.version, event)
        assert response.status_code == 422, f"{event['type']} with card data: {response.status_code}"
        assert not any(s in response.text for s in secrets_used), f"{event['type']}: the answer echoes card data"
    till.append(txn, card())
    till.append(txn, {"type": "PinBypassed", "reason": "no PIN pad"})
    till.append(txn, {"type": "AuthorizationRequested", "stan": "000501"})
    till.append(txn, {"type": "Declined", "response_code": "05", "reason": "do not honour"})
    for event in ({"type": "SignatureWaived", "reason": track1},
                  {"type": "PrintFailed", "copy": "merchant", "printer": f"escpos {visa}", "reprint_no": 0,
                   "reason": "paper out"}):
        response = till.post(f"/v1/transactions/{txn.stream_id}/events", txn.version, event)
        assert 400 <= response.status_code < 500, f"{event['type']} with card data: {response.status_code}"

    session = f"/v1/till-sessions/{till.session.stream_id}/events"
    resync_session(till)
    for note in (f"found card {unionpay} under the till", track2):
        response = till.post(session, till.session.version, {"type": "CashCounted", "counted_minor": 1, "note": note})
        assert response.status_code == 422, f"CashCounted note with card data: {response.status_code}"

    admin = {"Authorization": f"Bearer {admin_token}"}
    admin_attempts = [
        ("POST", "/v1/terminals", {"merchant_name": f"shop {visa}", "merchant_no": "898310048990003",
                                   "terminal_no": f"{uuid.uuid4().int % 10**8:08d}"}),
        ("POST", "/v1/terminals", {"merchant_name": "shop", "merchant_no": "898310048990003",
                                   "terminal_no": f"{uuid.uuid4().int % 10**8:08d}", "store_id": long_unionpay}),
        ("PATCH", f"/v1/terminals/{till.terminal_id}", {"store_id": f"store {mastercard}"}),
        ("POST", f"/v1/terminals/{till.terminal_id}/operators", {"operator_no": "07", "name": unionpay,
                                                                 "password": "counter-07"}),
        ("POST", "/v1/tokens", {"role": "accountant", "label": f"for {track2}"[:64]}),
    ]
    for method, path, body in admin_attempts:
        response = client.request(method, path, json=body, headers=admin)
        assert response.status_code == 422, f"{method} {path} with card data: {response.status_code}"
        assert not any(s in response.text for s in secrets_used), f"{method} {path}: the answer echoes card data"

    # A password may be anything, even digits that pass Luhn: it is hashed, never stored as given.
    response = client.post(f"/v1/terminals/{till.terminal_id}/operators", headers=admin,
                           json={"operator_no": "08", "name": "赵六", "password": long_unionpay})
    assert response.status_code == 201, response.text
    return secrets_used


@pytest.fixture
def day(client: TestClient, admin_token: str, till: Till) -> tuple[list[Stream], list[str]]:
    streams = a_day_at_the_counter(till)
    refused = refused_attempts(client, admin_token, till)
    return streams, refused


def test_the_scan_sees_the_stored_events_and_recognises_card_data(
        settings: Settings, day: tuple[list[Stream], list[str]]) -> None:
    text = stored_text(settings)

    for shown in ("622202******1234", "476173******4242", "545454******4444", "矿泉水".encode().decode("latin-1")):
        assert shown in text  # the scan reads the events themselves, not compressed or encrypted bytes
    pan = made_up_pan("622202")
    for sample in (pan, groups(pan, " "), groups(pan, "-"), f"{pan}=25122010000", f"{pan}D2512201",
                   f"%B{pan}^WANG/FANG^2512"):
        assert card_data_in(f'{{"reason":"{sample}"}}'), f"the scanner misses {masked(pan)} written as a sample"


def test_after_a_day_at_the_counter_no_card_data_is_stored_anywhere(
        settings: Settings, till: Till, day: tuple[list[Stream], list[str]]) -> None:
    streams, refused = day

    text = stored_text(settings)

    assert all(till.history(s)["chain_valid"] for s in streams)
    assert card_data_in(text) == []
    leaked = [masked(secret) for secret in refused if secret in text]
    assert leaked == [], "refused card data was stored"


def test_a_full_pan_in_the_envelopes_operator_number_is_refused_and_never_stored(
        settings: Settings, till: Till) -> None:
    pan = made_up_pan("622202")
    txn = till.begin()

    response = till.client.post(f"/v1/transactions/{txn.stream_id}/events", headers=till.headers, json={
        "expected_version": 1, "operator_no": pan, "device_time": "2026-11-24T10:00:00+08:00",
        "event": {"type": "AmountEntered", "amount_minor": 100, "currency": "CNY"}})

    assert response.status_code == 422, response.status_code
    stored = pan in stored_text(settings)
    assert not stored, "the operator number's PAN was stored"
