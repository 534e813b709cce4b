#!/usr/bin/env python3
"""Fault-injection report for Till Ledger (a script, not a test): docs/reliability.md.

Runs every fault of ``tests/faults/scenarios.py`` with a bigger load than CI (48 terminals by default,
the agent cut off for 60 s) and prints the table: fault, load, events acknowledged, lost, duplicated,
recovery time, and whether the view equals its recomputation and the host agrees with the ledger.

Everything runs on loopback and stops by itself: a private PostgreSQL 15 cluster (initdb in a temp
dir, run as the ``postgres`` OS user, deleted at the end), the acquirer simulator in this process,
``till serve`` and ``till project run ledger_view`` as subprocesses (killed by PID on the way out).
The machine's shared PostgreSQL server is not touched.

Usage::

    .venv/bin/python bench/faults.py                         # every fault, bench scale
    .venv/bin/python bench/faults.py --faults kill_service,cut_agent --terminals 32 --agent-cut 60
    .venv/bin/python bench/faults.py --json bench/results/faults.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from tests.faults.private_postgres import PrivatePostgres  # noqa: E402
from tests.faults.scenarios import BENCH, FAULTS, FaultReport, run_fault, scaled, table  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Till Ledger fault-injection report (docs/reliability.md).")
    p.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated subset of {','.join(FAULTS)}")
    p.add_argument("--terminals", type=int, default=BENCH.terminals, help="simulated terminals (default %(default)s)")
    p.add_argument("--before", type=float, default=BENCH.before_s, help="seconds of load before each fault")
    p.add_argument("--after", type=float, default=BENCH.after_s, help="seconds of load after each fault ended")
    p.add_argument("--agent-cut", type=float, default=BENCH.agent_cut_s,
                   help="seconds the agent is cut off from the service (default %(default)s; CI uses 5)")
    p.add_argument("--acquirer-fault", type=float, default=BENCH.acquirer_fault_s,
                   help="seconds the acquirer simulator misbehaves (default %(default)s)")
    p.add_argument("--pg-restarts", type=int, default=BENCH.pg_restarts,
                   help="PostgreSQL restarts in one run of each restart_postgres fault (default %(default)s)")
    p.add_argument("--json", type=Path, help="also write every report (with its notes) to this file")
    args = p.parse_args(argv)
    args.faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = sorted(set(args.faults) - set(FAULTS))
    if unknown:
        p.error(f"unknown fault(s) {unknown}; choose from {','.join(FAULTS)}")
    return args


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so every `finally` stops its subprocesses and the cluster


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/faults.py", *(sys.argv[1:] if argv is None else argv)])
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    scale = scaled(BENCH, terminals=args.terminals, before_s=args.before, after_s=args.after,
                   agent_cut_s=args.agent_cut, acquirer_fault_s=args.acquirer_fault, pg_restarts=args.pg_restarts)
    work = Path(tempfile.mkdtemp(prefix="till-faults-bench-"))
    pg = PrivatePostgres()
    reports: list[FaultReport] = []
    started = time.monotonic()
    try:
        pg.create()
        print(f"private PostgreSQL 15 on 127.0.0.1:{pg.port}; work dir {work}", flush=True)
        for name in args.faults:
            print(f"== {name}: {FAULTS[name].title}", flush=True)
            t0 = time.monotonic()
            report = run_fault(name, pg, scale, work)
            reports.append(report)
            print(f"   {time.monotonic() - t0:.0f} s; acknowledged {report.acknowledged}, lost {report.lost}, "
                  f"duplicated {report.duplicated}, recovery {report.recovery_s} s", flush=True)
            for problem in report.problems:
                print("   PROBLEM " + problem.replace("\n", "\n   "), flush=True)
    except KeyboardInterrupt:
        print("interrupted; subprocesses and the private cluster stopped", file=sys.stderr)
        return 130
    finally:
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"Fault report: {args.terminals} terminals, {scale.before_s:g} s of load before and {scale.after_s:g} s "
          f"after each fault, {len(args.faults)} faults in {time.monotonic() - started:.0f} s")
    print(table(reports))
    print()
    for r in reports:
        print(f"{r.fault}: recovery = {r.recovery_means}; {r.replayed} retries answered 'replayed'; host approved "
              f"{r.host_approvals} sale(s), {r.reversed_at_host} reversed")
        for key, value in r.notes.items():
            if key != "client counts":
                print(f"    {key}: {value}")
        print(f"    client counts: {r.notes.get('client counts')}")
    print()
    print(f"command: {command}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": command, "reports": [asdict(r) for r in reports]}, indent=2,
                                        default=str) + "\n")
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
