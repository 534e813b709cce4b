"""Card requests through the acquirer host: the service, over real TCP, against the host simulator.

Every path ends in a consistent ledger: approved, declined, a timeout or a dropped reply reversed
(冲正), a duplicate reply ignored, a host that is down charging nothing, a reversal that outlives a
restart of the service, and batch settlement balanced or not. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from starlette.testclient import TestClient

from adapters.acquirer_client import Iso8583AcquirerHost
from adapters.acquirer_simulator import AcquirerSimulator, SimulatorThread
from adapters.settings import Settings
from api.app import build_services, create_app
from api.services import Services
from domain import host_commands
from domain.acquirer import CardData, FinancialRequest, TerminalRef
from domain.stamp import Stamp
from projections.in_doubt import ViewInDoubtSource
from tests.api.stored_text import stored_text
from tests.conftest import fast_hasher
from tests.counter import SHANGHAI, Stream
from tests.host_counter import HostTill, host_settings, test_pan



class OffsetClock:
    """The real clock, moved forward on demand (a test stands in for minutes passing)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[tuple[AcquirerSimulator, int]]:
    (tmp_path / "host-files").mkdir()
    sim = AcquirerSimulator(tmp_path / "host-journal.sqlite", settlement_dir=tmp_path / "host-files", fee_ppm=3800)
    with SimulatorThread(sim) as port:
        yield sim, port
    sim.close()


@pytest.fixture
def offset_clock() -> OffsetClock:
    return OffsetClock()


@pytest.fixture
def services(settings: Settings, simulator: tuple[AcquirerSimulator, int],
             offset_clock: OffsetClock) -> Iterator[Services]:
    built = build_services(host_settings(settings, simulator[1]), clock=offset_clock, hasher=fast_hasher())
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def till(client: TestClient, admin_token: str) -> HostTill:
    till = HostTill(client, admin_token).register().open()
    till.sign_on()
    return till


def journal(simulator: tuple[AcquirerSimulator, int]) -> list[Any]:
    return list(simulator[0].journal.entries())


def event_types(till: HostTill, txn: Stream) -> list[str]:
    return [e["type"] for e in till.history(txn)["events"]]


# ---- approve and decline -----------------------------------------------------------------------------
def test_an_approved_sale_records_the_hosts_auth_code_and_rrn(till: HostTill, simulator: Any) -> None:
    pan = test_pan(1)
    txn, answer = till.sale_through_host(12_345, pan)

    assert answer["outcome"] == "authorized" and answer["response_code"] == "00"
    [entry] = journal(simulator)
    assert (entry.rrn, entry.auth_code, entry.state) == (answer["rrn"], answer["auth_code"], "approved")
    assert entry.masked_pan == f"{pan[:6]}******{pan[-4:]}"
    state = till.state(txn)
    assert state["status"] == "completed" and state["authorization"]["stan"] == state["trace_no"]
    assert event_types(till, txn)[-5:-3] == ["AuthorizationRequested", "Authorized"]


@pytest.mark.parametrize("code,reason", [("05", "do not honour"), ("51", "insufficient funds"),
                                         ("54", "expired card"), ("55", "incorrect PIN")])
def test_each_decline_is_recorded_with_its_reason_and_leaves_the_till_free(
        till: HostTill, simulator: Any, code: str, reason: str) -> None:
    simulator[0].set_rules([{"pan_suffix": test_pan(2)[-4:], "action": "decline", "response_code": code}])
    txn, answer = till.sale_through_host(5_000, test_pan(2))

    assert (answer["outcome"], answer["response_code"], answer["reason"]) == ("declined", code, reason)
    assert [e.state for e in journal(simulator)] == ["declined"]
    till.append(txn, {"type": "TransactionCompleted"})
    _, next_answer = till.sale_through_host(100, test_pan(3))  # the till is not blocked by a decline
    assert next_answer["outcome"] == "authorized"


# ---- unknown outcome and reversal ----------------------------------------------------------------------
@pytest.mark.parametrize("rule", [{"action": "slow", "delay_ms": 1_500}, {"action": "drop"},
                                  {"action": "disconnect"}], ids=["timeout", "dropped", "disconnected"])
