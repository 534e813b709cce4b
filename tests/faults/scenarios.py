"""The faults, one scenario each, and the report of a run: shared by tests/faults and bench/faults.py.

Every scenario runs the same way: a fresh deployment (``deployment.Deployment``), its terminals
provisioned, the load started; then the fault, timed; the load stopped (sales under way finish);
the service given a bounded time to settle what is in doubt and the view to catch up; then the
checks of ``checks``. ``Scale`` says how big and how long: ``CI`` keeps the five scenarios under
~90 s on a 2-core machine, ``BENCH`` is what docs/reliability.md reports.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

from tests.faults import checks
from tests.faults.agent_counter import CounterAgent
from tests.faults.deployment import PROJECTOR_APP_NAME, Deployment, ServiceTuning, ready_within
from tests.faults.load import Book, Load, LoadSettings, normal_amount, provision
from tests.faults.private_postgres import PrivatePostgres
from tests.faults.relay import Relay

RECOVERY_LIMIT_S = 5.0


@dataclass(frozen=True)
class Scale:
    terminals: int = 8
    before_s: float = 3.0  # load before the fault
    after_s: float = 2.5  # load after the fault ended
    agent_cut_s: float = 5.0  # how long the agent is cut off from the service
    agent_pause_s: float = 0.05  # between two customers at the agent's counter
    acquirer_fault_s: float = 3.0  # how long the host misbehaves
    projector_down_s: float = 1.0  # how long the killed projection worker stays down
    pg_restarts: int = 1  # PostgreSQL restarts in one run of restart_postgres
    settle_s: float = 30.0  # bound for in-doubt authorizations to be reversed and the view to catch up
    card_share: float = 0.5
    think_s: float = 0.0


CI = Scale()
BENCH = Scale(terminals=48, before_s=10.0, after_s=10.0, agent_cut_s=60.0, agent_pause_s=0.2, acquirer_fault_s=20.0,
              projector_down_s=5.0, settle_s=60.0)


@dataclass
class Run:
    """What a fault's timeline acts on."""

    name: str
    pg: PrivatePostgres
    deployment: Deployment
    book: Book
    load: Load
    scale: Scale
    notes: dict[str, Any] = field(default_factory=dict)
    extra_load: str = ""  # e.g. "+ 1 agent"


@dataclass
class Recovery:
    seconds: float | None  # from the fault's end until the service answered again (see ``means``)
    means: str


@dataclass
class FaultReport:
    fault: str
    terminals: str
    seconds: float
    attempted_per_s: float
    acknowledged: int
    replayed: int
    lost: int
    duplicated: int
    recovery_s: float | None
    recovery_means: str
    projection_equal: bool
    host_consistent: bool
    host_approvals: int
    reversed_at_host: int
    notes: dict[str, Any]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.duplicated == 0 and self.projection_equal and self.host_consistent
                and self.recovery_s is not None and self.recovery_s <= RECOVERY_LIMIT_S)


# ---- the faults ------------------------------------------------------------------------------------


def kill_service(run: Run) -> Recovery:
    """kill -9 the API process mid-load; restart it at once (as its supervisor would)."""
    time.sleep(run.scale.before_s)
    api = run.deployment.api
    assert api is not None
    api.kill()
    ended = time.monotonic()
    api.start()
    ready = ready_within(run.deployment.url, ended)
    first = _wait_first_ack(run.book, ended)
    run.notes["first new append acknowledged after restart (s)"] = _round(first)
    time.sleep(run.scale.after_s)
    return Recovery(ready, "restart → /readyz 200")


def restart_postgres(mode: str) -> Callable[[Run], Recovery]:
    def fault(run: Run) -> Recovery:
        """Restart the suite's private PostgreSQL mid-load (``pg_ctl restart -m MODE``), ``pg_restarts``
        times 2 s apart; the recovery reported is the slowest."""
        time.sleep(run.scale.before_s)
        slowest: float | None = 0.0
        down: list[float] = []
        for restart in range(run.scale.pg_restarts):
            if restart:
                time.sleep(2.0)
            started = time.monotonic()
            run.pg.restart(mode)
            ended = time.monotonic()
            down.append(round(ended - started, 2))
            ready = ready_within(run.deployment.url, ended)
            slowest = None if ready is None or slowest is None else max(slowest, ready)
            run.notes["first new append acknowledged after restart (s)"] = _round(_wait_first_ack(run.book, ended))
        run.notes["PostgreSQL down (s)"] = down[0] if len(down) == 1 else down
        time.sleep(run.scale.after_s)
        return Recovery(slowest, "PostgreSQL accepting again → /readyz 200")

    return fault


