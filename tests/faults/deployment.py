"""One scenario's world on loopback: a fresh schema in the private PostgreSQL, the acquirer simulator,
``till serve`` (authorizing through the simulator) and a ``till project run ledger_view`` worker.

The service and the worker are the real programs, as subprocesses. The simulator runs in this
process (``SimulatorThread``) so that its journal of approvals can be read and its rules changed
while the load runs. The harness reads the store and the view directly (``read()``), never through
the service it is judging.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx
import psycopg
from psycopg import sql

from adapters.acquirer_simulator import AcquirerSimulator, SimulatorThread
from adapters.settings import Settings
from api.app import build_services
from api.database_setup import init_database
from api.services import Services
from tests.faults.private_postgres import PrivatePostgres, free_port
from tests.faults.processes import Program, wait_until_ready

PROJECTOR_APP_NAME = "till-faults-projector"  # PGAPPNAME of the worker: its sessions in pg_stat_activity


@dataclass(frozen=True)
class ServiceTuning:
    """The service's settings that bound how long an in-doubt authorization lasts."""

    acquirer_timeout_s: float = 1.0
    reversal_scan_s: float = 0.5
    reversal_retry_max_s: float = 1.0
    projection_page_size: int = 500


class Deployment:
    def __init__(self, pg: PrivatePostgres, work: Path, name: str, tuning: ServiceTuning | None = None) -> None:
        self.pg, self.name = pg, name
        self.tuning = tuning or ServiceTuning()
        self.work = work / name
        self.work.mkdir(parents=True, exist_ok=True)
        self.schema = f"faults_{name}_{os.getpid()}"
        self.settings = Settings(data_dir=self.work / "data", database_url=pg.url, database_schema=self.schema,
                                 embedded_projections=False, create_tables=False)
        self.simulator = AcquirerSimulator(self.work / "acquirer-journal.sqlite")
        self._simulator_thread: SimulatorThread | None = None
        self.port = free_port()
        self.api: Program | None = None
        self.worker: Program | None = None
        self.admin_token = ""
        self._reader: Services | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- up and down -----------------------------------------------------------------------------
    def __enter__(self) -> Deployment:
        try:
            self._up()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _up(self) -> None:
        init_database(self.settings.model_copy(update={"create_tables": True}))
        self._simulator_thread = SimulatorThread(self.simulator)
        acquirer_port = self._simulator_thread.__enter__()
        t = self.tuning
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TILL_", "PG"))}
        env.update({"TILL_DATA_DIR": str(self.settings.data_dir), "TILL_DATABASE_URL": self.pg.url,
                    "TILL_DATABASE_SCHEMA": self.schema, "TILL_EMBEDDED_PROJECTIONS": "false",
                    "TILL_CREATE_TABLES": "false", "TILL_ACQUIRER_URL": f"127.0.0.1:{acquirer_port}",
                    "TILL_ACQUIRER_TIMEOUT_S": str(t.acquirer_timeout_s),
                    "TILL_REVERSAL_SCAN_S": str(t.reversal_scan_s),
                    "TILL_REVERSAL_RETRY_MAX_S": str(t.reversal_retry_max_s),
                    "TILL_PROJECTION_PAGE_SIZE": str(t.projection_page_size), "PYTHONUNBUFFERED": "1"})
        self.api = Program("api", ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
                                   "--no-access-log"], env, self.work).start()
        wait_until_ready(self.url, self.api)
        self.admin_token = (self.settings.data_dir / "admin.token").read_text().strip()
        self.worker = Program("projector", ["project", "run", "ledger_view"], {**env, "PGAPPNAME": PROJECTOR_APP_NAME},
                              self.work).start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        try:
            for program in (self.worker, self.api):
                if program is not None:
                    program.stop()
        finally:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            if self._simulator_thread is not None:
                self._simulator_thread.__exit__(None, None, None)
                self._simulator_thread = None
            self.simulator.close()
            if self.pg.running:
                with psycopg.connect(self.pg.url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute("SET lock_timeout = '20s'")
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))

    def logs(self) -> str:
        return "\n".join(p.tail() for p in (self.api, self.worker) if p is not None)

    # ---- reading the store and the view (not through the service) ---------------------------------
    def read(self) -> Services:
        """The ledger and the view, opened here on the same schema (nothing runs: no runner, no host)."""
        if self._reader is None:
            self._reader = build_services(self.settings.model_copy(update={"acquirer_url": None}), create_tables=False)
        return self._reader

    def head(self) -> int:
        return self.read().ledger.recorder.max_notification_id() or 0

    def view_position(self) -> int:
        views = self.read().read_models
        assert views is not None
        return views.projection.position()

    def wait_for_view(self, timeout_s: float = 30.0) -> float:
        """Wait until the view has applied the whole log; the seconds it took."""
        started = time.monotonic()
        head = self.head()
        while self.view_position() < head:
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"the view is at {self.view_position()}, the log at {head}, after "
                                     f"{timeout_s:g} s\n{self.logs()}")
            time.sleep(0.05)
        return time.monotonic() - started

    def in_doubt(self) -> int:
        """Transactions whose outcome the view shows pending or unknown."""
        views = self.read().read_models
        assert views is not None
        return sum(len(views.view.find_transactions(outcome=outcome)) for outcome in ("pending", "unknown"))


def ready_within(url: str, since: float, timeout_s: float = 30.0) -> float | None:
    """Seconds from ``since`` (time.monotonic()) until ``GET /readyz`` answers 200; None if not in time."""
    deadline = since + timeout_s
    with httpx.Client(timeout=1.0) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(f"{url}/readyz").status_code == 200:
                    return time.monotonic() - since
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    return None
