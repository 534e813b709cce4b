"""Bad input is always a 4xx problem+json with a stable code, never a 500, and never echoed back."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.counter import Stream, Till, card

PROBLEM = "application/problem+json"


def luhn_complete(body: str) -> str:
    """``body`` plus the check digit that makes it Luhn-valid: a full PAN, made up in memory."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


PAN = luhn_complete("622202" + f"{uuid.uuid4().int % 10**12:012d}")


def assert_problem(response: Any, status: int, *codes: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = response.json()
    assert problem["code"] in codes, problem
    assert problem["status"] == status
    return problem


def assert_not_echoed(response: Any, secret: str) -> None:
    echoed = secret in response.text
    assert not echoed, "the response echoes what was sent"


@pytest.fixture
def sale(till: Till) -> Stream:
    """A card sale opened at the till, waiting for its amount."""
    return till.begin()


def post_event(till: Till, txn: Stream, event: dict[str, Any], **envelope: Any) -> Any:
    body = {"expected_version": txn.version, "operator_no": "01", "device_time": "2026-11-24T10:00:00+08:00",
            "event": event, **envelope}
    return till.client.post(f"/v1/transactions/{txn.stream_id}/events", json=body, headers=till.headers)


def post_raw(till: Till, txn: Stream, raw: bytes) -> Any:
    return till.client.post(f"/v1/transactions/{txn.stream_id}/events", content=raw,
                            headers={**till.headers, "content-type": "application/json"})


def nothing_recorded(till: Till, txn: Stream) -> bool:
    return till.history(txn)["version"] == txn.version


def answers(responses: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """Each case's status and problem code (or the start of a body that is not a problem)."""
    return {case: (r.status_code, r.json().get("code", "") if r.headers["content-type"].startswith(PROBLEM)
                   else f"not a problem: {r.text[:80]}") for case, r in responses.items()}


# ---- money ----------------------------------------------------------------------------------------------
def test_an_amount_that_is_not_an_integer_is_refused(till: Till, sale: Stream) -> None:
    cases = {"float": 12.5, "whole float": 100.0, "bool": True, "string": "100", "null": None, "list": [100],
             "object": {"minor": 100}}

    responses = {case: post_event(till, sale, {"type": "AmountEntered", "amount_minor": amount, "currency": "CNY"})
                 for case, amount in cases.items()}

    assert answers(responses) == {case: (422, "invalid_request") for case in cases}
    assert nothing_recorded(till, sale)


def test_an_amount_outside_the_terminals_limits_is_refused(till: Till, sale: Stream) -> None:
    cases = {"zero": 0, "negative": -100, "above the maximum": 10_000_001, "beyond 64 bits": 2**64}

    responses = {case: post_event(till, sale, {"type": "AmountEntered", "amount_minor": amount, "currency": "CNY"})
                 for case, amount in cases.items()}

    assert answers(responses) == {case: (422, "amount_out_of_range") for case in cases}
    assert nothing_recorded(till, sale)


def test_a_wrong_currency_is_refused(till: Till, sale: Stream) -> None:
    cases = {"USD": "currency_mismatch", "cny": "invalid_money", "CN": "invalid_money", "人民币": "invalid_money"}

    responses = {currency: post_event(till, sale, {"type": "AmountEntered", "amount_minor": 100,
                                                   "currency": currency}) for currency in cases}

    assert answers(responses) == {currency: (422, code) for currency, code in cases.items()}
    assert nothing_recorded(till, sale)


def test_a_card_number_sent_as_the_currency_is_refused_without_being_echoed(till: Till, sale: Stream) -> None:
    response = post_event(till, sale, {"type": "AmountEntered", "amount_minor": 100, "currency": PAN})

    assert_problem(response, 422, "invalid_money", "invalid_input", "card_data_rejected")
    assert_not_echoed(response, PAN)


# ---- the envelope ---------------------------------------------------------------------------------------
def test_an_expected_version_that_is_not_a_natural_number_is_refused(till: Till, sale: Stream) -> None:
    cases = {"negative": -1, "float": 1.0, "string": "1", "null": None, "bool": True}

    responses = {case: post_event(till, sale, {"type": "AmountEntered", "amount_minor": 100, "currency": "CNY"},
                                  expected_version=version) for case, version in cases.items()}

    assert answers(responses) == {case: (422, "invalid_request") for case in cases}
    assert nothing_recorded(till, sale)


def test_a_device_time_without_its_utc_offset_is_refused(till: Till, sale: Stream) -> None:
    cases = {"naive": "2026-11-24T10:00:00", "date only": "2026-11-24", "words": "yesterday", "empty": "",
             "offset without time": "+08:00"}

    responses = {case: post_event(till, sale, {"type": "AmountEntered", "amount_minor": 100, "currency": "CNY"},
                                  device_time=device_time) for case, device_time in cases.items()}

    assert answers(responses) == {case: (422, "invalid_request") for case in cases}
    assert nothing_recorded(till, sale)


def test_a_device_time_sent_as_a_number_is_refused(till: Till, sale: Stream) -> None:
    # The contract asks for ISO 8601 with the terminal's own UTC offset (kept for disputes);
    # a bare number carries no offset and leaves seconds or milliseconds to a guess.
    response = post_event(till, sale, {"type": "AmountEntered", "amount_minor": 100, "currency": "CNY"},
                          device_time=1764000000)

    assert_problem(response, 422, "invalid_request")
    assert nothing_recorded(till, sale)


def test_an_unknown_top_level_field_is_refused(till: Till, sale: Stream) -> None:
    response = post_event(till, sale, {"type": "AmountEntered", "amount_minor": 100, "currency": "CNY"},
                          priority="high")

    assert_problem(response, 422, "invalid_request")


def test_an_operator_number_that_is_not_2_to_4_digits_is_refused(till: Till, sale: Stream) -> None:
    response = post_event(till, sale, {"type": "AmountEntered", "amount_minor": 100, "currency": "CNY"},
                          operator_no="cashier #1")

    assert_problem(response, 422, "invalid_request", "invalid_input")
    assert nothing_recorded(till, sale)


def test_a_huge_operator_number_in_the_envelope_is_refused(till: Till, sale: Stream) -> None:
    huge = "9" * 100_000

    response = post_event(till, sale, {"type": "AmountEntered", "amount_minor": 100, "currency": "CNY"},
                          operator_no=huge)

    assert_problem(response, 422, "invalid_request", "invalid_input")
    assert nothing_recorded(till, sale)


# ---- the event ------------------------------------------------------------------------------------------
def test_an_unknown_event_type_is_refused(till: Till, sale: Stream) -> None:
    response = post_event(till, sale, {"type": "AmountGuessed", "amount_minor": 100})

    assert_problem(response, 422, "invalid_request", "invalid_input")


def test_a_till_event_sent_to_a_transaction_is_refused(till: Till, sale: Stream) -> None:
    response = post_event(till, sale, {"type": "CashCounted", "counted_minor": 100})

    assert_problem(response, 422, "invalid_request", "invalid_input")


def test_an_unknown_event_type_is_not_echoed(till: Till, sale: Stream) -> None:
    response = post_event(till, sale, {"type": PAN})

    assert_problem(response, 422, "invalid_request", "invalid_input", "card_data_rejected")
    assert_not_echoed(response, PAN)


def test_an_extra_field_named_like_a_card_number_is_refused_without_echoing_its_name(
        till: Till, sale: Stream) -> None:
    response = post_event(till, sale, {"type": "AmountEntered", "amount_minor": 100, "currency": "CNY", PAN: 1})

    assert_problem(response, 422, "invalid_request", "invalid_input", "card_data_rejected")
    assert_not_echoed(response, PAN)
    assert nothing_recorded(till, sale)


def test_an_event_without_a_type_is_refused(till: Till, sale: Stream) -> None:
    response = post_event(till, sale, {"amount_minor": 100, "currency": "CNY"})

    assert_problem(response, 422, "invalid_request")


def test_an_event_with_extra_fields_is_refused(till: Till, sale: Stream) -> None:
    cases = {"AmountEntered": {"type": "AmountEntered", "amount_minor": 100, "currency": "CNY", "discount_minor": 5},
             "AmountConfirmed": {"type": "AmountConfirmed", "by": "customer"},
             "TransactionCompleted": {"type": "TransactionCompleted", "pan": "622202******1234"}}

    responses = {case: post_event(till, sale, event) for case, event in cases.items()}

    assert answers(responses) == {case: (422, "invalid_request") for case in cases}
    assert nothing_recorded(till, sale)


def test_an_event_with_missing_fields_is_refused_naming_what_is_missing(till: Till, sale: Stream) -> None:
    cases = {"no amount": {"type": "AmountEntered", "currency": "CNY"},
             "no currency": {"type": "AmountEntered", "amount_minor": 100},
             "no reason": {"type": "CardReadFailed", "entry_mode": "chip"},
             "no quantity": {"type": "ItemScanned", "barcode": "6901234567892", "name": "茶",
                             "unit_price_minor": 100}}

    responses = {case: post_event(till, sale, event) for case, event in cases.items()}

    assert answers(responses) == {case: (422, "invalid_request") for case in cases}
    assert all(r.json()["errors"][0]["type"] == "missing" for r in responses.values())
    assert nothing_recorded(till, sale)


def test_an_envelope_without_an_event_is_refused(till: Till, sale: Stream) -> None:
    response = till.client.post(f"/v1/transactions/{sale.stream_id}/events", json={"expected_version": 1},
                                headers=till.headers)

    assert_problem(response, 422, "invalid_request")


def test_an_item_with_impossible_values_is_refused(till: Till, sale: Stream) -> None:
    item = {"type": "ItemScanned", "barcode": "6901234567892", "name": "绿茶", "quantity": 1, "unit_price_minor": 350}
    cases = {"zero quantity": {"quantity": 0}, "negative price": {"unit_price_minor": -1},
             "barcode with markup": {"barcode": "<script>"}, "fractional quantity": {"quantity": 1.5}}

    responses = {case: post_event(till, sale, {**item, **change}) for case, change in cases.items()}

    assert all(status == 422 for status, _ in answers(responses).values()), answers(responses)
    assert nothing_recorded(till, sale)


# ---- the body itself --------------------------------------------------------------------------------------
def test_a_body_that_is_not_a_json_envelope_is_refused(till: Till, sale: Stream) -> None:
    cases = {"broken": b"{not json", "empty": b"", "array": b"[]", "null": b"null", "string": b'"text"',
             "truncated": b'{"expected_version": 1,', "not utf-8": b"\xff\xfe\x00garbage"}

    responses = {case: post_raw(till, sale, raw) for case, raw in cases.items()}

    assert answers(responses) == {case: (422, "invalid_request") for case in cases}
    assert nothing_recorded(till, sale)


def test_a_number_too_long_to_parse_is_refused(till: Till, sale: Stream) -> None:
    raw = (b'{"expected_version": 1, "event": {"type": "AmountEntered", "currency": "CNY", "amount_minor": '
           + b"9" * 5_000 + b"}}")

    response = post_raw(till, sale, raw)

    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] in ("invalid_request", "invalid_input", "invalid_money", "amount_out_of_range")


@pytest.mark.parametrize("field, event", [
    ("reason", {"type": "CardReadFailed", "entry_mode": "chip", "reason": "x" * 1_000_000}),
    ("name", {"type": "ItemScanned", "barcode": "6901234567892", "name": "茶" * 300_000, "quantity": 1,
              "unit_price_minor": 350}),
    ("barcode", {"type": "ItemScanned", "barcode": "6" * 1_000_000, "name": "茶", "quantity": 1,
                 "unit_price_minor": 350}),
    ("currency", {"type": "AmountEntered", "amount_minor": 100, "currency": "C" * 1_000_000}),
])
def test_a_huge_string_is_refused_without_being_echoed(till: Till, sale: Stream, field: str,
                                                       event: dict[str, Any]) -> None:
    response = post_event(till, sale, event)

    assert 400 <= response.status_code < 500, response.text[:300]
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] in ("invalid_request", "invalid_input", "invalid_money", "card_data_rejected")
    assert len(response.content) < 10_000, f"a {len(response.content)}-byte answer echoes the {field}"
    assert nothing_recorded(till, sale)