def kill_projector(run: Run) -> Recovery:
    """kill -9 the `till project run ledger_view` worker while a page is half written; restart it."""
    d = run.deployment
    worker = d.worker
    assert worker is not None and worker.popen is not None
    time.sleep(run.scale.before_s)
    caught, tries = _kill_mid_page(d, worker.popen.pid)
    worker.kill()
    run.notes["killed with a view transaction open (mid-page)"] = caught
    run.notes["freeze-and-look attempts"] = tries
    time.sleep(run.scale.projector_down_s)
    head = d.head()
    run.notes["view events behind the log at restart"] = head - d.view_position()
    ended = time.monotonic()
    worker.start()
    caught_up = None
    while time.monotonic() - ended < 30:
        if d.view_position() >= head:
            caught_up = time.monotonic() - ended
            break
        time.sleep(0.02)
    ready = ready_within(d.url, ended)
    time.sleep(run.scale.after_s)
    return Recovery(None if caught_up is None or ready is None else max(caught_up, ready),
                    "worker restart → view caught up with the log's head at restart (and /readyz 200)")


def _kill_mid_page(d: Deployment, pid: int, timeout_s: float = 10.0) -> tuple[bool, int]:
    """Freeze the worker (SIGSTOP) and look in pg_stat_activity: if one of its sessions has a view
    transaction open with rows written, it is mid-page — SIGKILL it there; else let it run a few ms and
    look again. Returns whether it was caught mid-page, and how many looks it took."""
    deadline = time.monotonic() + timeout_s
    tries = 0
    with psycopg.connect(d.pg.url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            tries += 1
            os.killpg(pid, signal.SIGSTOP)
            rows = conn.execute(
                "SELECT query FROM pg_stat_activity WHERE application_name = %s AND xact_start IS NOT NULL "
                "AND state <> 'idle'", [PROJECTOR_APP_NAME]).fetchall()
            if any("INSERT INTO" in q and (".view_" in q or "_tracking" in q) for (q,) in rows):
                os.killpg(pid, signal.SIGKILL)
                return True, tries
            os.killpg(pid, signal.SIGCONT)
            time.sleep(random.uniform(0.001, 0.01))
    return False, tries


def cut_agent(run: Run) -> Recovery:
    """Cut the terminal agent off from the service (a relay between them stops) for ``agent_cut_s``;
    the agent keeps selling cash offline and refuses cards; then it reconnects and its journal drains."""
    d, scale = run.deployment, run.scale
    (terminal,) = provision(d.url, d.admin_token, 1, run.book, open_till=False)
    run.extra_load = " + 1 agent"
    with Relay(d.port) as relay, CounterAgent(relay.url, terminal.terminal_id, terminal.token,
                                              d.work, pause_s=scale.agent_pause_s) as agent:
        agent.start()
        time.sleep(scale.before_s)
        # Cut while a cash customer is at the counter: a cut during a card authorization would leave
        # the agent waiting for that one outcome (by design, up to 90 s) instead of selling offline.
        _until(lambda: agent.serving == "cash", 10)
        relay.cut()
        cut_at = time.monotonic()
        most_queued = 0
        while time.monotonic() - cut_at < scale.agent_cut_s:
            most_queued = max(most_queued, agent.queued())
            time.sleep(0.05)
        queued_at_restore = agent.queued()
        relay.restore()
        ended = time.monotonic()
        # Back: the service accepts the agent's queued events again (the queue starts to shrink); then
        # the agent shows itself online again, and the queue is empty. Each timed from the restore.
        reached = online = drained = None
        while time.monotonic() - ended < 300 and drained is None:
            now = time.monotonic() - ended
            queued = agent.queued()
            reached = now if reached is None and queued < queued_at_restore else reached
            online = now if online is None and agent.online else online
            drained = now if queued == 0 else None
            time.sleep(0.02)
        time.sleep(scale.after_s)
        agent.stop()
        _until(lambda: agent.queued() == 0, 30)
        longest, refused = agent.after(ended)
        run.notes.update({
            "cut (s)": scale.agent_cut_s, "most events queued offline": most_queued,
            "journal drained after reconnect (s)": _round(drained),
            "agent shows online again after reconnect (s)": _round(online),
            "longest a customer waited at the counter after reconnect (s)": round(longest, 2),
            "card payments refused as offline after reconnect": refused,
            "journal rows still queued / rejected": f"{agent.queued()} / {agent.rejected()}",
            "agent outcomes": dict(sorted(agent.outcomes.items())),
        })
        run.notes["agent appends"] = agent.book_rows(run.book)
        if agent.queued() or agent.rejected():
            run.notes["problem"] = "the agent's journal did not drain"
        if not most_queued or not any("(offline)" in outcome for outcome in agent.outcomes):
            run.notes["problem"] = "the agent never sold offline: the cut was not exercised"
    return Recovery(reached, "relay restored → the service accepts the agent's queued events again")


FAULT_BAND_RULES: list[dict[str, Any]] = [  # amounts of card sales in these bands misbehave at the host
    {"kinds": ["sale"], "min_amount_minor": 20_000, "max_amount_minor": 20_999, "action": "drop"},
    {"kinds": ["sale"], "min_amount_minor": 21_000, "max_amount_minor": 21_999, "action": "slow", "delay_ms": 1_500},
    {"kinds": ["sale"], "min_amount_minor": 22_000, "max_amount_minor": 22_999, "action": "duplicate"},
    {"kinds": ["sale"], "min_amount_minor": 23_000, "max_amount_minor": 23_999, "action": "stale_reply_first"},
    {"kinds": ["sale"], "min_amount_minor": 24_000, "max_amount_minor": 24_999, "action": "disconnect"},
    {"kinds": ["reversal"], "times": 3, "action": "drop"},  # the first reversals go unanswered too
]


def banded_amount(rng: random.Random) -> int:
    """Half the card sales in one of the fault bands, the rest normal."""
    if rng.random() < 0.5:
        return rng.randrange(20_000, 25_000)
    return normal_amount(rng)


def acquirer_faults(run: Run) -> Recovery:
    """The host drops replies, answers after the service's timeout, answers twice, answers another
    request first, hangs up — for ``acquirer_fault_s`` — and ignores the first reversals."""
    sim = run.deployment.simulator
    time.sleep(run.scale.before_s)
    sim.set_rules(FAULT_BAND_RULES)
    time.sleep(run.scale.acquirer_fault_s)
    sim.set_rules([])
    ended = time.monotonic()
    approved = _until(lambda: run.book.first_approval_sent_after(ended) is not None, 30)
    first = run.book.first_approval_sent_after(ended)
    ready = ready_within(run.deployment.url, ended)
    time.sleep(run.scale.after_s)
    actions = Counter(r["action"] for r in FAULT_BAND_RULES)
    run.notes["rules"] = ", ".join(sorted(actions))
    return Recovery(None if approved is None or ready is None else max(first or 0.0, ready),
                    "rules cleared → the next authorization sent is approved (and /readyz 200)")


@dataclass(frozen=True)
class Fault:
    name: str
    title: str
    timeline: Callable[[Run], Recovery]
    amount: Callable[[random.Random], int] = normal_amount


FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("kill_service", "kill -9 the service, restart", kill_service),
    Fault("restart_postgres", "restart PostgreSQL (-m immediate)", restart_postgres("immediate")),
    Fault("restart_postgres_fast", "restart PostgreSQL (-m fast)", restart_postgres("fast")),
    Fault("kill_projector", "kill -9 the projection worker mid-page", kill_projector),
    Fault("cut_agent", "cut the agent off from the service", cut_agent),
    Fault("acquirer_faults", "host drops, delays, duplicates replies", acquirer_faults, banded_amount),
)}