def test_no_reply_makes_the_outcome_unknown_blocks_the_till_and_is_reversed(
        till: HostTill, simulator: Any, rule: dict[str, Any]) -> None:
    simulator[0].set_rules([{**rule, "kinds": ["sale"], "times": 1}])
    txn = till.ready(8_800, test_pan(4))
    answer = till.authorize_card(txn, test_pan(4))
    assert answer["outcome"] in ("unknown", "reversed")  # the worker may already have reversed it
    assert [e.state for e in journal(simulator)] in (["approved"], ["reversed"])  # the host did charge it

    state = till.wait_for_outcome(txn, "reversed")
    assert state["outcome"] == "reversed"
    assert [e.state for e in journal(simulator)] == ["reversed"]
    types = event_types(till, txn)
    assert types.index("AuthorizationRequested") < types.index("OutcomeUnknown") < types.index("Reversed")
    assert "Authorized" not in types
    reversed_event = till.history(txn)["events"][-1]["data"]
    assert reversed_event["reason_code"] == "4021"
    # Resolved: the transaction ends unpaid, no receipt says approved, and the till sells again.
    till.append(txn, {"type": "TransactionCompleted"})
    _, again = till.sale_through_host(8_800, test_pan(4))
    assert again["outcome"] == "authorized"


def test_an_unknown_outcome_blocks_new_card_sales_until_reversed(till: HostTill, simulator: Any) -> None:
    simulator[0].set_rules([{"action": "drop", "kinds": ["sale", "reversal"]}])
    txn = till.ready(1_000, test_pan(5))
    assert till.authorize_card(txn, test_pan(5))["outcome"] == "unknown"

    other = Stream("00000000-0000-4000-8000-000000000001")
    response = till.post(f"/v1/transactions/{other.stream_id}/events", 0, {
        "type": "TransactionOpened", "kind": "sale", "payment_method": "card",
        "till_session_id": till.session.stream_id, "batch_no": till.batch_no, "trace_no": "900001"})
    assert response.status_code == 422 and response.json()["code"] == "till_blocked"
    print_attempt = till.post(f"/v1/transactions/{txn.stream_id}/events", txn.version, {
        "type": "ReceiptPrinted", "copy": "customer", "printer": "p", "reprint_no": 0, "receipt_sha256": "a" * 64})
    assert print_attempt.json()["code"] == "out_of_sequence"  # never printed while in doubt
    complete = till.post(f"/v1/transactions/{txn.stream_id}/events", txn.version, {"type": "TransactionCompleted"})
    assert complete.json()["code"] == "out_of_sequence"
    assert till.settle_through_host(expect=422)["code"] == "till_blocked"

    simulator[0].set_rules([])  # the host answers reversals again
    assert till.wait_for_outcome(txn, "reversed")["outcome"] == "reversed"
    response = till.post(f"/v1/transactions/{other.stream_id}/events", 0, {
        "type": "TransactionOpened", "kind": "sale", "payment_method": "card",
        "till_session_id": till.session.stream_id, "batch_no": till.batch_no, "trace_no": "900001"})
    assert response.status_code == 201, response.text


def test_a_duplicate_reply_is_ignored(till: HostTill, simulator: Any) -> None:
    simulator[0].set_rules([{"action": "duplicate"}])
    txn, answer = till.sale_through_host(2_500, test_pan(6))

    assert answer["outcome"] == "authorized"
    assert event_types(till, txn).count("Authorized") == 1
    assert len(journal(simulator)) == 1
    _, second = till.sale_through_host(2_600, test_pan(7))
    assert second["outcome"] == "authorized" and second["rrn"] != answer["rrn"]


def test_a_retried_authorize_answers_the_recorded_outcome_without_sending_again(
        till: HostTill, simulator: Any) -> None:
    txn = till.ready(3_000, test_pan(8))
    sent_at = datetime.now(SHANGHAI).isoformat()
    first = till.authorize_request(txn, test_pan(8), sent_at).json()
    again = till.authorize_request(txn, test_pan(8), sent_at).json()  # the very same request, resent

    assert again["replayed"] is True and again["rrn"] == first["rrn"] and again["outcome"] == "authorized"
    assert len(journal(simulator)) == 1


