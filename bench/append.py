#!/usr/bin/env python3
"""Append benchmark for Till Ledger (a script, not a test).

In ONE run, with the SAME load generator (``bench/loadgen.py``, a separate process) and the same
number of concurrent simulated terminals, it measures:

1. ``group-commit``: the real service (``till serve``) with its default settings (group commit);
2. ``one-save``:     the real service with ``TILL_GROUP_COMMIT=false`` (one eventsourcing ``save()``
                     per request, the naive baseline);
3. ``noop``:         ``bench/noop_app.py``, a FastAPI endpoint that parses the same request and
                     touches no database (the ceiling).

Each service run gets a fresh, empty PostgreSQL schema and data dir, which are dropped/removed
afterwards.  Every terminal is provisioned over HTTP (not timed): terminal, operator, terminal token,
opened till session with the operator signed in.  Then every terminal runs 10-event card sales back
to back.  Printed: till actions/s (appends/s), p50/p99 latency, errors, the ratios group-commit ÷
one-save and group-commit ÷ noop, and whether the targets hold (≥ 10×, ≥ 0.65, p99 ≤ 50 ms).

Timings on a 2-core box vary ±10–30 % between runs; compare the configurations of one run as
ratios, not absolute figures across runs.

Usage::

    .venv/bin/python bench/append.py --terminals 64 --duration 20 --warmup 3
    .venv/bin/python bench/append.py --configs noop --duration 10      # only the no-op ceiling
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOADGEN = Path(__file__).resolve().parent / "loadgen.py"

CONFIGS = ("group-commit", "one-save", "noop")
CONFIG_LABELS = {
    "group-commit": "service, group commit (default)",
    "one-save": "service, TILL_GROUP_COMMIT=false",
    "noop": "no-op FastAPI endpoint",
}

# Targets from the issue (64 terminals, 2 cores).
TARGET_VS_ONE_SAVE = 10.0
TARGET_VS_NOOP = 0.65
TARGET_P99_MS = 50.0

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
SETUP_HTTP_TIMEOUT_S = 10.0
# loadgen's own bound is warmup + duration + grace (+15 s alarm); ours is a little longer.
LOADGEN_GRACE_S = 10.0
LOADGEN_EXTRA_TIMEOUT_S = 30.0

# Terminal parameters for provisioning (the bench's amounts are 100..99999 minor units).
MERCHANT_NO = "898310048990001"
OPERATOR_NO = "01"
OPERATOR_PASSWORD = "bench-pass-01"
DEVICE_TZ = timezone(timedelta(hours=8))  # Asia/Shanghai, as the terminals are configured


class BenchError(Exception):
    """A configuration could not be measured (service did not start, setup request refused, ...)."""


@dataclass
class Result:
    config: str
    rps: float = 0.0
    sales_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    requests: int = 0
    errors: int = 0
    loadgen_cpu_cores: float = 0.0  # average cores the load generator used over its run
    server_cpu_cores: float = 0.0  # average cores the server process tree used while measured
    machine_busy_cores: float = 0.0  # all CPU (server + PostgreSQL + loadgen + rest)
    loadgen_command: list[str] = field(default_factory=list)
    failure: str | None = None


# --- small helpers ------------------------------------------------------------------------------


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (tiny race with other programs; fine for a bench)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def device_time() -> str:
    return datetime.now(DEVICE_TZ).isoformat(timespec="seconds")


def venv_bin(name: str) -> Path:
    """An executable of the project's venv: next to the running interpreter, else .venv/bin."""
    here = Path(sys.executable).parent / name
    return here if here.exists() else PROJECT_ROOT / ".venv" / "bin" / name


def _clock_ticks() -> int:
    return int(os.sysconf("SC_CLK_TCK"))