def test_a_string_with_a_lone_surrogate_is_refused(till: Till, sale: Stream) -> None:
    cases = {"high surrogate": "bad \\ud800 read", "low surrogate": "bad \\udfff read", "NUL": "bad \\u0000 read"}

    responses = {case: post_raw(till, sale, (
        '{"expected_version": 1, "operator_no": "01", "event": {"type": "CardReadFailed", "entry_mode": "chip", '
        f'"reason": "{text}"}}}}').encode()) for case, text in cases.items()}

    assert all(400 <= status < 500 and not code.startswith("not a problem")
               for status, code in answers(responses).values()), answers(responses)
    assert nothing_recorded(till, sale)
    till.append(sale, {"type": "CardReadFailed", "entry_mode": "chip", "reason": "chip not answering"})


# ---- ids in the path --------------------------------------------------------------------------------------
def test_an_id_in_the_path_that_is_not_a_uuid_is_refused(till: Till) -> None:
    body = {"expected_version": 0, "event": {"type": "TillClosed"}}
    responses = {
        "transaction append": till.client.post("/v1/transactions/not-a-uuid/events", json=body, headers=till.headers),
        "till append": till.client.post("/v1/till-sessions/%20/events", json=body, headers=till.headers),
        "transaction read": till.client.get("/v1/transactions/12345", headers=till.headers),
        "till read": till.client.get("/v1/till-sessions/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", headers=till.headers),
    }

    assert answers(responses) == {case: (422, "invalid_request") for case in responses}