# ---- host down -------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_host_that_is_down_gets_a_clear_error_and_nothing_is_charged(
        settings: Settings, tmp_path: Path, admin_token: str, offset_clock: OffsetClock) -> None:
    port = _free_port()
    down = build_services(host_settings(settings, port), clock=offset_clock, hasher=fast_hasher())
    try:
        with TestClient(create_app(services=down), raise_server_exceptions=False) as client:
            till = HostTill(client, admin_token).register().open()
            assert till.sign_on(expect=503)["code"] == "acquirer_unavailable"

            sim = AcquirerSimulator(tmp_path / "later.sqlite")
            with SimulatorThread(sim, port=port):
                till.sign_on()
            txn = till.ready(4_200, test_pan(9))
            refused = till.authorize_card(txn, test_pan(9), expect=503)
            assert refused["code"] == "acquirer_unavailable" and "nothing" in refused["detail"]
            assert till.state(txn)["outcome"] is None
            assert event_types(till, txn)[-2:] == ["AuthorizationRequested", "AuthorizationNotSent"]
            assert list(sim.journal.entries()) == []  # nothing reached the host
            assert asyncio.run(ViewInDoubtSource(down.ledger, down.views()).in_doubt()) == []  # nothing in doubt

            with SimulatorThread(sim, port=port):  # the host is back: the same transaction goes through
                txn.version = till.state(txn)["version"]
                assert till.authorize_card(txn, test_pan(9))["outcome"] == "authorized"
            assert [e.state for e in sim.journal.entries()] == ["approved"]
            sim.close()
    finally:
        down.close()


# ---- restarts ----------------------------------------------------------------------------------------------
def test_a_pending_reversal_survives_a_restart_of_the_service(
        settings: Settings, simulator: Any, admin_token: str, offset_clock: OffsetClock) -> None:
    simulator[0].set_rules([{"action": "drop", "kinds": ["sale", "reversal"]}])
    first = build_services(host_settings(settings, simulator[1]), clock=offset_clock, hasher=fast_hasher())
    with TestClient(create_app(services=first), raise_server_exceptions=False) as client:
        till = HostTill(client, admin_token).register().open()
        till.sign_on()
        txn = till.ready(6_600, test_pan(10))
        assert till.authorize_card(txn, test_pan(10))["outcome"] == "unknown"
        time.sleep(1.0)  # reversals are tried and dropped
        assert till.state(txn)["outcome"] == "unknown"
    first.close()

    simulator[0].set_rules([])
    second = build_services(host_settings(settings, simulator[1]), clock=offset_clock, hasher=fast_hasher())
    try:
        with TestClient(create_app(services=second), raise_server_exceptions=False) as client:
            till.client = client
            assert till.wait_for_outcome(txn, "reversed")["outcome"] == "reversed"
        assert [e.state for e in journal(simulator)] == ["reversed"]
    finally:
        second.close()


def test_a_request_left_pending_by_a_stopped_service_is_resolved_by_reversal(
        settings: Settings, simulator: Any, admin_token: str, offset_clock: OffsetClock) -> None:
    first = build_services(host_settings(settings, simulator[1]), clock=offset_clock, hasher=fast_hasher())
    with TestClient(create_app(services=first), raise_server_exceptions=False) as client:
        till = HostTill(client, admin_token).register().open()
        till.sign_on()
        txn = till.ready(7_700, test_pan(11))
        # The service recorded the request and stopped before it could send it or hear back.
        stamp = Stamp(UUID(till.terminal_id), "01", None, offset_clock.now())
        first.executor.run(host_commands.begin_authorization(UUID(txn.stream_id), txn.version, stamp,
                                                             CardData(test_pan(11))))
    first.close()

    offset_clock.offset = timedelta(minutes=2)  # long past the reply timeout
    second = build_services(host_settings(settings, simulator[1]), clock=offset_clock, hasher=fast_hasher())
    try:
        with TestClient(create_app(services=second), raise_server_exceptions=False) as client:
            till.client = client
            state = till.wait_for_outcome(txn, "reversed")
        assert state["outcome"] == "reversed"
        assert event_types(till, txn)[-3:] == ["AuthorizationRequested", "OutcomeUnknown", "Reversed"]
        assert journal(simulator) == []  # never sent: the host answered the reversal 25, nothing to cancel
    finally:
        second.close()