def process_group_cpu_s(pgid: int) -> float:
    """user+system CPU seconds of the live processes in a process group (the server and its
    workers; we start it in its own session so the group is exactly that tree)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process exited while we looked
            continue
        # Fields after the ")" of the command name: state is field 3, pgrp 5, utime 14, stime 15.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / _clock_ticks()


def machine_busy_s() -> float:
    """Non-idle CPU seconds of the whole machine since boot (summed over cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    # guest/guest_nice (fields 9, 10) are already included in user/nice.
    return (sum(values[:8]) - idle) / _clock_ticks()


# --- subprocess management ----------------------------------------------------------------------


@contextmanager
def server_process(cmd: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server in its own session; on exit SIGTERM its process group, SIGKILL after a timeout.

    Its own session means the group is exactly the server and its uvicorn workers, so stopping it
    can never touch another process.
    """
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    pgid = proc.pid  # session leader: pgid == pid
    if proc.poll() is None:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    # Workers may outlive the master (or the master ignored SIGTERM): kill whatever is left.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=STOP_TIMEOUT_S)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_healthy(base_url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"server exited with {proc.returncode} before /healthz:\n{log_tail(log_path)}")
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:  # not listening yet
                pass
            time.sleep(0.1)
    raise BenchError(f"/healthz not 200 within {STARTUP_TIMEOUT_S:.0f} s:\n{log_tail(log_path)}")


# --- PostgreSQL schema per run ------------------------------------------------------------------


@contextmanager
def fresh_schema(database_url: str, name: str) -> Iterator[str]:
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
            # Do not wait forever behind a leftover backend of a killed server.
            conn.execute("SET lock_timeout = '20s'")
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def schema_tables(database_url: str, schema: str) -> list[str]:
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (schema,)
        ).fetchall()
    return [str(r[0]) for r in rows]


# --- provisioning over the HTTP contract --------------------------------------------------------


def expect(response: httpx.Response, statuses: tuple[int, ...]) -> dict[str, Any]:
    """The JSON body of a response with an expected status, else a BenchError quoting the exact
    request and response (the brief: report which request failed and with what body)."""
    if response.status_code not in statuses:
        req = response.request
        body = req.content.decode(errors="replace")
        # Tokens are bench-only and short-lived, but keep them out of reports anyway.
        raise BenchError(
            f"{req.method} {req.url.path} -> {response.status_code} (expected {statuses})\n"
            f"  request body:  {body}\n  response body: {response.text}"
        )
    data = response.json()
    if not isinstance(data, dict):
        raise BenchError(f"{response.request.method} {response.request.url.path}: expected a JSON object, got {data!r}")
    return data


def provision_terminals(base_url: str, admin_token: str, count: int) -> list[dict[str, str]]:
    """Create ``count`` terminals, each with an operator, a terminal token and an open till session
    with the operator signed in.  Returns loadgen's terminals file content."""
    terminals: list[dict[str, str]] = []
    admin = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=base_url, timeout=SETUP_HTTP_TIMEOUT_S) as client:
        for i in range(count):
            terminal = expect(
                client.post(
                    "/v1/terminals",
                    headers=admin,
                    json={
                        "merchant_name": "Till Ledger Bench",
                        "merchant_no": MERCHANT_NO,
                        "terminal_no": f"{90_000_000 + i:08d}",  # 8 digits, unique per terminal
                        "store_id": "bench-store",
                        "timezone": "Asia/Shanghai",
                        "currency": "CNY",
                        "min_amount_minor": 1,
                        "max_amount_minor": 10_000_000,
                        "no_cvm_limit_minor": 100_000,
                        "fee_rates_ppm": {"unionpay": 3800, "visa": 5500, "mastercard": 5500},
                        "accepted_methods": ["card", "cash"],
                        "fallback_allowed": True,
                    },
                ),
                (201,),
            )
            terminal_id = str(terminal["terminal_id"])
            expect(
                client.post(
                    f"/v1/terminals/{terminal_id}/operators",
                    headers=admin,
                    json={"operator_no": OPERATOR_NO, "name": "Bench", "password": OPERATOR_PASSWORD},
                ),
                (201,),
            )
            token = str(
                expect(
                    client.post(
                        "/v1/tokens",
                        headers=admin,
                        json={"role": "terminal", "terminal_id": terminal_id, "label": f"bench-{i}"},
                    ),
                    (201,),
                )["token"]
            )
            auth = {"Authorization": f"Bearer {token}"}
            till_session_id = str(uuid.uuid4())
            path = f"/v1/till-sessions/{till_session_id}/events"
            expect(
                client.post(
                    path,
                    headers=auth,
                    json={
                        "expected_version": 0,
                        "operator_no": None,  # nobody is signed in before the till is opened
                        "device_time": device_time(),
                        "event": {
                            "type": "TillOpened",
                            "float_minor": 50_000,
                            "currency": "CNY",
                            "self_check": {
                                "service_reachable": True,
                                "printer_online": True,
                                "paper_present": True,
                                "reader_present": True,
                                "software_version": "bench",
                            },
                        },
                    },
                ),
                (201,),
            )
            expect(
                client.post(
                    path,
                    headers=auth,
                    json={
                        "expected_version": 1,
                        "operator_no": OPERATOR_NO,
                        "device_time": device_time(),
                        "event": {
                            "type": "OperatorSignedIn",
                            "operator_no": OPERATOR_NO,
                            "password": OPERATOR_PASSWORD,
                        },
                    },
                ),
                (201,),
            )
            terminals.append({"token": token, "till_session_id": till_session_id, "terminal_id": terminal_id})
    return terminals


def fake_terminals(count: int) -> list[dict[str, str]]:
    """Terminals for the no-op app: nothing is checked, but tokens and ids have realistic sizes."""
    return [{"token": uuid.uuid4().hex + uuid.uuid4().hex, "till_session_id": str(uuid.uuid4())} for _ in range(count)]


def read_admin_token(data_dir: Path) -> str:
    path = data_dir / "admin.token"
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if path.exists() and (token := path.read_text().strip()):
            return token
        time.sleep(0.1)
    raise BenchError(f"{path} was not written by the service")


# --- one configuration --------------------------------------------------------------------------


def run_loadgen(
    args: argparse.Namespace, base_url: str, terminals_file: Path, mode: str, server_pgid: int, result: Result
) -> None:
    cmd = [
        sys.executable,
        str(LOADGEN),
        "--url", base_url,
        "--terminals-file", str(terminals_file),
        "--duration", str(args.duration),
        "--warmup", str(args.warmup),
        "--grace", str(LOADGEN_GRACE_S),
        "--mode", mode,
    ]  # fmt: skip
    result.loadgen_command = cmd
    cpu0, busy0, t0 = process_group_cpu_s(server_pgid), machine_busy_s(), time.monotonic()
    completed = subprocess.run(
        cmd,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=None,  # loadgen's error samples go straight to our stderr
        timeout=args.warmup + args.duration + LOADGEN_GRACE_S + LOADGEN_EXTRA_TIMEOUT_S,
        check=False,
    )
    elapsed = time.monotonic() - t0
    # Averaged over the whole loadgen run (warm-up included): close enough to show who used the CPU.
    result.server_cpu_cores = round((process_group_cpu_s(server_pgid) - cpu0) / elapsed, 2)
    result.machine_busy_cores = round((machine_busy_s() - busy0) / elapsed, 2)
    if completed.returncode != 0:
        raise BenchError(f"loadgen exited with {completed.returncode}")
    lines = completed.stdout.decode().strip().splitlines()
    if not lines:
        raise BenchError("loadgen printed no result")
    out = json.loads(lines[-1])
    result.rps = float(out["rps"])
    result.sales_per_s = float(out["sales_per_s"])
    result.p50_ms = float(out["p50_ms"])
    result.p99_ms = float(out["p99_ms"])
    result.max_ms = float(out["max_ms"])
    result.requests = int(out["requests"])
    result.errors = int(out["errors"])
    result.loadgen_cpu_cores = round(float(out["loadgen_cpu_s"]) / elapsed, 2)


def run_service_config(args: argparse.Namespace, config: str, workdir: Path) -> Result:
    result = Result(config=config)
    schema_name = f"till_bench_{os.getpid()}_{config.replace('-', '_')}"
    data_dir = Path(tempfile.mkdtemp(prefix=f"{config}-data-", dir=workdir))  # one per round
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(
        TILL_DATABASE_URL=args.database_url,
        TILL_DATABASE_SCHEMA=schema_name,
        TILL_DATA_DIR=str(data_dir),
        # The append path alone: in production on PostgreSQL the projections run as their own
        # process (`till project run`), not inside the API workers.
        TILL_EMBEDDED_PROJECTIONS="false",
    )
    if config == "one-save":
        env["TILL_GROUP_COMMIT"] = "false"
    else:
        env.pop("TILL_GROUP_COMMIT", None)  # measure the default, whatever the caller's shell says
    till = args.till
    if not till.exists():
        raise BenchError(f"{till} does not exist (is the package installed in the venv?)")
    # No access log: the figures in docs/performance.md were taken without one (a JSON line per append).
    cmd = [str(till), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
           "--no-access-log"]
    log_path = workdir / f"{data_dir.name}-server.log"
    with fresh_schema(args.database_url, schema_name):
        with server_process(cmd, env, log_path) as proc:
            wait_healthy(base_url, proc, log_path)
            admin_token = read_admin_token(data_dir)
            t0 = time.monotonic()
            terminals = provision_terminals(base_url, admin_token, args.terminals)
            print(f"  provisioned {len(terminals)} terminals in {time.monotonic() - t0:.1f} s", flush=True)
            terminals_file = workdir / f"{config}-terminals.json"
            terminals_file.write_text(json.dumps(terminals))
            run_loadgen(args, base_url, terminals_file, "app", proc.pid, result)
            if proc.poll() is not None:
                raise BenchError(f"server exited with {proc.returncode} during the run:\n{log_tail(log_path)}")
        tables = schema_tables(args.database_url, schema_name)
        if not tables:
            # The service did not honour TILL_DATABASE_SCHEMA: the run was not on a fresh schema.
            print(f"  WARNING: no tables in schema {schema_name}; the service wrote elsewhere", flush=True)
    return result


def run_noop_config(args: argparse.Namespace, workdir: Path) -> Result:
    result = Result(config="noop")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    cmd = [
        str(venv_bin("python")), "-m", "uvicorn", "bench.noop_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    log_path = Path(tempfile.mkstemp(prefix="noop-", suffix="-server.log", dir=workdir)[1])
    with server_process(cmd, dict(os.environ), log_path) as proc:
        wait_healthy(base_url, proc, log_path)
        terminals_file = workdir / "noop-terminals.json"
        terminals_file.write_text(json.dumps(fake_terminals(args.terminals)))
        run_loadgen(args, base_url, terminals_file, "noop", proc.pid, result)
    return result


# --- report -------------------------------------------------------------------------------------


ROW = "{:<34} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7}  {:>24}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_report(results: dict[str, Result], args: argparse.Namespace, command: str) -> dict[str, Any]:
    print()
    print(
        f"Append benchmark: {args.terminals} terminals, {args.workers} worker(s), "
        f"{args.duration:g} s measured after {args.warmup:g} s warm-up, {args.rounds} round(s), {os.cpu_count()} CPUs"
    )
    header = ROW.format(
        "configuration",
        "actions/s",
        "sales/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "cpu: loadgen/server/all",
    )
    print(header)
    print("-" * len(header))
    for config in CONFIGS:
        r = results.get(config)
        if r is None:
            continue
        label = CONFIG_LABELS[config]
        if r.failure is not None:
            print(f"{label:<34} FAILED: {r.failure.splitlines()[0]}")
            continue
        cpu = f"{r.loadgen_cpu_cores:.2f}/{r.server_cpu_cores:.2f}/{r.machine_busy_cores:.2f}"
        print(
            ROW.format(
                label,
                f"{r.rps:.1f}",
                f"{r.sales_per_s:.1f}",
                f"{r.p50_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{r.max_ms:.2f}",
                r.errors,
                cpu,
            )
        )
    print()

    ok = {c: r for c, r in results.items() if r.failure is None and r.requests > 0}
    checks: dict[str, Any] = {}
    gc = ok.get("group-commit")
    if gc is not None and "one-save" in ok:
        ratio = gc.rps / ok["one-save"].rps
        checks["group_commit_vs_one_save"] = round(ratio, 2)
        target = f"target ≥ {TARGET_VS_ONE_SAVE:g}×"
        print(f"group commit ÷ one-save baseline: {ratio:6.2f}×   {target:<16} {verdict(ratio >= TARGET_VS_ONE_SAVE)}")
    if gc is not None and "noop" in ok:
        ratio = gc.rps / ok["noop"].rps
        checks["group_commit_vs_noop"] = round(ratio, 3)
        target = f"target ≥ {TARGET_VS_NOOP:g}"
        print(f"group commit ÷ no-op endpoint:    {ratio:6.3f}    {target:<16} {verdict(ratio >= TARGET_VS_NOOP)}")
    if gc is not None:
        checks["group_commit_p99_ms"] = gc.p99_ms
        target = f"target ≤ {TARGET_P99_MS:g} ms"
        print(
            f"group commit p99:                 {gc.p99_ms:6.2f} ms {target:<16} {verdict(gc.p99_ms <= TARGET_P99_MS)}"
        )
        if gc.errors:
            print(f"group commit had {gc.errors} errors: the figures above are not valid")
    print()
    print(f"command: {command}")
    return {
        "command": command,
        "terminals": args.terminals,
        "workers": args.workers,
        "duration": args.duration,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "results": {c: asdict(r) for c, r in results.items()},
        "checks": checks,
    }


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Till Ledger append benchmark (group commit vs one save per request vs no-op)."
    )
    p.add_argument("--terminals", type=int, default=64, help="concurrent simulated terminals (one connection each)")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per configuration")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--workers", type=int, default=1, help="server worker processes (same for all configurations)")
    p.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"comma-separated subset of {','.join(CONFIGS)} (default: all, in that order)",
    )
    p.add_argument(
        "--till",
        type=Path,
        default=venv_bin("till"),
        help="the service's console script (default: the venv's till)",
    )
    p.add_argument("--rounds", type=int, default=1,
                   help="run every configuration this many times, alternating; report the median round")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--keep-workdir", action="store_true", help="keep server logs and terminals files")
    args = p.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(args.configs) - set(CONFIGS))
    if unknown:
        p.error(f"unknown configuration(s) {unknown}; choose from {CONFIGS}")
    if args.terminals < 1 or args.workers < 1 or args.rounds < 1 or args.duration <= 0 or args.warmup < 0:
        p.error("--terminals, --workers and --rounds must be ≥ 1, --duration > 0, --warmup ≥ 0")
    return args


