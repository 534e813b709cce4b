"""``till-agent``: the counter process, and the virtual hardware to try it without a card reader or printer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Till Ledger terminal agent — the program at the counter. It walks the cashier through the store's
card procedure (amount, customer confirms, insert/tap/swipe, PIN, authorization, signature, two
receipts), drives the PC/SC card reader and the ESC/POS printer, and records every step in a local
journal first, then at the ledger service. While the service is unreachable it takes cash, reprints
approved receipts, and forwards everything once the service answers again.

Configuration (environment):
  TILL_AGENT_SERVICE_URL      the ledger service (default http://127.0.0.1:8000)
  TILL_AGENT_TERMINAL_ID      this terminal's id (POST /v1/terminals answers it)
  TILL_AGENT_TOKEN(_FILE)     the terminal's token (till token create --role terminal --terminal ID)
  TILL_AGENT_OPERATOR_NO      the cashier's operator number (default 01)
  TILL_AGENT_PRINTER_URL      tcp://host:9100, usb://04b8:0202, serial:///dev/ttyUSB0, file:///dev/usb/lp0
  TILL_AGENT_CONTACT_READER   PC/SC reader of the chip slot (default "Virtual PCD 00 00")
  TILL_AGENT_CONTACTLESS_READER  PC/SC reader of the tap pad (default "Virtual PCD 00 01")
  TILL_AGENT_DATA_DIR         journal, signatures and the merchant's PAN key (default ./till-agent)

No hardware? Start pcscd (pcscd --foreground &), then in two other terminals:
  till-agent virtual-card --brand unionpay      a chip card in "Virtual PCD 00 00" (PIN 1234)
  till-agent printer-sink --port 9100           a receipt printer that shows what it prints
"""

DOCTOR_DESCRIPTION = """\
Check this counter's setup, as this environment's TILL_AGENT_* variables describe it, and say in
plain words what is wrong and what to do. Run it as the user the agent runs as, with the same
variables; the agent itself may be running. It changes nothing and needs no card.

It checks: the settings themselves; that the terminal id and token are set; that the journal's
folder is writable and the journal opens (events queued, events the service refused); that the
service answers /healthz and accepts this terminal's token; that the receipt printer answers a
status read (ready, paper low or out, offline); and that pcscd runs and lists the card readers named
in TILL_AGENT_CONTACT_READER and TILL_AGENT_CONTACTLESS_READER.

Each line is ok, WARNING, PROBLEM or skipped (needs an earlier check to pass). The token is never
printed. Exit status: 0 without problems (warnings allowed), 1 with any problem.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="till-agent", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="the interactive counter (the default)")
    run.add_argument("--lang", choices=("zh", "en", "both"), default=None, help="prompt language")
    commands.add_parser("self-check", help="check the service, printer and card readers, then exit")
    doctor = commands.add_parser("doctor", help="check this counter's setup and say what is wrong in plain words",
                                 description=DOCTOR_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON (for scripts and monitoring)")
    queue = commands.add_parser("queue", help="show the journal's queue (and try to forward it)")
    queue.add_argument("--flush", action="store_true", help="forward what is queued now")
    card = commands.add_parser("virtual-card", help="serve a virtual EMV card into pcscd's vpcd reader")
    card.add_argument("--brand", choices=("unionpay", "visa", "mastercard"), default="unionpay")
    card.add_argument("--slot", type=int, choices=(0, 1), default=0,
                      help="0 = chip slot (Virtual PCD 00 00), 1 = contactless pad (Virtual PCD 00 01)")
    card.add_argument("--pin", default="1234", help="the card's offline PIN (default 1234)")
    sink = commands.add_parser("printer-sink", help="a virtual ESC/POS network printer that shows its jobs")
    sink.add_argument("--port", type=int, default=9100)
    args = parser.parse_args(argv)
    command = args.command or "run"
    if command == "virtual-card":
        return _virtual_card(args)
    if command == "printer-sink":
        return _printer_sink(args)
    if command == "doctor":
        from terminal_agent.doctor import main as doctor

        return doctor(as_json=args.json)
    return _agent(command, args)


def _agent(command: str, args: argparse.Namespace) -> int:
    from terminal_agent.bootstrap import AgentSetupError, build_agent
    from terminal_agent.settings import AgentSettings
    from terminal_agent.tui import ConsoleCashier, run_counter

    settings = AgentSettings()
    cashier = ConsoleCashier(getattr(args, "lang", None) or settings.ui_lang)
    try:
        agent = build_agent(settings, cashier, start_forwarder=command == "run")
    except AgentSetupError as exc:
        print(f"till-agent: {exc}", file=sys.stderr)
        return 2
    cashier.currency = agent.counter.currency
    try:
        if command == "self-check":
            check = agent.till.self_check()
            return 0 if all((check.service_reachable, check.printer_online, check.paper_present,
                             check.reader_present)) else 1
        if command == "queue":
            if args.flush:
                agent.forwarder.flush()
            backlog = agent.counter.journal.backlog()
            print(f"queued: {backlog.queued}  rejected: {backlog.rejected}")
            for row in agent.counter.journal.rejected():
                print(f"  rejected #{row['seq']} {row['type']} v{row['version']} of {row['stream_id']}: "
                      f"{row['code']}: {row['detail']}")
            return 0
        return run_counter(agent, cashier)
    finally:
        agent.close()


def _virtual_card(args: argparse.Namespace) -> int:
    import signal
    import threading

    from adapters.virtual_card import PROFILES, VirtualCard
    from adapters.vpcd_link import VpcdCardLink

    card = VirtualCard(PROFILES[args.brand], pin=args.pin)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with VpcdCardLink(card, port=35963 + args.slot) as link:
        link.insert()
        print(f"a virtual {args.brand} card is in Virtual PCD 00 0{args.slot} (PIN {args.pin}); Ctrl+C removes it",
              flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


def _printer_sink(args: argparse.Namespace) -> int:
    import time

    from adapters.escpos_decoder import decode_escpos
    from adapters.printer_sink import PrinterSink

    with PrinterSink(port=args.port) as sink:
        print(f"virtual receipt printer listening on 127.0.0.1:{sink.port} "
              f"(TILL_AGENT_PRINTER_URL=tcp://127.0.0.1:{sink.port}); Ctrl+C to stop", flush=True)
        shown = 0
        try:
            while True:
                jobs = sink.jobs
                for job in jobs[shown:]:
                    print(decode_escpos(job).text, flush=True)
                    print("✂" + "-" * 31, flush=True)
                shown = len(jobs)
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