def test_a_request_whose_commit_the_executor_runs_again_is_still_sent_but_a_clients_retry_is_not(
        settings: Settings, simulator: Any, admin_token: str, offset_clock: OffsetClock) -> None:
    services = build_services(host_settings(settings, simulator[1]), clock=offset_clock, hasher=fast_hasher())
    try:
        with TestClient(create_app(services=services), raise_server_exceptions=False) as client:
            till = HostTill(client, admin_token).register().open()
            till.sign_on()
            txn = till.ready(7_700, test_pan(12))
            stamp = Stamp(UUID(till.terminal_id), "01", None, offset_clock.now())
            command = host_commands.begin_authorization(UUID(txn.stream_id), txn.version, stamp,
                                                        CardData(test_pan(12)))
            first = services.executor.run(command)
            # The group committer runs the same command again when the store took the append but the
            # connection broke before it said so (the retried insert fails with IntegrityError).
            again = services.executor.run(command)
            retry = services.executor.run(host_commands.begin_authorization(
                UUID(txn.stream_id), txn.version, Stamp(UUID(till.terminal_id), "01", None, offset_clock.now()),
                CardData(test_pan(12))))
        assert first.request is not None and again.request == first.request
        assert again.result.replayed and again.result.version == first.result.version
        assert retry.request is None  # another HTTP request: a client's retry, sent by whoever made it
    finally:
        services.close()


# ---- void, refund, settlement ---------------------------------------------------------------------------
def test_void_refund_and_settlement_go_to_the_host_and_its_file_imports_cleanly(
        till: HostTill, simulator: Any, client: TestClient, admin_token: str, tmp_path: Path,
        services: Services) -> None:
    pan = test_pan(12)
    sale, _ = till.sale_through_host(10_000, pan)
    voided_sale, _ = till.sale_through_host(2_000, pan)
    void, void_answer = till.sale_through_host(2_000, pan, kind="void", original=voided_sale)
    assert void_answer["outcome"] == "authorized"

    first = till.settle_through_host()
    assert first["host"]["balanced"] is True
    assert first["host"]["ledger_totals"] == {"debit_count": 1, "debit_minor": 10_000, "credit_count": 0,
                                              "credit_minor": 0}
    assert first["host"]["host_totals"] == first["host"]["ledger_totals"]
    assert first["open_batch_no"] == "000002"

    refund, refund_answer = till.sale_through_host(3_000, pan, kind="refund", original=sale)
    assert refund_answer["outcome"] == "authorized"
    too_much = till.begin("refund", "card", sale)
    refused = till.append(too_much, {"type": "AmountEntered", "amount_minor": 7_001, "currency": "CNY"}, expect=422)
    assert refused["code"] == "refund_exceeds_remaining"
    till.append(too_much, {"type": "TransactionCancelled", "reason": "over the remaining amount"})
    second = till.settle_through_host()
    assert second["host"]["balanced"] is True and second["host"]["ledger_totals"]["credit_minor"] == 3_000

    states = {e.rrn: e.state for e in journal(simulator)}
    assert sorted(states.values()) == ["approved", "approved", "approved", "voided"]
    files = sorted((tmp_path / "host-files").glob("settlement-*.csv"))
    assert files, "the simulator writes the day's settlement file"
    accountant = _token(client, admin_token, "accountant")
    imported = client.post("/v1/settlements", content=files[-1].read_bytes(),
                           headers={**accountant, "Content-Type": "text/csv"})
    assert imported.status_code == 201, imported.text
    head = services.ledger.recorder.max_notification_id()  # match once the view has every transaction
    matches = client.get(f"/v1/settlements/{imported.json()['settlement_id']}/matches",
                         params={"wait_for_position": head}, headers=accountant)
    assert matches.status_code == 200, matches.text
    summary = matches.json()
    assert summary["balanced"] is True, summary
    assert summary["summary"]["matched"] == 2 and summary["summary"]["file_only"] == 0


def test_a_settlement_the_host_does_not_balance_records_both_totals_and_closes_the_batch(
        till: HostTill, simulator: Any) -> None:
    till.sale_through_host(1_000, test_pan(13))
    # Another device sends a sale for this terminal and batch that the ledger never saw.
    host = Iso8583AcquirerHost("127.0.0.1", simulator[1], timeout_s=2.0)
    stray = FinancialRequest(kind="sale", terminal=TerminalRef("898310048990001", till.terminal_no),
                             batch_no=till.batch_no, stan="999999", amount_minor=500, currency="CNY",
                             card=CardData(test_pan(14)), entry_mode="swipe", chip_data={},
                             local_time=datetime.now(SHANGHAI))
    assert asyncio.run(host.authorize(stray)).approved

    answer = till.settle_through_host()["host"]
    assert answer["balanced"] is False
    assert answer["ledger_totals"]["debit_minor"] == 1_000 and answer["host_totals"]["debit_minor"] == 1_500
    assert till.batch_no == "000002"