def run_config(args: argparse.Namespace, config: str, workdir: Path) -> Result:
    try:
        if config == "noop":
            result = run_noop_config(args, workdir)
        else:
            result = run_service_config(args, config, workdir)
    except (BenchError, subprocess.TimeoutExpired, httpx.HTTPError, psycopg.Error) as exc:
        # One configuration failing must not hide the others' figures.
        print(f"  FAILED: {exc}", file=sys.stderr, flush=True)
        return Result(config=config, failure=f"{type(exc).__name__}: {exc}")
    summary = f"{result.rps:.1f} actions/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms"
    print(f"  {summary}, errors {result.errors}", flush=True)
    return result


def median_result(runs: list[Result]) -> Result:
    """The round with the median throughput (a failed round counts as the slowest)."""
    ranked = sorted(runs, key=lambda r: -1.0 if r.failure is not None else r.rps)
    return ranked[(len(ranked) - 1) // 2]


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    # SIGTERM to the bench behaves like Ctrl-C so every `finally` stops its subprocess.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["bench/append.py", *argv])
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="till-bench-"))
    rounds: dict[str, list[Result]] = {config: [] for config in args.configs}
    try:
        # Configurations alternate round by round, so a slow spell of a shared machine hits all of them.
        for round_no in range(1, args.rounds + 1):
            for config in args.configs:
                print(f"== round {round_no}/{args.rounds}: {CONFIG_LABELS[config]} ({config})", flush=True)
                rounds[config].append(run_config(args, config, workdir))
        results = {config: median_result(runs) for config, runs in rounds.items()}
        report = print_report(results, args, command)
        if args.rounds > 1:
            for config, runs in rounds.items():
                each = ", ".join(f"{r.rps:.0f}" if r.failure is None else "failed" for r in runs)
                print(f"  {config}: actions/s by round {each} (the table shows the median round)")
            report["rounds"] = {c: [asdict(r) for r in runs] for c, runs in rounds.items()}
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2) + "\n")
            print(f"results written to {args.json}")
    except KeyboardInterrupt:
        print("interrupted; servers stopped and schemas dropped", file=sys.stderr)
        return 130
    finally:
        if args.keep_workdir:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(r.failure is None for runs in rounds.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
