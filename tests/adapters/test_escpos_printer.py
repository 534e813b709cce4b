"""EscposPrinter over python-escpos' real backends: Network against a PrinterSink on 127.0.0.1, and Dummy.

What the printer received is read back with the ESC/POS decoder, so the tests assert on paper, not on
calls. A status query answers only after the sink handled everything sent before it: ``status()`` is
the barrier before asserting that nothing was stored.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from adapters.escpos_decoder import EscposDocument, decode_escpos
from adapters.escpos_printer import EscposPrinter, parse_printer_url
from adapters.printer_sink import PrinterSink
from domain.hardware import PaperOut, PrinterOffline, PrinterStatus, PrinterUnavailable
from projections.receipt import ReceiptFacts, display_width, receipt_document, render_text

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 2.0


@pytest.fixture
def sink() -> Iterator[PrinterSink]:
    with PrinterSink() as running:
        yield running


@pytest.fixture
def printer(sink: PrinterSink) -> Iterator[EscposPrinter]:
    with EscposPrinter(f"tcp://127.0.0.1:{sink.port}", timeout_s=WAIT_S) as connected:
        yield connected


def printed(sink: PrinterSink, n: int = 1) -> EscposDocument:
    assert sink.wait_for_jobs(n, WAIT_S)
    return decode_escpos(sink.jobs[n - 1])


def slip(columns: int) -> str:
    facts = ReceiptFacts(
        transaction_id=str(uuid.UUID(int=7)), kind="sale", payment_method="card", result="approved",
        merchant_name="上海测试便利店", merchant_no="123456789012345", terminal_no="12345678", operator_no="01",
        batch_no="000001", trace_no="000042", local_time=datetime(2026, 11, 24, 10, 30, tzinfo=ZoneInfo("Asia/Shanghai")),
        amount_minor=1250, currency="CNY", masked_pan="622202******1234", card_brand="unionpay", entry_mode="chip",
        auth_code="A1B2C3", rrn="123456789012", cvm="pin_online")
    return render_text(receipt_document(facts, "customer"), columns, "zh")


# ---- printing -------------------------------------------------------------------------------------

def test_chinese_lines_print_exactly_as_sent(sink: PrinterSink, printer: EscposPrinter) -> None:
    # python-escpos 3.1 on its own prints "?12.50" and "??" for the last two lines.
    text = "合计：￥12.50\n￥12.50\n，。\nTOTAL 12.50\n"
    printer.print_receipt(text, "txn-1")
    doc = printed(sink)
    assert doc.text == text
    assert doc.unknown_commands == []


@pytest.mark.parametrize("columns", [32, 48])
def test_a_rendered_slip_prints_to_its_column_width(sink: PrinterSink, columns: int) -> None:
    text = slip(columns)
    with EscposPrinter(f"tcp://127.0.0.1:{sink.port}", columns=columns, timeout_s=WAIT_S) as printer:
        printer.print_receipt(text, "txn-2")
    doc = printed(sink)
    assert doc.text == text
    assert {display_width(line) for line in doc.lines} == {columns}


def test_the_qr_code_holds_the_reference_and_the_job_ends_with_one_cut(sink: PrinterSink,
                                                                       printer: EscposPrinter) -> None:
    reference = str(uuid.uuid4())
    printer.print_receipt("x\n", reference)
    doc = printed(sink)
    assert doc.qr_codes == [reference]
    assert doc.cuts == 1
    assert doc.status_queries == []  # the queries before the job are not part of it


def test_chinese_mode_is_switched_on_only_when_asked(sink: PrinterSink) -> None:
    for chinese_mode in (True, False):
        with EscposPrinter(f"tcp://127.0.0.1:{sink.port}", chinese_mode=chinese_mode) as printer:
            printer.print_receipt("中文\n", "r")
    assert sink.wait_for_jobs(2, WAIT_S)
    assert [decode_escpos(job).chinese_mode for job in sink.jobs] == [True, False]


def test_unencodable_and_control_characters_print_as_question_marks(sink: PrinterSink,
                                                                    printer: EscposPrinter) -> None:
    printer.print_receipt("a\ud800b\nc\x1dV\x00d\x10\x04\x01\n", "r")
    doc = printed(sink)
    assert doc.lines == ["a?b", "c?V?d???"]
    assert doc.cuts == 1  # the cut hidden in the text did not reach the printer as one


def test_a_reference_that_cannot_be_a_qr_code_is_refused(printer: EscposPrinter) -> None:
    for reference in ("", "a\nb"):
        with pytest.raises(ValueError, match="reference"):
            printer.print_receipt("x\n", reference)


# ---- status ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("switch", "expected"), [
    (None, PrinterStatus(online=True, paper="ok")),
    ("near_end", PrinterStatus(online=True, paper="near_end")),
    ("paper_out", PrinterStatus(online=True, paper="out")),
    ("offline", PrinterStatus(online=False, paper="ok")),
])
def test_status_reads_online_and_paper(sink: PrinterSink, printer: EscposPrinter, switch: str | None,
                                       expected: PrinterStatus) -> None:
    if switch:
        setattr(sink, switch, True)
    assert printer.status() == expected


def test_without_paper_nothing_is_sent(sink: PrinterSink, printer: EscposPrinter) -> None:
    sink.paper_out = True
    with pytest.raises(PaperOut, match="paper"):
        printer.print_receipt("x\n", "r")
    printer.status()
    assert sink.jobs == []
    assert sink.discarded == 0


def test_an_offline_printer_is_sent_nothing(sink: PrinterSink, printer: EscposPrinter) -> None:
    sink.offline = True
    with pytest.raises(PrinterOffline, match="offline"):
        printer.print_receipt("x\n", "r")
    printer.status()
    assert sink.discarded == 0


def test_out_of_paper_wins_over_offline(sink: PrinterSink, printer: EscposPrinter) -> None:
    # Real printers go offline when the roll ends; "no paper" is what the cashier can fix.
    sink.paper_out = sink.offline = True
    with pytest.raises(PaperOut):
        printer.print_receipt("x\n", "r")


@pytest.mark.parametrize("mode", ["garbage", "silent"])
def test_a_status_answer_that_is_not_one_makes_the_printer_unavailable(sink: PrinterSink, mode: str) -> None:
    sink.malformed_status = mode  # type: ignore[assignment]
    with (EscposPrinter(f"tcp://127.0.0.1:{sink.port}", timeout_s=0.2) as printer,
          pytest.raises(PrinterUnavailable, match="status byte|did not answer")):
        printer.print_receipt("x\n", "r")
    assert sink.jobs == []


# ---- the printer going away -----------------------------------------------------------------------

def test_a_powered_off_printer_is_unavailable(sink: PrinterSink, printer: EscposPrinter) -> None:
    printer.print_receipt("first\n", "r1")
    printed(sink)
    sink.power_off()
    with pytest.raises(PrinterUnavailable, match="connection refused") as raised:
        printer.status()
    assert raised.value.__cause__ is not None
    with pytest.raises(PrinterUnavailable):
        printer.print_receipt("second\n", "r2")
    sink.power_on()
    printer.print_receipt("third\n", "r3")
    assert printed(sink, 2).text == "third\n"


def test_the_next_job_reconnects_after_a_power_cycle(sink: PrinterSink, printer: EscposPrinter) -> None:
    printer.print_receipt("before\n", "r1")
    printed(sink)
    sink.power_off()
    sink.power_on()  # the printer's end of the open connection is gone
    printer.print_receipt("after\n", "r2")
    assert printed(sink, 2).text == "after\n"


def test_nothing_listening_is_unavailable_from_the_start() -> None:
    sink = PrinterSink().start()
    port = sink.port
    sink.close()
    with EscposPrinter(f"tcp://127.0.0.1:{port}", timeout_s=WAIT_S) as printer:
        with pytest.raises(PrinterUnavailable, match="nothing listens"):
            printer.status()
        with pytest.raises(PrinterUnavailable):
            printer.print_receipt("x\n", "r")


# ---- other backends -------------------------------------------------------------------------------

def test_a_dummy_printer_keeps_the_bytes_and_cannot_report_status() -> None:
    printer = EscposPrinter("dummy:", columns=48)
    assert not printer.status_supported
    assert printer.status() == PrinterStatus(online=True, paper="ok")
    printer.print_receipt("商户存根\n", "ref-9")
    printer.close()
    doc = decode_escpos(printer.output)
    assert (doc.text, doc.qr_codes, doc.chinese_mode, doc.cuts) == ("商户存根\n", ["ref-9"], True, 1)


def test_a_file_printer_writes_the_job_to_its_file(tmp_path: Path) -> None:
    device = tmp_path / "lp0"
    with EscposPrinter(f"file://{device}") as printer:
        printer.print_receipt("纸\n", "r")
    assert decode_escpos(device.read_bytes()).text == "纸\n"


def test_a_file_printer_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    with (EscposPrinter(f"file://{tmp_path}/missing/lp0") as printer,
          pytest.raises(PrinterUnavailable, match="no such file")):
        printer.print_receipt("x\n", "r")


@pytest.mark.parametrize(("url", "package"), [("usb://04b8:0202", "pyusb"), ("serial:///dev/ttyUSB0", "pyserial")])
def test_usb_and_serial_without_their_packages_are_unavailable(url: str, package: str) -> None:
    if _installed(package):
        pytest.skip(f"{package} is installed here")
    with EscposPrinter(url) as printer, pytest.raises(PrinterUnavailable, match=f"need the {package} package") as raised:
        printer.status()
    assert isinstance(raised.value.__cause__, RuntimeError)


def _installed(package: str) -> bool:
    return importlib.util.find_spec("usb" if package == "pyusb" else "serial") is not None


# ---- configuration --------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "", "   ", "127.0.0.1:9100", "http://127.0.0.1:9100", "tcp://127.0.0.1", "tcp://:9100", "tcp://h:0",
    "tcp://h:70000", "tcp://h:91x", "tcp://h:9100/path", "tcp://user@h:9100", "tcp://bad_host!:9100",
    "usb://04b8", "usb://xyz:0202", "usb://0000:0202", "usb://04b8:0202?out_ep=zz", "usb://04b8:0202?speed=1",
    "serial://dev/ttyUSB0", "serial:///dev/ttyUSB0?baudrate=abc", "serial:///dev/ttyUSB0?baudrate=1234",
    "file://", "file:///", "file://host/dev/lp0", "dummy:x", "dummy://x", "tcp://h:9100#frag",
])
def test_invalid_urls_are_refused_with_a_reason(url: str) -> None:
    with pytest.raises(ValueError, match="printer URL"):
        EscposPrinter(url)


def test_valid_urls_are_understood() -> None:
    tcp = parse_printer_url("tcp://192.168.1.50:9100")
    assert (tcp.kind, tcp.host, tcp.port) == ("tcp", "192.168.1.50", 9100)
    usb = parse_printer_url("usb://04b8:0202?out_ep=0x03")
    assert (usb.vendor_id, usb.product_id, usb.out_ep) == (0x04B8, 0x0202, 0x03)
    serial = parse_printer_url("serial:///dev/ttyUSB0?baudrate=19200")
    assert (serial.path, serial.baudrate) == ("/dev/ttyUSB0", 19200)
    assert parse_printer_url("file:///dev/usb/lp0").path == "/dev/usb/lp0"
    assert parse_printer_url("dummy:").kind == "dummy"


def test_name_and_columns_are_checked() -> None:
    assert EscposPrinter("tcp://printer.local:9100").name == "tcp://printer.local:9100"
    assert len(EscposPrinter(f"tcp://{'a' * 80}.local:9100").name) == 64
    for bad in ({"name": ""}, {"name": "x" * 65}, {"columns": 40}, {"timeout_s": 0}):
        with pytest.raises(ValueError):
            EscposPrinter("dummy:", **bad)


def test_importing_the_adapter_leaves_logging_and_temp_folders_alone(tmp_path: Path) -> None:
    # A fresh interpreter: in this one escpos is imported already, and pytest owns the root logger.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "ESCPOS_CAPABILITIES_PICKLE_DIR"}
    env.update(TMPDIR=str(scratch), XDG_CACHE_HOME=str(tmp_path / "cache"))
    script = (
        "import logging\n"
        "from adapters.escpos_printer import EscposPrinter\n"
        "from adapters.printer_sink import PrinterSink\n"
        "with PrinterSink() as sink, EscposPrinter(f'tcp://127.0.0.1:{sink.port}') as printer:\n"
        "    printer.print_receipt('x\\n', 'r')\n"  # escpos' backends log through the root logger too
        "print(len(logging.getLogger().handlers))\n"
    )
    for _ in range(2):  # the second import reads the capabilities cache the first one wrote
        result = subprocess.run([sys.executable, "-W", "error", "-c", script], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=30, check=False)
        assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "0", "")
    assert list(scratch.iterdir()) == []
    assert [p.name for p in (tmp_path / "cache" / "till-ledger" / "escpos").iterdir()] == \
        [f"{sys.version.split()[0]}.capabilities.pickle"]


def test_a_half_written_capabilities_cache_is_rebuilt(tmp_path: Path) -> None:
    cache = tmp_path / "escpos"
    cache.mkdir()
    (cache / f"{sys.version.split()[0]}.capabilities.pickle").write_bytes(b"\x80\x02}q\x00(X")
    env = {**os.environ, "ESCPOS_CAPABILITIES_PICKLE_DIR": str(cache)}
    result = subprocess.run([sys.executable, "-c", "import adapters.escpos_printer"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=30, check=False)
    assert (result.returncode, result.stderr) == (0, "")
