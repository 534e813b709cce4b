"""``till-agent doctor``: check the counter's setup and say what is wrong in plain words.

The checks, in order (one whose prerequisite has a problem is skipped):

    settings      every TILL_AGENT_* value passes validation (a bad one is named, not shown as a traceback)
    terminal      the terminal id and its token are set (the token is never shown)
    journal       the journal's folder is writable and the journal opens: events queued, events refused
    service       TILL_AGENT_SERVICE_URL answers /healthz
    token         the service accepts the token for this terminal (GET /v1/terminals/{id})
    printer       the receipt printer answers a status read: ready, paper low or out, offline
    card readers  pcscd runs and lists the readers named in TILL_AGENT_CONTACT_READER / _CONTACTLESS_READER

Unlike ``till-agent self-check`` it needs no working service to start, and it creates nothing: a
missing journal is reported, not made.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import tempfile
import uuid
from pathlib import Path

import httpx
from pydantic import ValidationError
from pydantic_settings import SettingsError

from adapters.diagnosis import (Check, Diagnosis, Finding, diagnose, mask_url, ok, print_diagnosis, problem,
                                settings_problem, warning)
from terminal_agent.settings import AgentSettings

TIMEOUT_S = 3.0
_NEW_TOKEN = ("issue one with `till token create --role terminal --terminal {id}` and set TILL_AGENT_TOKEN "
              "(or TILL_AGENT_TOKEN_FILE)")


class AgentDoctor:
    """The checks of one counter, as configured by this process's TILL_AGENT_* environment."""

    def __init__(self) -> None:
        self._settings: AgentSettings | None = None
        self._token: str | None = None

    @property
    def settings(self) -> AgentSettings:
        if self._settings is None:  # only checks that need "settings" ask for it
            raise RuntimeError("the settings check has not passed")
        return self._settings

    def checks(self) -> list[Check]:
        return [
            Check("settings", self.check_settings),
            Check("terminal", self.check_terminal, needs=("settings",)),
            Check("journal", self.check_journal, needs=("settings",)),
            Check("service", self.check_service, needs=("settings",)),
            Check("token", self.check_token, needs=("terminal", "service")),
            Check("printer", self.check_printer, needs=("settings",)),
            Check("card readers", self.check_readers, needs=("settings",)),
        ]

    def secrets(self) -> list[str]:
        return [self._token] if self._token else []

    # ---- configuration --------------------------------------------------------------------------

    def check_settings(self) -> Finding:
        try:
            self._settings = AgentSettings()
        except ValidationError as exc:
            return settings_problem(exc, "TILL_AGENT_", secret_fields=("token",))
        except SettingsError as exc:
            return problem(f"the TILL_AGENT_* settings cannot be read: {exc}", "correct the variable it names")
        return ok(f"the TILL_AGENT_* settings are valid (service {mask_url(self.settings.service_url)}, "
                  f"data in {self.settings.data_dir.resolve()})")

    def check_terminal(self) -> Finding:
        s = self.settings
        if not s.terminal_id:
            return problem("TILL_AGENT_TERMINAL_ID is not set",
                           "set it to the terminal's id (POST /v1/terminals answers it)")
        try:
            uuid.UUID(s.terminal_id)
        except ValueError:
            return problem(f"TILL_AGENT_TERMINAL_ID={s.terminal_id!r} is not a terminal id (a UUID)",
                           "copy the terminal_id that POST /v1/terminals answered")
        try:
            self._token = s.bearer_token()
        except (OSError, ValueError) as exc:
            reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else str(exc)
            return problem(f"the terminal's token cannot be read ({reason})", _NEW_TOKEN.format(id=s.terminal_id))
        if not self._token:
            return problem("the terminal's token is empty", _NEW_TOKEN.format(id=s.terminal_id))
        if s.token is None and s.token_file is not None:
            mode = stat.S_IMODE(s.token_file.stat().st_mode)
            if mode & 0o077:
                return warning(f"the token file {s.token_file.resolve()} is readable by others (mode {mode:o})",
                               f"run chmod 600 {s.token_file.resolve()}", mode=f"{mode:o}")
        return ok(f"terminal {s.terminal_id} has a token set (not shown)")

    # ---- the journal ----------------------------------------------------------------------------

    def check_journal(self) -> Finding:
        from terminal_agent.journal import Journal

        path = self.settings.journal_path.resolve()
        folder = path.parent
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            return problem(f"{existing} is not a folder, so the journal cannot live under it",
                           "set TILL_AGENT_DATA_DIR to a folder")
        try:  # a real write: os.access says yes to root even on a read-only mount
            fd, probe = tempfile.mkstemp(prefix=".till-doctor-", dir=existing)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            return problem(f"{existing} is not writable by this user ({(exc.strerror or str(exc)).lower()})",
                           "give the agent's user write access (chown/chmod) or set TILL_AGENT_DATA_DIR")
        if not path.exists():
            made = "it" if existing == folder else f"it and {folder}"
            return ok(f"no journal yet at {path}: the first `till-agent run` creates {made} ({existing} is writable)")
        try:
            journal = Journal(path)
        except sqlite3.Error as exc:
            return problem(f"the journal {path} does not open ({exc})",
                           "keep a copy of the file (it may hold events the service has not seen) and "
                           "ask for help before moving it aside")
        try:
            backlog = journal.backlog()
        finally:
            journal.close()
        facts = {"queued": backlog.queued, "rejected": backlog.rejected}
        waiting = f"{backlog.queued} event{'s' if backlog.queued != 1 else ''} queued for the service"
        if backlog.rejected:
            return warning(f"the journal {path} opens, but the service refused {backlog.rejected} event"
                           f"{'s' if backlog.rejected != 1 else ''}, which hold back their transactions "
                           f"({waiting})", "`till-agent queue` lists them with the service's reasons", **facts)
        return ok(f"the journal {path} opens; {waiting}", **facts)

    # ---- the service ----------------------------------------------------------------------------

    def check_service(self) -> Finding:
        base = self.settings.service_url.rstrip("/")
        where = mask_url(base)
        try:
            answer = httpx.get(f"{base}/healthz", timeout=httpx.Timeout(TIMEOUT_S, connect=2.0))
        except httpx.ConnectError as exc:
            return problem(f"the ledger service at {where} does not answer ({_connect_reason(exc)})",
                           "is `till serve` running there? check TILL_AGENT_SERVICE_URL; "
                           "meanwhile the counter takes cash only")
        except httpx.TimeoutException:
            return problem(f"the ledger service at {where} did not answer within {TIMEOUT_S:g} s",
                           "is the network up? check TILL_AGENT_SERVICE_URL")
        except httpx.HTTPError as exc:
            return problem(f"the ledger service at {where} cannot be asked ({type(exc).__name__}: {exc})",
                           "check TILL_AGENT_SERVICE_URL (http://host:port)")
        if answer.status_code != 200:
            return problem(f"the ledger service at {where} answers /healthz with {answer.status_code}",
                           "look at the service's log, or check TILL_AGENT_SERVICE_URL points at Till Ledger")
        return ok(f"the ledger service at {where} answers /healthz")

    def check_token(self) -> Finding:
        from terminal_agent.service_client import ServiceClient, ServiceRefused, ServiceUnreachable

        s = self.settings
        client = ServiceClient(s.service_url, self._token or "", timeout_s=TIMEOUT_S)
        try:
            terminal = client.terminal(s.terminal_id)
        except ServiceRefused as exc:
            if exc.status == 401:
                return problem("the terminal token was refused: revoked or mistyped",
                               _NEW_TOKEN.format(id=s.terminal_id))
            if exc.status == 403:
                return problem(f"the token is not this terminal's ({exc.detail})",
                               f"use a terminal token issued for {s.terminal_id}, or check TILL_AGENT_TERMINAL_ID")
            if exc.status == 404:
                return problem(f"the service knows no terminal {s.terminal_id}",
                               "check TILL_AGENT_TERMINAL_ID (and that the agent talks to the right service)")
            return problem(f"the service refused to show this terminal ({exc.code}: {exc.detail})",
                           "check TILL_AGENT_TERMINAL_ID and the token")
        except ServiceUnreachable as exc:
            return problem(f"{exc.detail}", "try again; look at the service's log if it persists")
        finally:
            client.close()
        return ok(f"the service accepts the token for terminal {terminal.get('terminal_no')} "
                  f"({terminal.get('merchant_name')})")

    # ---- the hardware ---------------------------------------------------------------------------

    def check_printer(self) -> Finding:
        from adapters.escpos_printer import EscposPrinter, parse_printer_url
        from domain.hardware import PrinterUnavailable

        s = self.settings
        try:
            url = parse_printer_url(s.printer_url)
        except ValueError as exc:
            return problem(f"TILL_AGENT_PRINTER_URL is not usable: {exc}", "correct TILL_AGENT_PRINTER_URL")
        if url.kind == "file":
            device = Path(url.path)
            if not os.access(device, os.W_OK):
                return problem(f"the printer device {device} {'is not writable' if device.exists() else 'is missing'}",
                               "is the printer plugged in and switched on? check TILL_AGENT_PRINTER_URL")
            return ok(f"the printer device {device} is there; a file:// printer cannot report paper or errors")
        try:
            printer = EscposPrinter(s.printer_url, columns=s.printer_columns, timeout_s=TIMEOUT_S)
        except ValueError as exc:
            return problem(f"the printer settings are not usable: {exc}",
                           "correct TILL_AGENT_PRINTER_URL or TILL_AGENT_PRINTER_COLUMNS (32 or 48)")
        where = f"the receipt printer at {url.text}"
        if not printer.status_supported:
            printer.close()
            return ok(f"{where} is set up; a {url.kind}: printer cannot report paper or errors")
        try:
            status = printer.status()
        except PrinterUnavailable as exc:
            return problem(exc.detail, "is it switched on and connected? check TILL_AGENT_PRINTER_URL")
        finally:
            printer.close()
        facts = {"online": status.online, "paper": status.paper}
        if status.paper == "out":
            return problem(f"{where} is out of paper", "load a new paper roll", **facts)
        if not status.online:
            return problem(f"{where} reports itself offline", "close its cover, or clear the error (paper jam, "
                           "cutter) and switch it off and on", **facts)
        if status.paper == "near_end":
            return warning(f"{where} is ready, but its paper roll is nearly used up", "have a new roll at hand",
                           **facts)
        return ok(f"{where} is ready (online, paper loaded)", **facts)

    def check_readers(self) -> Finding:
        from adapters.pcsc_reader import list_readers
        from domain.hardware import CardReaderUnavailable

        s = self.settings
        wanted = [(variable, name, slot) for variable, name, slot in (
            ("TILL_AGENT_CONTACT_READER", s.contact_reader, "chip slot"),
            ("TILL_AGENT_CONTACTLESS_READER", s.contactless_reader, "contactless pad")) if name]
        if not wanted:
            return warning("no card reader is set, so the counter takes cash only",
                           "set TILL_AGENT_CONTACT_READER to the reader's PC/SC name (`pcsc_scan` shows it)")
        try:
            present = list_readers()
        except CardReaderUnavailable as exc:
            return problem(f"{exc.detail}, so no card reader can be used",
                           "start it (`systemctl start pcscd`, or `pcscd --foreground &`)")
        missing = [(variable, name) for variable, name, _ in wanted if name not in present]
        if missing:
            listed = ", ".join(repr(r) for r in present) or "no reader at all"
            return problem("pcscd lists no reader named " + " or ".join(f"{n!r} ({v})" for v, n in missing)
                           + f"; it lists {listed}",
                           "plug the reader in, or set the variable to one of the listed names",
                           readers=present)
        return ok("pcscd lists the " + " and the ".join(f"{slot} {name!r}" for _, name, slot in wanted),
                  readers=present)


def _connect_reason(exc: httpx.ConnectError) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused: nothing listens there"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "the host name is unknown"
    return str(exc) or type(exc).__name__


def run_checks() -> Diagnosis:
    doctor = AgentDoctor()
    return diagnose("till-agent doctor: checking this counter (TILL_AGENT_* settings of this environment)",
                    doctor.checks(), secrets=doctor.secrets)


def main(*, as_json: bool = False) -> int:
    """Print the diagnosis; the exit status is 1 when any check found a problem."""
    return print_diagnosis(run_checks(), as_json=as_json)
