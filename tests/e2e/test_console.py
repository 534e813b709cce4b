"""The interactive agent, as a cashier uses it: `till-agent run` in its own process, answered at its
prompts, with a virtual chip card in pcscd's reader and the TCP printer."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from adapters.escpos_decoder import decode_escpos
from adapters.printer_sink import PrinterSink
from adapters.virtual_card import VirtualCard
from adapters.vpcd_link import VpcdCardLink
from tests.e2e.conftest import PASSWORD, register
from tests.e2e.live_service import LiveService
from tests.hardware.pcscd import PcscDaemon


class Console:
    """A child process's console: what it printed so far, and answers typed at its prompts."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process, self.output, self._seen = process, "", 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for chunk in iter(lambda: self.process.stdout.read(1), ""):  # type: ignore[union-attr]
            self.output += chunk

    def expect(self, text: str, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.output[self._seen:]:
            assert time.monotonic() < deadline, f"no {text!r} within {timeout_s} s; the console shows:\n{self.output}"
            time.sleep(0.02)
        self._seen = self.output.index(text, self._seen) + len(text)

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()


def test_the_console_walks_a_cashier_through_a_chip_sale_in_english(
        pcscd: PcscDaemon, service: LiveService, printer: PrinterSink, tmp_path: Path) -> None:
    admin, terminal_id, token = register(service)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TILL_AGENT_SERVICE_URL": service.url,
           "TILL_AGENT_TOKEN": token, "TILL_AGENT_TERMINAL_ID": terminal_id,
           "TILL_AGENT_DATA_DIR": str(tmp_path / "agent"), "TILL_AGENT_PRINTER_URL": f"tcp://127.0.0.1:{printer.port}"}
    process = subprocess.Popen([sys.executable, "-m", "terminal_agent.cli", "run", "--lang", "en"], env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    console = Console(process)
    try:
        console.expect("Operator password")
        console.type(PASSWORD)
        console.expect("Float")
        console.type("500")
        console.expect("Signed on with the bank")
        console.expect("> ")
        console.type("1")
        console.expect("Amount")
        console.type("12.50")
        console.expect("Customer: please confirm CNY 12.50")
        console.type("y")
        console.expect("Insert, tap or swipe the card")
        with VpcdCardLink(VirtualCard("unionpay")) as card:
            card.insert()
            console.expect("PIN")
            console.type("1234")
            console.expect("Approved: auth code")
            console.expect("Transaction complete")
        console.expect("> ")
        console.type("0")
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
        admin.close()

    assert "1234" not in console.output.split("PIN", 1)[1].split("Approved", 1)[0]  # the PIN is never echoed
    assert printer.wait_for_jobs(2, 5)
    merchant = decode_escpos(printer.jobs[0]).text
    assert "商户存根" in merchant and "12.50" in merchant