def test_an_unknown_till_session_is_not_found(till: Till) -> None:
    unknown = uuid.uuid4()

    for path in (f"/v1/till-sessions/{unknown}", f"/v1/till-sessions/{unknown}/events"):
        assert_problem(till.client.get(path, headers=till.headers), 404, "not_found")


def test_a_transaction_on_an_unknown_till_session_is_not_found(till: Till) -> None:
    txn = Stream(str(uuid.uuid4()))

    response = post_event(till, txn, {"type": "TransactionOpened", "kind": "sale", "payment_method": "card",
                                      "till_session_id": str(uuid.uuid4()), "batch_no": "000001",
                                      "trace_no": "000100"})

    assert_problem(response, 404, "not_found")


def test_an_unknown_transaction_is_not_found(till: Till) -> None:
    unknown = uuid.uuid4()

    for path in (f"/v1/transactions/{unknown}", f"/v1/transactions/{unknown}/events"):
        assert_problem(till.client.get(path, headers=till.headers), 404, "not_found")


def test_a_till_session_id_used_as_a_transaction_is_not_found(till: Till) -> None:
    response = till.client.get(f"/v1/transactions/{till.session.stream_id}", headers=till.headers)

    assert_problem(response, 404, "not_found")


def test_an_unknown_route_is_a_problem_too(client: TestClient) -> None:
    assert_problem(client.get("/v1/no-such-thing"), 404, "not_found")
    assert_problem(client.put("/healthz"), 405, "method_not_allowed")