# ---- rules of host mode --------------------------------------------------------------------------------
def test_terminals_cannot_record_outcomes_themselves_when_a_host_is_configured(till: HostTill) -> None:
    txn = till.ready(1_000, test_pan(15))
    response = till.post(f"/v1/transactions/{txn.stream_id}/events", txn.version, {
        "type": "Authorized", "auth_code": "A1B2C3", "rrn": "000000000001", "response_code": "00"})
    assert response.status_code == 422 and response.json()["code"] == "authorized_by_host"
    settle = till.post(f"/v1/till-sessions/{till.session.stream_id}/events", till.session.version,
                       {"type": "BatchSettled", "batch_no": till.batch_no})
    assert settle.json()["code"] == "authorized_by_host"


def test_a_card_that_is_not_the_recorded_card_is_refused_before_sending(till: HostTill, simulator: Any) -> None:
    txn = till.ready(1_000, test_pan(16))
    refused = till.authorize_card(txn, test_pan(17), expect=422)
    assert refused["code"] == "card_mismatch" and test_pan(17) not in str(refused)
    assert journal(simulator) == []


def test_a_terminal_must_sign_on_before_card_requests(client: TestClient, admin_token: str, simulator: Any) -> None:
    till = HostTill(client, admin_token).register().open()
    txn = till.ready(1_000, test_pan(18))
    assert till.authorize_card(txn, test_pan(18), expect=422)["code"] == "sign_on_required"
    till.sign_on()
    assert till.authorize_card(txn, test_pan(18))["outcome"] == "authorized"


def test_no_full_card_number_is_stored_anywhere(till: HostTill, settings: Settings, simulator: Any,
                                                tmp_path: Path) -> None:
    pans = [test_pan(20 + i) for i in range(3)]
    simulator[0].set_rules([{"pan_suffix": pans[1][-4:], "action": "drop", "kinds": ["sale"], "times": 1}])
    for pan in pans:
        txn, answer = till.sale_through_host(1_500, pan)
        if answer["outcome"] == "unknown":
            assert till.wait_for_outcome(txn, "reversed")["outcome"] == "reversed"
    text = stored_text(settings) + (tmp_path / "host-journal.sqlite").read_bytes().decode("latin-1")
    assert not [pan for pan in pans if pan in text]


# ---- randomized run -----------------------------------------------------------------------------------------
def test_after_a_randomized_run_the_ledger_and_the_host_journal_agree(till: HostTill, simulator: Any) -> None:
    rng = random.Random(20261124)
    actions = [{"action": "approve"}, {"action": "decline", "response_code": "51"}, {"action": "drop"},
               {"action": "slow", "delay_ms": 900}, {"action": "duplicate"}, {"action": "disconnect"},
               {"action": "slow", "delay_ms": 50}]
    transactions: list[Stream] = []
    for serial in range(30):
        pan = test_pan(100 + serial)
        simulator[0].set_rules([{**rng.choice(actions), "kinds": ["sale"]}])
        txn = till.ready(rng.randint(1, 50_000), pan)
        till.authorize_card(txn, pan)
        transactions.append(txn)
        if till.state(txn)["outcome"] == "unknown":
            simulator[0].set_rules([])
            till.wait_for_outcome(txn, "reversed")

    outcomes = {till.state(t)["trace_no"]: till.state(t) for t in transactions}
    assert all(s["outcome"] in ("authorized", "declined", "reversed") for s in outcomes.values())
    host = {e.stan: e for e in journal(simulator)}
    ledger_authorized = {stan for stan, s in outcomes.items() if s["outcome"] == "authorized"}
    host_charged = {stan for stan, e in host.items() if e.state == "approved"}
    assert ledger_authorized == host_charged
    for stan in ledger_authorized:
        assert host[stan].rrn == outcomes[stan]["authorization"]["rrn"]
    assert len(ledger_authorized) > 3 and any(s["outcome"] == "reversed" for s in outcomes.values())


def _token(client: TestClient, admin_token: str, role: str) -> dict[str, str]:
    response = client.post("/v1/tokens", json={"role": role}, headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}
