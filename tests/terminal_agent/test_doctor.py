"""`till-agent doctor` against a real counter setup: the service on a loopback socket, the TCP printer sink,
pcscd with the vpcd readers, and a journal on disk, each broken in turn. TILL_AGENT_* variables are the
only input, as at a real counter."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from adapters.group_commit import run_alone
from adapters.printer_sink import PrinterSink
from adapters.settings import Settings
from api.app import build_services
from api.auth import new_token
from domain.ledger import Ledger
from domain.stamp import Stamp
from terminal_agent.cli import main
from terminal_agent.journal import Journal
from tests.conftest import fast_hasher
from tests.e2e.live_service import LiveService, free_port
from tests.hardware.pcscd import PcscDaemon, PcscdUnavailable

TOKEN = "tl_agent-doctor-test-token-never-printed"


@pytest.fixture(scope="module")
def pcscd() -> Iterator[PcscDaemon]:
    daemon = PcscDaemon()
    try:
        daemon.start()
    except PcscdUnavailable as exc:  # like tests/hardware: a missing pcscd fails, it never skips
        pytest.fail(str(exc), pytrace=False)
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No TILL_* variable from the outside; a counter with no printer or reader to ask unless a test says so."""
    for name in list(os.environ):
        if name.startswith("TILL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TILL_AGENT_DATA_DIR", str(tmp_path / "agent"))
    monkeypatch.setenv("TILL_AGENT_SERVICE_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("TILL_AGENT_TERMINAL_ID", str(uuid4()))
    monkeypatch.setenv("TILL_AGENT_TOKEN", TOKEN)
    monkeypatch.setenv("TILL_AGENT_PRINTER_URL", "dummy:")
    monkeypatch.setenv("TILL_AGENT_CONTACT_READER", "")
    monkeypatch.setenv("TILL_AGENT_CONTACTLESS_READER", "")


@dataclass
class Registered:
    service: LiveService
    admin: httpx.Client
    terminal_id: str
    token_id: str


@pytest.fixture
def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registered]:
    """The service on loopback, one terminal registered on it, and the agent's variables pointing at both."""
    settings = Settings(data_dir=tmp_path / "service")
    with LiveService(lambda: build_services(settings, hasher=fast_hasher(), create_tables=True)) as service:
        services = service.services
        assert services is not None
        admin_token = new_token()
        run_alone(services.ledger, Ledger.issue_token(Stamp(None, None, None, services.clock.now()), admin_token,
                                                      "admin", None, "doctor test"))
        with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {admin_token}"},
                          timeout=10) as admin:
            terminal = admin.post("/v1/terminals", json={"merchant_name": "示范超市", "merchant_no": "898310048990001",
                                                         "terminal_no": "12345678"})
            assert terminal.status_code == 201, terminal.text
            terminal_id = terminal.json()["terminal_id"]
            token = admin.post("/v1/tokens", json={"role": "terminal", "terminal_id": terminal_id})
            assert token.status_code == 201, token.text
            monkeypatch.setenv("TILL_AGENT_SERVICE_URL", service.url)
            monkeypatch.setenv("TILL_AGENT_TERMINAL_ID", terminal_id)
            monkeypatch.setenv("TILL_AGENT_TOKEN", token.json()["token"])
            yield Registered(service, admin, terminal_id, token.json()["token_id"])


@pytest.fixture
def printer(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrinterSink]:
    with PrinterSink() as sink:
        monkeypatch.setenv("TILL_AGENT_PRINTER_URL", f"tcp://127.0.0.1:{sink.port}")
        yield sink


@pytest.fixture
def readers(pcscd: PcscDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILL_AGENT_CONTACT_READER", "Virtual PCD 00 00")
    monkeypatch.setenv("TILL_AGENT_CONTACTLESS_READER", "Virtual PCD 00 01")


def doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main(["doctor"])
    return status, capsys.readouterr().out


def findings(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, object]]]:
    status = main(["doctor", "--json"])
    return status, {c["check"]: c for c in json.loads(capsys.readouterr().out)["checks"]}


def line(out: str, check: str) -> str:
    """The finding of ``check``, with the column padding squeezed to one space."""
    return next(" ".join(row.split()) for row in out.splitlines() if f" {check}  " in row)


