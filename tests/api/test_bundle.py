"""Signed evidence bundles: exported over HTTP, checked offline by `till verify`, tampering named."""

from __future__ import annotations

import base64
import copy
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.testclient import TestClient

from adapters.signing import public_pem
from api.cli import main
from api.services import Services
from domain.chain import record_hash
from projections.bundle import bundle_body, canonical_bytes
from tests.api.test_auth import issue
from tests.counter import Till


@pytest.fixture
def bundle(till: Till, client: TestClient, admin_token: str, services: Services) -> dict[str, Any]:
    sale = till.card_sale(5_200, brand="unionpay", last4="1234")
    services.views().runner.catch_up()
    dispute = {"Authorization": f"Bearer {issue(client, admin_token, 'dispute')['token']}"}
    response = client.get(f"/v1/disputes/{sale.stream_id}/evidence?format=bundle", headers=dispute)
    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    return response.json()  # type: ignore[no-any-return]


def verify(tmp_path: Path, bundle: dict[str, Any], capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    code = main(["verify", str(path), *extra])
    return code, capsys.readouterr().out


def test_an_exported_bundle_verifies_offline_against_the_services_published_key(
        bundle: dict[str, Any], client: TestClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = client.get("/v1/keys/signing").json()
    (tmp_path / "service.pem").write_text(key["public_key"])

    code, out = verify(tmp_path, bundle, capsys, "--public-key", str(tmp_path / "service.pem"))

    assert code == 0 and out.startswith("VALID") and "given public key" in out
    assert bundle["signature"]["key_id"] == key["key_id"] and bundle["signature"]["algorithm"] == "Ed25519"
    assert len(bundle["events"]) == 10 and bundle["evidence"]["hash_chain"]["valid"] is True


def _edit_amount(b: dict[str, Any]) -> None:
    next(e for e in b["events"] if e["topic"].endswith("AmountEntered"))["amount_minor"] = 5_300


def _delete_event(b: dict[str, Any]) -> None:
    del b["events"][3]


def _swap_events(b: dict[str, Any]) -> None:
    b["events"][4], b["events"][5] = b["events"][5], b["events"][4]


def _edit_summary(b: dict[str, Any]) -> None:
    b["evidence"]["summary"]["rrn"] = "999999999999"


def _rehash_edit(b: dict[str, Any]) -> None:
    """Edit an event and recompute its own hash: the next event's prev_hash still names the original."""
    edited = b["events"][2]
    edited["operator_no"] = "99"
    edited["hash"] = record_hash({k: v for k, v in edited.items() if k != "hash"})


@pytest.mark.parametrize("tamper, named", [
    (_edit_amount, "event version 2 (AmountEntered) was edited"),
    (_delete_event, "event version 4 is missing"),
    (_swap_events, "out of order: version 5 comes after version 6"),
    (_edit_summary, "signature does not match"),
    (_rehash_edit, "event version 4 does not follow version 3"),
])
def test_a_tampered_bundle_fails_verification_naming_what_changed(
        bundle: dict[str, Any], tamper: Callable[[dict[str, Any]], None], named: str,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tampered = copy.deepcopy(bundle)
    tamper(tampered)

    code, out = verify(tmp_path, tampered, capsys)

    assert code == 1 and out.startswith("INVALID")
    assert any(part in out for part in named.split("|")), out


def test_a_bundle_re_signed_by_another_key_is_refused_when_the_services_key_is_given(
        bundle: dict[str, Any], client: TestClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    forger = Ed25519PrivateKey.generate()
    forged = copy.deepcopy(bundle)
    forged["evidence"]["summary"]["amount_minor"] = 1
    forged["signature"]["public_key"] = public_pem(forger.public_key())
    forged["signature"]["value"] = base64.b64encode(
        forger.sign(canonical_bytes(bundle_body(forged["evidence"], forged["events"])))).decode()
    (tmp_path / "service.pem").write_text(client.get("/v1/keys/signing").json()["public_key"])

    code, out = verify(tmp_path, forged, capsys, "--public-key", str(tmp_path / "service.pem"))

    assert code == 1 and "signature does not match" in out


# ---- many random tamperings of each kind: every one found, and the event or field named ------------
_EVENT_DERIVED_SUMMARY = ("kind", "payment_method", "status", "outcome", "amount_minor", "currency", "operator_no",
                          "batch_no", "trace_no", "stan", "auth_code", "rrn", "response_code", "opened_at",
                          "authorized_at", "completed_at")


def _one_char_changed(value: Any, rng: random.Random) -> Any:
    """``value`` with one character (one digit of a number) changed; containers: one leaf inside."""
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        return {**value, key: _one_char_changed(value[key], rng)}
    if isinstance(value, list) and value:
        at = rng.randrange(len(value))
        return [*value[:at], _one_char_changed(value[at], rng), *value[at + 1:]]
    if isinstance(value, bool) or value is None:
        return not value if isinstance(value, bool) else "0"
    text = str(value)
    at = rng.randrange(len(text)) if text else 0
    pool = "0123456789" if isinstance(value, int) else "0123456789abcdefXYZ -:"
    changed = text[:at] + rng.choice([c for c in pool if c != text[at:at + 1]]) + text[at + 1:]
    return int(changed) if isinstance(value, int) and changed.lstrip("-").isdigit() else changed


def _named(out: str, version: int) -> bool:
    return re.search(rf"version {version}\b", out) is not None


def test_every_random_one_character_edit_of_a_bundles_event_is_found_and_the_event_named(
        bundle: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(2026)
    edited = 0
    for attempt in range(60):
        tampered = copy.deepcopy(bundle)
        event = rng.choice(tampered["events"])
        version = event["originator_version"]
        name = rng.choice(sorted(event))
        event[name] = _one_char_changed(event[name], rng)
        if event[name] == bundle["events"][version - 1][name]:
            continue  # e.g. "0" -> "00" read back as the same number

        code, out = verify(tmp_path, tampered, capsys)

        assert code == 1 and out.startswith(f"INVALID: evidence of transaction {bundle['evidence']['transaction_id']}")
        assert _named(out, version), f"edit {attempt} of {name} in version {version} not named:\n{out}"
        edited += 1
    assert edited >= 50


def test_every_deleted_or_reordered_event_of_a_bundle_is_found_and_named(
        bundle: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(7)
    count = len(bundle["events"])
    for version in range(1, count + 1):  # each event deleted in turn, the last one too
        tampered = copy.deepcopy(bundle)
        del tampered["events"][version - 1]
        code, out = verify(tmp_path, tampered, capsys)
        assert code == 1 and f"event version {version} is missing" in out, out
    for attempt in range(30):
        first, second = sorted(rng.sample(range(count), 2))
        tampered = copy.deepcopy(bundle)
        events = tampered["events"]
        events[first], events[second] = events[second], events[first]
        code, out = verify(tmp_path, tampered, capsys)
        assert code == 1 and "out of order" in out, out
        assert _named(out, first + 1) and _named(out, second + 1), out


def test_every_edited_summary_field_is_found_and_named_against_the_events(
        bundle: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(11)
    for name in _EVENT_DERIVED_SUMMARY:
        tampered = copy.deepcopy(bundle)
        tampered["evidence"]["summary"][name] = _one_char_changed(tampered["evidence"]["summary"][name], rng)
        code, out = verify(tmp_path, tampered, capsys)
        assert code == 1 and "signature does not match" in out
        assert f"evidence summary.{name} says" in out, out
    for section, name in (("card", "masked_pan"), ("chip_data", "cryptogram"), ("cvm", "method")):
        tampered = copy.deepcopy(bundle)
        tampered["evidence"][section][name] = _one_char_changed(tampered["evidence"][section][name], rng)
        code, out = verify(tmp_path, tampered, capsys)
        assert code == 1 and f"evidence {section}.{name} says" in out, out
    tampered = copy.deepcopy(bundle)  # from the terminal's stream, not the bundle's events: the signature alone
    tampered["evidence"]["summary"]["merchant_no"] = "898310048990009"
    assert verify(tmp_path, tampered, capsys) == (1, "INVALID: evidence of transaction "
                                                  f"{bundle['evidence']['transaction_id']}:\n  - the signature does "
                                                  "not match: the bundle was changed after the service signed it\n")