def run_fault(name: str, pg: PrivatePostgres, scale: Scale, work: Path) -> FaultReport:
    fault = FAULTS[name]
    title = fault.title
    if name == "cut_agent":
        title = f"cut the agent off from the service for {scale.agent_cut_s:g} s"
    with Deployment(pg, work, name, ServiceTuning()) as d:
        book = Book()
        terminals = provision(d.url, d.admin_token, scale.terminals, book)
        attempted_before = book.counts["appends attempted"]
        load = Load(d.url, terminals, book, LoadSettings(card_share=scale.card_share, amount=fault.amount,
                                                         think_s=scale.think_s))
        run = Run(name, pg, d, book, load, scale)
        load.start()
        try:
            recovery = fault.timeline(run)
        finally:
            load.stop()
        attempted = book.counts["appends attempted"] - attempted_before - int(run.notes.get("agent appends", 0))
        settled = _settle(d, scale.settle_s)
        run.notes["in doubt left after the load, settled in (s)"] = _round(settled)
        services = d.read()
        store = checks.read_store(services)
        acks = checks.acknowledgements(book, store)
        view = checks.projection(services, store)
        host = checks.host_and_ledger(d.simulator.journal.entries(), store)
        run.notes["reversed in the ledger, never sent to the host"] = host.reversed_unseen_by_host
        run.notes["client counts"] = dict(sorted(book.counts.items()))
        run.notes["events in the store"] = len(store.events)
        problems = [*(f"lost: {p}" for p in acks.lost[:checks.SHOWN]),
                    *(f"duplicated: {p}" for p in acks.duplicated[:checks.SHOWN]),
                    *(f"projection: {p}" for p in view.differences[:checks.SHOWN]),
                    *(f"host/ledger: {p}" for p in host.problems[:checks.SHOWN])]
        if "problem" in run.notes:
            problems.append(str(run.notes["problem"]))
        if recovery.seconds is None or recovery.seconds > RECOVERY_LIMIT_S:
            problems.append(f"recovery {recovery.seconds} s ({recovery.means}) over {RECOVERY_LIMIT_S:g} s")
        if problems:
            problems.append(d.logs())
        return FaultReport(
            fault=title, terminals=f"{scale.terminals}{run.extra_load}", seconds=round(load.seconds, 1),
            attempted_per_s=round(attempted / load.seconds, 1), acknowledged=acks.acknowledged,
            replayed=acks.replayed, lost=len(acks.lost), duplicated=len(acks.duplicated),
            recovery_s=None if recovery.seconds is None else round(recovery.seconds, 2),
            recovery_means=recovery.means, projection_equal=view.equal, host_consistent=host.consistent,
            host_approvals=host.host_approvals, reversed_at_host=host.reversed_at_host, notes=run.notes,
            problems=problems)