def test_a_healthy_counter_passes_every_check_and_exits_0(
        registered: Registered, printer: PrinterSink, readers: None, capsys: pytest.CaptureFixture[str]) -> None:
    Journal(Path(os.environ["TILL_AGENT_DATA_DIR"]) / "journal.sqlite3").close()  # as the first run leaves it

    status, out = doctor(capsys)

    assert status == 0, out
    assert out.rstrip().endswith("All 7 checks passed."), out
    assert "the service accepts the token for terminal 12345678 (示范超市)" in line(out, "token")
    assert "is ready (online, paper loaded)" in line(out, "printer")
    assert "chip slot 'Virtual PCD 00 00' and the contactless pad 'Virtual PCD 00 01'" in line(out, "card readers")
    assert "0 events queued" in line(out, "journal")
    assert os.environ["TILL_AGENT_TOKEN"] not in out


def test_a_printer_out_of_paper_is_a_problem_that_names_the_paper(
        registered: Registered, printer: PrinterSink, capsys: pytest.CaptureFixture[str]) -> None:
    printer.paper_out = True

    status, out = doctor(capsys)

    assert status == 1
    assert line(out, "printer") == (f"PROBLEM printer the receipt printer at tcp://127.0.0.1:{printer.port} is out "
                                    "of paper — load a new paper roll")
    assert printer.jobs == []  # a status read, nothing printed


def test_a_printer_that_is_switched_off_is_a_problem_saying_so(
        printer: PrinterSink, capsys: pytest.CaptureFixture[str]) -> None:
    printer.power_off()

    status, out = doctor(capsys)

    assert status == 1
    assert "does not answer (connection refused" in line(out, "printer")
    assert "is it switched on and connected? check TILL_AGENT_PRINTER_URL" in line(out, "printer")


def test_the_service_not_running_is_a_problem_and_the_token_is_not_tried(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = doctor(capsys)

    assert status == 1
    assert "does not answer (connection refused: nothing listens there) — is `till serve` running there?" in line(
        out, "service")
    assert line(out, "token") == "skipped token not checked until the service check passes"


def test_a_revoked_token_is_refused_in_plain_words(
        registered: Registered, capsys: pytest.CaptureFixture[str]) -> None:
    assert registered.admin.delete(f"/v1/tokens/{registered.token_id}").status_code == 204

    status, found = findings(capsys)

    assert status == 1
    assert found["token"]["message"] == "the terminal token was refused: revoked or mistyped"
    assert f"till token create --role terminal --terminal {registered.terminal_id}" in str(found["token"]["fix"])


def test_a_reader_pcscd_does_not_list_is_named_with_the_readers_it_does_list(
        pcscd: PcscDaemon, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TILL_AGENT_CONTACT_READER", "ACS ACR39U 00 00")

    status, out = doctor(capsys)

    assert status == 1
    readers = line(out, "card readers")
    assert "pcscd lists no reader named 'ACS ACR39U 00 00' (TILL_AGENT_CONTACT_READER); it lists" in readers
    assert "'Virtual PCD 00 00'" in readers


def test_events_the_service_refused_are_a_warning_with_their_count(capsys: pytest.CaptureFixture[str]) -> None:
    journal = Journal(Path(os.environ["TILL_AGENT_DATA_DIR"]) / "journal.sqlite3")
    try:
        for version in (1, 2, 3):
            seq = journal.append("transaction", str(uuid4()), version, {"event": {"type": "AmountEntered"}})
            if version != 3:
                journal.mark_rejected(seq, "amount_out_of_range", "over the terminal's limit")
    finally:
        journal.close()

    _, found = findings(capsys)

    assert found["journal"]["status"] == "warning"
    assert found["journal"]["facts"] == {"queued": 1, "rejected": 2}
    assert "the service refused 2 events" in str(found["journal"]["message"])
    assert "`till-agent queue`" in str(found["journal"]["fix"])


def test_a_bad_setting_names_its_variable_and_the_token_is_never_printed(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TILL_AGENT_REQUEST_TIMEOUT_S", "-1")

    status, out = doctor(capsys)

    assert status == 1
    assert "TILL_AGENT_REQUEST_TIMEOUT_S='-1' is not valid (input should be greater than 0)" in line(out, "settings")
    assert "Traceback" not in out and TOKEN not in out


def test_a_missing_terminal_id_is_a_problem_that_says_where_to_find_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TILL_AGENT_TERMINAL_ID")

    status, out = doctor(capsys)

    assert status == 1
    assert line(out, "terminal") == ("PROBLEM terminal TILL_AGENT_TERMINAL_ID is not set — set it to the terminal's "
                                     "id (POST /v1/terminals answers it)")


def test_doctor_help_tells_a_newcomer_what_it_checks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])

    text = capsys.readouterr().out
    assert "paper low or out" in text and "pcscd" in text and "--json" in text
