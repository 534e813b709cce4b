"""``till``: the service's command line (serve, tokens, projections, reports)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from adapters.settings import Settings
from domain.errors import LedgerError
from api.staff_cli import add_user_commands
from projections.read_models import PROJECTIONS

DESCRIPTION = """\
Till Ledger — an event-sourced ledger of in-store card payments.

Storage: with no TILL_DATABASE_URL the ledger is a SQLite file under TILL_DATA_DIR (default
./till-data). Set TILL_DATABASE_URL=postgresql://user:password@host:5432/dbname for PostgreSQL.

Projections (the read views behind reports and dispute search) run inside `till serve` unless
TILL_EMBEDDED_PROJECTIONS=false; then run `till project run ledger_view` as its own process.
"""


def _serve(args: argparse.Namespace) -> int:
    import shutil

    import uvicorn

    from adapters.json_logging import logging_config
    from api.app import build_services, ensure_first_admin_token
    from api.web.session import load_or_create_key

    simulator = None
    if args.acquirer_sim:
        simulator = _embedded_acquirer(Settings().data_dir)
    settings = Settings()
    # Create tables once here: several workers racing to create them fail on PostgreSQL. With
    # TILL_CREATE_TABLES=false (a least-privilege role) they must exist: this names the missing ones.
    services = build_services(settings, create_tables=True)  # the views' tables too
    token_file = ensure_first_admin_token(services)
    services.close()
    # Made here, before the workers start: they all read this one key and accept each other's cookies.
    load_or_create_key(settings.session_key_path)
    store = f"PostgreSQL schema {settings.database_schema}" if settings.uses_postgres else \
        f"SQLite in {settings.data_dir.resolve()}"
    url = f"http://{args.host}:{args.port}"
    print(f"Till Ledger is starting on {url}  (API docs: {url}/docs, health: {url}/healthz)")
    print(f"Events are stored in {store}.")
    if token_file is not None:
        print(f"The first admin token is in {token_file.resolve()} (keep it secret).")
    if simulator is not None:
        print(f"Card payments go to the built-in acquirer simulator at {settings.acquirer_url} "
              f"(journal and settlement files in {(settings.data_dir / 'acquirer-sim').resolve()}).")
    print("Press Ctrl+C to stop.", flush=True)
    metrics_dir = _metrics_dir(args.workers)
    try:
        # access_log=False: api.request_id writes the access lines (with the request id, no query string).
        uvicorn.run("api.app:create_app_from_env", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level=args.log_level, access_log=False,
                    log_config=logging_config(args.log_format, args.log_level, args.access_log))
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if simulator is not None:
            simulator.__exit__(None, None, None)
            simulator.simulator.close()  # its journal
    return 0


def _metrics_dir(workers: int) -> str | None:
    """With several workers, a fresh private directory where each writes its metrics for /metrics
    to sum (prometheus_client's multiprocess mode). None with one worker, or when the operator set
    PROMETHEUS_MULTIPROC_DIR (then emptying it before a start is theirs to do)."""
    import tempfile

    from adapters.metrics import MULTIPROC_DIR_ENV

    if workers <= 1 or MULTIPROC_DIR_ENV in os.environ:
        return None
    path = tempfile.mkdtemp(prefix="till-metrics-")  # mode 700
    os.environ[MULTIPROC_DIR_ENV] = path  # inherited by the workers, which import prometheus_client afresh
    return path


def _embedded_acquirer(data_dir: Path) -> Any:
    """Start the acquirer simulator in this process and point the service (and its workers) at it."""
    from adapters.acquirer_simulator import AcquirerSimulator, SimulatorThread

    folder = data_dir / "acquirer-sim"
    folder.mkdir(parents=True, exist_ok=True)
    thread = SimulatorThread(AcquirerSimulator(folder / "journal.sqlite3", settlement_dir=folder))
    port = thread.__enter__()
    os.environ["TILL_ACQUIRER_URL"] = f"127.0.0.1:{port}"  # read by Settings() here and in every worker
    return thread


def _simulate(args: argparse.Namespace) -> int:
    from terminal_agent.simulate import simulate

    token = args.admin_token or os.environ.get("TILL_ADMIN_TOKEN")
    if not token:
        token_file = args.admin_token_file or Settings().data_dir / "admin.token"
        try:
            token = token_file.read_text().strip()
        except OSError:
            print(f"till simulate: no admin token: pass --admin-token, set TILL_ADMIN_TOKEN, or start "
                  f"`till serve` once so that it writes {token_file}", file=sys.stderr)
            return 2
    return simulate(args.service_url, token, args.terminals, args.sales, args.seed, args.work_dir)


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def token_lifetime(text: str) -> timedelta:
    """``--expires-in``: ``90d``, ``12h``, ``30m``, ``600s`` or plain seconds, within the API's bounds."""
    from api.schemas import TOKEN_LIFETIME_MAX_S, TOKEN_LIFETIME_MIN_S

    number, unit = (text[:-1], text[-1].lower()) if text[-1:].isalpha() else (text, "s")
    if not number.isdigit() or unit not in _DURATION_UNITS:
        raise argparse.ArgumentTypeError(f"{text!r}: write it as 90d, 12h, 30m or 600s")
    seconds = int(number) * _DURATION_UNITS[unit]
    if not TOKEN_LIFETIME_MIN_S <= seconds <= TOKEN_LIFETIME_MAX_S:
        raise argparse.ArgumentTypeError(f"{text!r}: a token lives from 60 s to 400 days")
    return timedelta(seconds=seconds)


def _token_create(args: argparse.Namespace) -> int:
    from adapters.group_commit import run_alone
    from api.app import build_services
    from api.auth import new_token
    from domain.ledger import Ledger
    from domain.stamp import Stamp

    services = build_services(Settings(), create_tables=True, read_models=False)
    token = new_token()
    now = services.clock.now()
    expires_at = now + args.expires_in if args.expires_in else None
    issued = run_alone(services.ledger, Ledger.issue_token(
        Stamp(None, None, None, now), token, args.role, args.terminal, args.label, expires_at))
    services.ledger.close()
    print(f"token_id: {issued.id}")
    print(f"role:     {issued.role}" + (f" (terminal {issued.bound_terminal_id})" if issued.bound_terminal_id else ""))
    print(f"expires:  {issued.expires_at.isoformat() if issued.expires_at else 'never (until revoked)'}")
    print(f"token:    {token}")
    print("The token is shown only this once; the ledger stores its hash.", file=sys.stderr)
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    from adapters.group_commit import run_alone
    from api.app import build_services
    from domain.ledger import Ledger
    from domain.stamp import Stamp

    services = build_services(Settings(), create_tables=True, read_models=False)
    run_alone(services.ledger, Ledger.revoke_token(Stamp(None, None, None, services.clock.now()), args.token_id))
    services.ledger.close()
    print(f"revoked {args.token_id} (processes may trust a cached lookup for TILL_TOKEN_CACHE_S more seconds)")
    return 0


def _read_models() -> Any:
    from api.app import build_services

    return build_services(Settings(), create_tables=True)


def _project_run(args: argparse.Namespace) -> int:
    services = _read_models()
    runner = services.views().runner
    print(f"following the ledger into {args.name} (position {runner.projection.position()}); Ctrl+C to stop",
          flush=True)
    try:
        runner.follow()  # waits here while another runner holds the projection; rides out outages
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop_event.set()
        services.close()
    return 0


def _progress_bar(position: int, head: int) -> None:
    width = 40
    done = width if head == 0 else width * position // head
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {position}/{head}")
    sys.stderr.flush()


def _project_rebuild(args: argparse.Namespace) -> int:
    services = _read_models()
    try:
        applied = services.views().runner.rebuild(_progress_bar, lambda: print(
            f"waiting for the active {args.name} runner to stop (`till serve` runs it unless "
            "TILL_EMBEDDED_PROJECTIONS=false; or a `till project run`)…", file=sys.stderr, flush=True))
        sys.stderr.write("\n")
        print(f"{args.name} rebuilt from zero: {applied} events, position {services.views().projection.position()}")
    except KeyboardInterrupt:
        print("\ninterrupted: run the rebuild again (it starts from zero)", file=sys.stderr)
        return 130
    finally:
        services.close()
    return 0


def _project_status(args: argparse.Namespace) -> int:
    services = _read_models()
    try:
        print(f"{'projection':<14}{'position':>10}{'head':>10}{'lag':>8}")
        for row in services.views().status():
            print(f"{row['name']:<14}{row['position']:>10}{row['head']:>10}{row['lag']:>8}")
    finally:
        services.close()
    return 0


def _db_init(args: argparse.Namespace) -> int:
    import psycopg
    from eventsourcing.persistence import PersistenceError

    from api.database_setup import init_database

    settings = Settings()
    try:
        report = init_database(settings, args.app_role)
    except (PersistenceError, psycopg.Error) as exc:  # e.g. "permission denied for schema": not the owner
        print(f"till db init: {exc.__class__.__name__}: {exc} (run it as the database owner: TILL_DATABASE_URL "
              "with the owner role, see infra/README.md)", file=sys.stderr)
        return 2
    for line in report.lines(settings, args.app_role):
        print(line)
    return 0


def _report_day(args: argparse.Namespace) -> int:
    import json

    from api.routers.reports import build_day_report
    from projections.reconciliation import report_csv, report_xlsx

    services = _read_models()
    try:
        views = services.views()
        if not views.runner.refresh(timeout=30):  # report what the log holds now, whoever runs the projection
            print("till: the projection runner is behind; the report may miss the latest events", file=sys.stderr)
        report = build_day_report(views, args.day.isoformat(), args.store, services.clock.now())
    finally:
        services.close()
    if args.format == "xlsx":
        if args.output is None:
            print("till: --format xlsx needs --output FILE", file=sys.stderr)
            return 2
        args.output.write_bytes(report_xlsx(report))
        print(f"wrote {args.output}", file=sys.stderr)
    elif args.output is not None:
        args.output.write_text(report_csv(report) if args.format == "csv" else json.dumps(report, ensure_ascii=False))
    else:
        print(report_csv(report) if args.format == "csv" else json.dumps(report, ensure_ascii=False, indent=2), end="")
    return 0


def _settlement_import(args: argparse.Namespace) -> int:
    import json

    from api.routers.reports import import_settlement, settlement_matches

    data = args.file.read_bytes()
    services = _read_models()
    try:
        services.executor.start()
        settlement_id, new = import_settlement(services, data, args.file.name)
        services.views().runner.refresh(timeout=30)
        result = settlement_matches(services, settlement_id)
    finally:
        services.close()
    print(("imported" if new else "already imported") + f": {settlement_id} ({result['lines']} lines)",
          file=sys.stderr)
    print(json.dumps(result if args.full else {"settlement_id": result["settlement_id"], "balanced": result["balanced"],
                                               "summary": result["summary"]}, ensure_ascii=False, indent=2))
    return 0 if result["balanced"] else 1


def _verify(args: argparse.Namespace) -> int:
    import json

    from adapters.signing import key_id, load_public_pem, verify
    from projections.bundle import verify_bundle

    if args.store or args.bundle is None:
        if args.bundle is not None or not args.store:
            print("till verify: give either a bundle file or --store (see till verify --help)", file=sys.stderr)
            return 2
        from api.verify_store import verify_store

        return verify_store(args)
    try:
        bundle = json.loads(args.bundle.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"till: cannot read {args.bundle}: {exc}", file=sys.stderr)
        return 2
    trusted_key = load_public_pem(args.public_key.read_bytes()) if args.public_key else None

    def check_signature(message: bytes, signature: dict[str, Any]) -> tuple[bool, bool]:
        try:
            embedded = load_public_pem(signature.get("public_key", ""))
        except ValueError:
            return False, False
        if trusted_key is not None:
            return verify(trusted_key, message, signature.get("value", "")), True
        return verify(embedded, message, signature.get("value", "")) and signature.get("key_id") == key_id(embedded), False

    verdict = verify_bundle(bundle if isinstance(bundle, dict) else {}, check_signature)
    if verdict.valid:
        who = "the given public key" if verdict.signer_trusted else \
            f"the key in the bundle (id {verdict.key_id}); compare it with GET /v1/keys/signing or pass --public-key"
        print(f"VALID: {len(bundle['events'])} events, chain intact, signed by {who}")
        return 0
    evidence = bundle.get("evidence") if isinstance(bundle, dict) else None
    print(f"INVALID: evidence of transaction {evidence.get('transaction_id') if isinstance(evidence, dict) else '?'}:")
    for problem in verdict.problems:
        print(f"  - {problem}")
    return 1


def _doctor(args: argparse.Namespace) -> int:
    from api.doctor import main as doctor

    return doctor(as_json=args.json)


def _acquirer_sim(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from adapters.acquirer_rules import load_rules
    from adapters.acquirer_simulator import AcquirerSimulator

    try:
        rules = load_rules(args.rules) if args.rules else []
    except (OSError, ValueError) as exc:
        print(f"till: cannot use the rules file {args.rules}: {exc}", file=sys.stderr)
        return 2
    args.settlement_dir.mkdir(parents=True, exist_ok=True)
    simulator = AcquirerSimulator(args.journal, rules=rules, settlement_dir=args.settlement_dir, fee_ppm=args.fee_ppm)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except (NotImplementedError, RuntimeError):  # Windows: Ctrl+C arrives as KeyboardInterrupt
                pass
        port = await simulator.start(args.host, args.port)
        print(f"acquirer simulator serving ISO 8583 on {args.host}:{port} (point TILL_ACQUIRER_URL here); "
              f"journal {Path(args.journal).resolve()}, settlement files in {args.settlement_dir.resolve()}, "
              f"{len(rules)} rule(s). Ctrl+C to stop.", flush=True)
        try:
            await stop.wait()
        finally:
            await simulator.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    finally:
        simulator.close()
    return 0


ACQUIRER_SIM_DESCRIPTION = """\
Run a simulated acquirer host (收单主机) for development and tests. It speaks the ISO 8583 protocol
(CUP-style POS interface: 2-byte length, TPDU, header, BCD fields) that the service's
TILL_ACQUIRER_URL points at: sign-on 0800, sale and void 0200, refund 0220, reversal 0400 and
batch settlement 0500. It approves everything unless a rule says otherwise, journals every decision
in a SQLite file (masked card numbers only), and after each settlement writes
settlement-YYYYMMDD.csv (docs/settlement-file.md) for `till settlement import`.

Rules (--rules FILE.json) are a JSON list, first match wins:

  [{"pan_suffix": "0051", "action": "decline", "response_code": "51"},
   {"amount_minor": 6600, "action": "drop"},
   {"kinds": ["reversal"], "times": 1, "action": "disconnect"},
   {"min_amount_minor": 100000, "action": "slow", "delay_ms": 8000}]

Matchers: pan_prefix, pan_suffix, amount_minor, min_amount_minor, max_amount_minor, kinds (sale, void,
refund, reversal, settlement, sign_on), times. Actions: approve, decline (response_code), slow
(delay_ms), drop, duplicate, disconnect, stale_reply_first. A dropped, slow or cut-off reply still
leaves the decision journaled, as at a real bank: that is the case reversals exist for.
"""


DOCTOR_DESCRIPTION = """\
Check the deployment that this environment's TILL_* variables describe, and say in plain words what
is wrong and what to do. Run it where the service runs, as the user it runs as, with the same
variables. It changes nothing.

It checks: the settings themselves; that TILL_DATA_DIR is writable; that the database answers (SQLite
file, or PostgreSQL within 3 s) and holds the ledger's tables (and that the role may write them); how
far each projection trails the event log and whether a runner follows it; that the signing key loads
and is mode 600; that the web session key is valid and mode 600; that the first admin token's file is
mode 600; that the acquirer host accepts a TCP connection (when TILL_ACQUIRER_URL is set); and that
TILL_HOST:TILL_PORT is free or answers /healthz.

Each line is ok, WARNING, PROBLEM or skipped (needs an earlier check to pass). Passwords and tokens
are never printed. Exit status: 0 without problems (warnings allowed), 1 with any problem.
"""


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="till", description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service", description=(
        "Run the ledger's HTTP API. On an empty store it writes a first admin token to "
        "$TILL_DATA_DIR/admin.token."))
    serve.add_argument("--host", default=os.environ.get("TILL_HOST", "127.0.0.1"), help="address to bind (default %(default)s)")
    # A string default: argparse converts it only when `serve` runs, so a bad TILL_PORT cannot stop `till doctor`.
    serve.add_argument("--port", type=int, default=os.environ.get("TILL_PORT", "8000"),
                       help="port (default %(default)s)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default %(default)s)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                       help="one log line per request, with its request id (default on)")
    serve.add_argument("--log-format", choices=["json", "text"], default="json",
                       help="json: one JSON object per line, for a log collector; text: for a terminal "
                       "(default %(default)s)")
    serve.add_argument("--acquirer-sim", action="store_true", help="authorize cards through a built-in "
                       "acquirer simulator (a demo without a bank; see `till acquirer-sim --help`)")
    serve.set_defaults(run=_serve)

    sim = commands.add_parser("simulate", help="run whole days at N counters on virtual hardware against a "
                              "running service, then print the day's reconciliation", description=(
                                  "Each terminal is registered afresh and gets a terminal agent with a virtual "
                                  "chip reader, contactless pad and TCP receipt printer. Scripted customers pay by "
                                  "chip and PIN, tap, signature card or cash; each till counts its cash, settles "
                                  "(Z report) and closes. Then the day report is read from the service and "
                                  "compared with what was sold; the exit status is 0 when they match. The service "
                                  "needs an acquirer host: start it with `till serve --acquirer-sim`."))
    sim.add_argument("--service-url", default="http://127.0.0.1:8000", help="the running service (default %(default)s)")
    sim.add_argument("--terminals", type=int, default=2, help="counters (default %(default)s)")
    sim.add_argument("--sales", type=int, default=20, help="customers per counter (default %(default)s)")
    sim.add_argument("--seed", type=int, default=1, help="repeat a run with the same seed (default %(default)s)")
    sim.add_argument("--admin-token", default=None, help="an admin token (default: TILL_ADMIN_TOKEN, "
                     "else the file below)")
    sim.add_argument("--admin-token-file", type=Path, default=None,
                     help="file with an admin token (default $TILL_DATA_DIR/admin.token, written by till serve)")
    sim.add_argument("--work-dir", type=Path, default=None, help="where the agents' journals go (default: a "
                     "new temporary directory)")
    sim.set_defaults(run=_simulate)

    token = commands.add_parser("token", help="create or revoke API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_commands.add_parser("create", help="issue a token and print it once")
    create.add_argument("--role", required=True, choices=["terminal", "accountant", "dispute", "admin"])
    create.add_argument("--terminal", type=UUID, default=None, help="terminal id (required for --role terminal)")
    create.add_argument("--label", default="", help="a note on who holds the token")
    create.add_argument("--expires-in", type=token_lifetime, default=None, metavar="DURATION",
                        help="the token expires after this long: 90d, 12h, 30m, 600s (60 s to 400 days; "
                        "default: never, until revoked)")
    create.set_defaults(run=_token_create)
    revoke = token_commands.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", type=UUID)
    revoke.set_defaults(run=_token_revoke)

    add_user_commands(commands)

    project = commands.add_parser("project", help="run, rebuild or inspect the projections (read views)")
    project_commands = project.add_subparsers(dest="project_command", required=True, metavar="ACTION")
    run = project_commands.add_parser("run", help="follow the log into a view (one active runner per "
                                      "projection; a second one waits)")
    run.add_argument("name", choices=PROJECTIONS)
    run.set_defaults(run=_project_run)
    rebuild = project_commands.add_parser("rebuild", help="empty a view and apply the whole log again")
    rebuild.add_argument("name", choices=PROJECTIONS)
    rebuild.set_defaults(run=_project_rebuild)
    status = project_commands.add_parser("status", help="each projection's position and lag")
    status.set_defaults(run=_project_status)

    db = commands.add_parser("db", help="set up the database (as its owner) for a least-privilege service role")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    init = db_commands.add_parser("init", help="create every table, make stored events immutable, and grant "
                                  "the app role what it uses (run again after an upgrade)", description=(
                                      "Run once as the owner role (TILL_DATABASE_URL of the owner), before the "
                                      "service and the projection workers start with TILL_CREATE_TABLES=false "
                                      "as the app role. On PostgreSQL it also adds a trigger that refuses "
                                      "UPDATE, DELETE and TRUNCATE on the event table, and grants --app-role "
                                      "SELECT/INSERT on the events (plus UPDATE, which the store's table lock "
                                      "needs and the trigger refuses), SELECT/INSERT on snapshots and "
                                      "read-write on the views. See infra/README.md."))
    init.add_argument("--app-role", default=None, metavar="ROLE",
                      help="the PostgreSQL role the service runs as (e.g. till_app); none: grant nothing")
    init.set_defaults(run=_db_init)

    report = commands.add_parser("report", help="the accountant's reports")
    report_commands = report.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    day = report_commands.add_parser("day", help="day report (X report) for one business day")
    day.add_argument("day", type=date.fromisoformat, metavar="YYYY-MM-DD")
    day.add_argument("--store", default=None, help="only this store id")
    day.add_argument("--format", choices=["json", "csv", "xlsx"], default="json")
    day.add_argument("--output", type=Path, default=None, help="write to this file (required for xlsx)")
    day.set_defaults(run=_report_day)

    settlement = commands.add_parser("settlement", help="acquirer settlement files")
    settlement_commands = settlement.add_subparsers(dest="settlement_command", required=True, metavar="ACTION")
    imports = settlement_commands.add_parser("import", help="record a settlement file (CSV, docs/settlement-file.md) "
                                             "and match it against the ledger; exit 1 when it does not balance")
    imports.add_argument("file", type=Path)
    imports.add_argument("--full", action="store_true", help="print every matched and unmatched line")
    imports.set_defaults(run=_settlement_import)

    from api.verify_store import DESCRIPTION as VERIFY_DESCRIPTION

    check = commands.add_parser("verify", help="check a dispute evidence bundle offline, or (--store) the whole "
                                "store for tampering; names any edit, deletion or reordering",
                                description=VERIFY_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                                usage="till verify BUNDLE.json [--public-key PEM]\n       till verify --store "
                                "[--json] [--heads FILE] [--save-heads FILE] [--strict-gaps]")
    check.add_argument("bundle", type=Path, nargs="?", default=None,
                       help="evidence-….json from GET /v1/disputes/{id}/evidence?format=bundle")
    check.add_argument("--public-key", type=Path, default=None,
                       help="the service's public key (PEM, from GET /v1/keys/signing) to trust the signer")
    check.add_argument("--store", action="store_true", help="check the store TILL_* names instead of a bundle "
                       "(read-only): hash chains, the notification log, snapshots, the view and its totals")
    check.add_argument("--json", action="store_true", help="with --store: print the findings as JSON")
    check.add_argument("--heads", type=Path, default=None, metavar="FILE",
                       help="with --store: also check the stream heads saved earlier (covers each stream's last event)")
    check.add_argument("--save-heads", type=Path, default=None, metavar="FILE",
                       help="with --store: when the store is intact, save its stream heads to FILE (signed when "
                       "the signing key is readable); keep it off the database host")
    check.add_argument("--strict-gaps", action="store_true", help="with --store on PostgreSQL: count every "
                       "unexplained gap in the notification ids as tampering (a rolled-back insert also leaves one)")
    check.set_defaults(run=_verify)

    doctor = commands.add_parser("doctor", help="check this deployment and say what is wrong in plain words",
                                 description=DOCTOR_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON (for scripts and monitoring)")
    doctor.set_defaults(run=_doctor)

    sim = commands.add_parser("acquirer-sim", help="run a simulated acquirer host (ISO 8583 over TCP) for "
                              "development and tests", description=ACQUIRER_SIM_DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sim.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    sim.add_argument("--port", type=int, default=9583, help="port (default %(default)s)")
    sim.add_argument("--journal", default="acquirer-sim.sqlite",
                     help="the SQLite journal of every decision (default ./%(default)s)")
    sim.add_argument("--rules", type=Path, default=None, metavar="FILE.json", help="behaviour rules (see above)")
    sim.add_argument("--settlement-dir", type=Path, default=Path("."), metavar="DIR",
                     help="where settlement-YYYYMMDD.csv files go (default: the current directory)")
    sim.add_argument("--fee-ppm", type=int, default=0, metavar="N",
                     help="the acquirer's fee in parts per million of each amount (3800 = 0.38%%; default 0)")
    sim.set_defaults(run=_acquirer_sim)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except LedgerError as exc:
        print(f"till: {exc.code}: {exc.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