# ---- card data where it must never be ---------------------------------------------------------------------
def test_a_full_pan_as_the_masked_pan_is_refused_and_not_echoed(till: Till, sale: Stream) -> None:
    till.append(sale, {"type": "AmountEntered", "amount_minor": 100, "currency": "CNY"})
    till.append(sale, {"type": "AmountConfirmed"})

    response = post_event(till, sale, {**card(), "masked_pan": PAN})

    assert_problem(response, 422, "card_data_rejected", "invalid_input")
    assert_not_echoed(response, PAN)
    assert nothing_recorded(till, sale)


def test_a_full_pan_inside_a_free_text_reason_is_refused(till: Till, sale: Stream) -> None:
    cases = {"plain": PAN, "spaced": " ".join(PAN[i:i + 4] for i in range(0, len(PAN), 4)),
             "dashed": "-".join(PAN[i:i + 4] for i in range(0, len(PAN), 4))}

    responses = {case: post_event(till, sale, {"type": "CardReadFailed", "entry_mode": "chip",
                                                "reason": f"customer read out {written} aloud"})
                 for case, written in cases.items()}

    assert answers(responses) == {case: (422, "card_data_rejected") for case in cases}
    assert all(r.json()["field"] == "reason" for r in responses.values())
    for case, response in responses.items():
        assert_not_echoed(response, cases[case])
    assert nothing_recorded(till, sale)


def test_a_full_pan_in_a_till_note_is_refused(till: Till) -> None:
    response = till.post(f"/v1/till-sessions/{till.session.stream_id}/events", till.session.version,
                         {"type": "CashCounted", "counted_minor": 50_000, "note": f"card {PAN} left at till"})

    assert_problem(response, 422, "card_data_rejected")
    assert_not_echoed(response, PAN)


def test_malformed_json_is_refused_without_echoing_it(till: Till, sale: Stream) -> None:
    raw = json.dumps({"expected_version": 1, "event": {"type": "CardReadFailed", "reason": PAN}})[:-2].encode()

    response = post_raw(till, sale, raw)

    assert_problem(response, 422, "invalid_request")
    assert_not_echoed(response, PAN)