def _settle(d: Deployment, timeout_s: float) -> float | None:
    """Wait (bounded) until nothing is in doubt and the view has the whole log; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        d.wait_for_view(timeout_s)
        if d.in_doubt() == 0:
            d.wait_for_view(timeout_s)
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def _until(condition: Callable[[], bool], timeout_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def _wait_first_ack(book: Book, since: float, timeout_s: float = 15.0) -> float | None:
    _until(lambda: book.first_ack_after(since) is not None, timeout_s)
    return book.first_ack_after(since)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# ---- the table -------------------------------------------------------------------------------------

HEADER = ("fault", "load (terminals, appends/s attempted)", "events acknowledged", "lost", "duplicated",
          "recovery (s)", "projection = recomputed", "host = ledger")


def table(reports: list[FaultReport]) -> str:
    rows = [HEADER] + [(
        r.fault, f"{r.terminals}, {r.attempted_per_s:g}/s over {r.seconds:g} s", str(r.acknowledged), str(r.lost),
        str(r.duplicated), "-" if r.recovery_s is None else f"{r.recovery_s:.2f}",
        "yes" if r.projection_equal else "NO", "yes" if r.host_consistent else "NO") for r in reports]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def scaled(scale: Scale, **changes: Any) -> Scale:
    return replace(scale, **changes)
