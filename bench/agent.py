"""The terminal agent's own figures (targets: resident memory ≤ 100 MB; card inserted -> authorization
request sent ≤ 300 ms, excluding pcscd's 400 ms polling).

One run, on the virtual stack: a real pcscd with the vpcd virtual reader, a virtual EMV card served
into it, `till serve --acquirer-sim` in its own process (SQLite, or PostgreSQL with --database-url),
a TCP receipt printer, and this process as the agent. Two measurements per card read, from the
moment PC/SC hands the agent a connection to the inserted card (pcscd's polling is before that):

* baseline — the EMV kernel alone on the same reader: SELECT PPSE, SELECT AID, GPO, READ RECORDs,
  offline PIN VERIFY and GENERATE AC, nothing journaled, nothing sent;
* agent — a whole card sale: the same card work, plus CardPresented and the CVM events journaled
  (fsync) and forwarded, up to the moment the authorization request leaves for the service.

Resident memory is this process's peak RSS after the run: the agent with its printer sink thread
(the service runs in its own process; nothing of api/ is imported here).

    .venv/bin/python bench/agent.py --sales 30
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.escpos_printer import EscposPrinter  # noqa: E402
from adapters.offline_pin_pad import OfflinePinPad  # noqa: E402
from adapters.pcsc_reader import PcscCardReader  # noqa: E402
from adapters.printer_sink import PrinterSink  # noqa: E402
from adapters.virtual_card import VirtualCard  # noqa: E402
from adapters.vpcd_link import VpcdCardLink  # noqa: E402
from terminal_agent.bootstrap import build_agent  # noqa: E402
from terminal_agent.emv import TerminalConfig, generate_ac, read_application, select_cvm  # noqa: E402
from terminal_agent.scripted_cashier import Customer, ScriptedCashier  # noqa: E402
from terminal_agent.settings import AgentSettings  # noqa: E402
from terminal_agent.simulate import Admin  # noqa: E402
from terminal_agent.virtual_hands import VpcdHands  # noqa: E402
from tests.hardware.pcscd import PcscDaemon  # noqa: E402

READER = "Virtual PCD 00 00"


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return (f"p50 {statistics.median(ordered):6.1f}  p95 {pick(0.95):6.1f}  p99 {pick(0.99):6.1f}  "
            f"max {ordered[-1]:6.1f} ms  (n={len(ordered)})")


def kernel_read_ms(reader: PcscCardReader) -> float:
    """Baseline: the card work alone, from the connection to the cryptogram."""
    config = TerminalConfig()
    with VpcdCardLink(VirtualCard("unionpay")) as link:
        link.insert()
        channel = None
        while channel is None:
            channel = reader.wait_for_card(2.0)
        started = time.perf_counter()
        now = datetime.now(UTC)
        app = read_application(channel, config, amount_minor=12_345, currency="CNY", when=now,
                               unpredictable_number=os.urandom(4))
        choice = select_cvm(app, amount_minor=12_345, entry_mode="chip", no_cvm_limit_minor=0, config=config)
        OfflinePinPad(lambda tries: "1234").verify_offline(channel)
        generate_ac(channel, app, amount_minor=12_345, currency="CNY", when=now, unpredictable_number=os.urandom(4),
                    cvm_results=choice.results_after(True), tvr="0000000000")
        elapsed = (time.perf_counter() - started) * 1000
        channel.close()
    return elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="run the service on PostgreSQL (default SQLite)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="till-bench-agent-"))
    port = free_port()
    env = {**os.environ, "TILL_DATA_DIR": str(work / "service")}
    if args.database_url:
        env["TILL_DATABASE_URL"] = args.database_url
    service = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--acquirer-sim", "--port", str(port),
                                "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        token_file = work / "service" / "admin.token"
        deadline = time.monotonic() + 30
        while not token_file.exists() or not _healthy(url):
            if time.monotonic() > deadline or service.poll() is not None:
                raise SystemExit("bench/agent.py: the service did not start")
            time.sleep(0.2)
        with PcscDaemon(), PrinterSink() as sink:
            reader = PcscCardReader(READER, "chip")
            baseline = [kernel_read_ms(reader) for _ in range(args.warmup + args.sales)][args.warmup:]

            admin = Admin(url, token_file.read_text().strip())
            terminal_id, token = admin.terminal(f"{int(time.time()) % 10**8:08d}")
            hands = VpcdHands()
            cashier = ScriptedCashier(hands)
            settings = AgentSettings(service_url=url, token=token, terminal_id=terminal_id,  # type: ignore[arg-type]
                                     data_dir=work / "agent", printer_url=f"tcp://127.0.0.1:{sink.port}")
            agent = build_agent(settings, cashier, readers=[reader], printer=EscposPrinter(settings.printer_url))
            cashier.next_customer(Customer())
            agent.till.start_of_day("simulated-cashier-01", 0)
            timings = []
            for i in range(args.warmup + args.sales):
                cashier.next_customer(Customer(amount_minor=10_000 + i, card=VirtualCard("unionpay"), pins=["1234"]))
                result = agent.card.run("sale")
                if result.outcome != "approved" or result.card_to_authorize_ms is None:
                    raise SystemExit(f"bench/agent.py: sale {i} ended {result.outcome}: {cashier.codes()[-5:]}")
                if i >= args.warmup:
                    timings.append(result.card_to_authorize_ms)
            hands.take_back()
            agent.close()
    finally:
        service.terminate()
        service.wait(timeout=10)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store = "PostgreSQL" if args.database_url else "SQLite"
    print(f"bench/agent.py — {args.sales} chip sales with offline PIN through pcscd + vpcd; service on {store}")
    print(f"  baseline, EMV kernel alone:          {percentiles(baseline)}")
    print(f"  agent, card -> authorization sent:   {percentiles(timings)}")
    print(f"  agent's peak resident memory:        {peak_mb:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
