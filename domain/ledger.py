"""Ledger: the event-sourced application — its use cases as commands, and its reads.

Commands are functions of a UnitOfWork, so the same use case runs alone (one save) or grouped
with others into one store transaction by the group committer (``adapters.group_commit``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import Recording

from domain.aggregate import LedgerAggregate
from domain.api_token import ApiToken, token_hash, token_id_for
from domain.append import AppendRequest, AppendResult, append
from domain.chain import ChainCheck, event_record, record_hash, verify_records
from domain.errors import AlreadyExists, InvalidInput, NotFound, OperatorCredentialsInvalid, StaffCredentialsInvalid
from domain.ports import PasswordHasher, UnitOfWork
from domain.stamp import Stamp
from domain.staff_account import StaffAccount, check_user_name, staff_account_id_for
from domain.terminal import Terminal, terminal_id_for
from domain.till import TillSession
from domain.till_actions import TILL_HANDLERS
from domain.transaction import Transaction
from domain.transaction_actions import TRANSACTION_HANDLERS
from domain.settlement import SettlementFile, settlement_id_for
from domain.z_report import ZReport, z_report_id_for

R = TypeVar("R")
# A real argon2id hash (at the production cost), verified against when a user name is unknown; the
# sign-in fails whatever the result.
_UNKNOWN_STAFF_HASH = "$argon2id$v=19$m=19456,t=2,p=1$WN6wpysYLtDOvNFdUXyPEg$580wXQGvyDCo5HUjuH2PhM3FpS7b6zEfCpbQXyTPXoE"
TAgg = TypeVar("TAgg", bound=LedgerAggregate)
Command = Callable[[UnitOfWork], R]


class Ledger(Application[UUID]):
    """The till ledger: terminals, till sessions, transactions and API tokens in one event store."""

    name = "Ledger"
    # A terminal's stream grows with every transaction it starts: load it from a snapshot.
    snapshotting_intervals = {Terminal: 100}

    def save_aggregates(self, aggregates: list[LedgerAggregate]) -> list[Recording[UUID]]:
        """``save()`` for our own aggregates, without its per-object runtime Protocol checks.

        Those isinstance checks cost ~9% of the group committer's time. This builds the same
        ProcessingEvent ``save()`` builds (eventsourcing 9.5.6, pinned) and records it the same way.
        """
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        due: list[LedgerAggregate] = []
        for aggregate in aggregates:
            events = aggregate.collect_events()
            processing_event.events.extend(events)
            processing_event.aggregates[aggregate.id] = aggregate
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval and aggregate.version // interval > (aggregate.version - len(events)) // interval:
                due.append(aggregate)
        recordings = self._record(processing_event)
        # Snapshot the aggregate in hand: the library's take_snapshot() would reload the whole
        # stream from the store, a stall of ~25 ms in the writer for a long terminal stream.
        if due and self.snapshots is not None:
            self.snapshots.put([getattr(type(a), "Snapshot", type(self).snapshot_class).take(a) for a in due])
        self._notify(recordings)
        return recordings

    # ---- commands (run through an executor: grouped or single) ---------------------------------
    @staticmethod
    def append_transaction_event(request: AppendRequest) -> Command[AppendResult]:
        return lambda uow: append(uow, Transaction, TRANSACTION_HANDLERS, request, lambda t: t.txn_terminal_id)

    @staticmethod
    def append_till_event(request: AppendRequest) -> Command[AppendResult]:
        return lambda uow: append(uow, TillSession, TILL_HANDLERS, request, lambda t: t.till_terminal_id)

    @staticmethod
    def register_terminal(stamp: Stamp, merchant_name: str, merchant_no: str, terminal_no: str,
                          parameters: Mapping[str, Any]) -> Command[Terminal]:
        def command(uow: UnitOfWork) -> Terminal:
            if uow.find(terminal_id_for(merchant_no, terminal_no), Terminal) is not None:
                raise AlreadyExists(f"terminal {terminal_no} of merchant {merchant_no} is already registered")
            terminal = Terminal.register(stamp, merchant_name, merchant_no, terminal_no, dict(parameters))
            uow.add(terminal)
            return terminal
        return command

    @staticmethod
    def change_terminal_parameters(stamp: Stamp, terminal_id: UUID, changes: Mapping[str, Any]) -> Command[Terminal]:
        def command(uow: UnitOfWork) -> Terminal:
            terminal = uow.get(terminal_id, Terminal)
            terminal.change_parameters(stamp, dict(changes))
            return terminal
        return command

    @staticmethod
    def enroll_operator(stamp: Stamp, terminal_id: UUID, operator_no: str, name: str,
                        password_hash: str) -> Command[Terminal]:
        def command(uow: UnitOfWork) -> Terminal:
            terminal = uow.get(terminal_id, Terminal)
            terminal.enroll_operator(stamp, operator_no, name, password_hash)
            return terminal
        return command

    @staticmethod
    def issue_token(stamp: Stamp, token: str, role: str, terminal_id: UUID | None, label: str,
                    expires_at: datetime | None = None) -> Command[ApiToken]:
        def command(uow: UnitOfWork) -> ApiToken:
            if terminal_id is not None:
                uow.get(terminal_id, Terminal)
            issued = ApiToken.issue(stamp, token, role, terminal_id, label, expires_at)
            uow.add(issued)
            return issued
        return command

    @staticmethod
    def issue_z_report(stamp: Stamp, terminal_id: UUID, batch_no: str, business_day: str, settled_at: str,
                       report: dict[str, Any]) -> Command[ZReport]:
        def command(uow: UnitOfWork) -> ZReport:
            if uow.find(z_report_id_for(terminal_id, batch_no), ZReport, expect_new=True) is not None:
                raise AlreadyExists(f"the Z report of batch {batch_no} is already issued")
            issued = ZReport.issue(stamp, terminal_id, batch_no, business_day, settled_at, report)
            uow.add(issued)
            return issued
        return command

    @staticmethod
    def import_settlement_file(stamp: Stamp, file_sha256: str, file_name: str,
                               lines: list[dict[str, Any]]) -> Command[SettlementFile]:
        def command(uow: UnitOfWork) -> SettlementFile:
            existing = uow.find(settlement_id_for(file_sha256), SettlementFile, expect_new=True)
            if existing is not None:
                raise AlreadyExists("this settlement file is already imported", settlement_id=str(existing.id))
            imported = SettlementFile.import_file(stamp, file_sha256, file_name, lines)
            uow.add(imported)
            return imported
        return command

    @staticmethod
    def revoke_token(stamp: Stamp, token_id: UUID) -> Command[ApiToken]:
        def command(uow: UnitOfWork) -> ApiToken:
            token = uow.get(token_id, ApiToken)
            token.revoke(stamp)
            return token
        return command

    @staticmethod
    def open_staff_account(stamp: Stamp, user_name: str, role: str, display_name: str,
                           password_hash: str) -> Command[StaffAccount]:
        def command(uow: UnitOfWork) -> StaffAccount:
            if uow.find(staff_account_id_for(check_user_name(user_name)), StaffAccount, expect_new=True) is not None:
                raise AlreadyExists(f"a staff account named {user_name.lower()} exists")
            account = StaffAccount.open(stamp, user_name, role, display_name, password_hash)
            uow.add(account)
            return account
        return command

    @staticmethod
    def change_staff_account(stamp: Stamp, user_name: str, *, password_hash: str | None = None,
                             disable_reason: str | None = None, enable: bool = False,
                             sign_out: bool = False) -> Command[StaffAccount]:
        """A new password, disabling, or signing out (each ends its sessions), or enabling again."""
        def command(uow: UnitOfWork) -> StaffAccount:
            account = uow.get(staff_account_id_for(check_user_name(user_name)), StaffAccount)
            if password_hash is not None:
                account.change_password(stamp, password_hash)
            if disable_reason is not None:
                account.disable(stamp, disable_reason)
            if enable:
                account.enable(stamp)
            if sign_out:
                account.sign_out(stamp)
            return account
        return command

    # ---- reads ----------------------------------------------------------------------------------
    def load(self, aggregate_id: UUID, cls: type[TAgg]) -> TAgg:
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(f"no {cls.__name__} with id {aggregate_id}") from None
        if not isinstance(aggregate, cls):
            raise NotFound(f"no {cls.__name__} with id {aggregate_id}")
        return aggregate

    def find_token(self, token: str) -> ApiToken | None:
        try:
            found = self.repository.get(token_id_for(token_hash(token)))
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, ApiToken) else None

    def verify_operator(self, terminal_id: UUID, operator_no: str, password: str, hasher: PasswordHasher) -> None:
        """Check an operator's password against the terminal's argon2 hash (slow on purpose)."""
        terminal = self.load(terminal_id, Terminal)
        try:
            stored = terminal.password_hash_of(operator_no)
        except NotFound:
            raise OperatorCredentialsInvalid("operator number or password is wrong") from None
        if not hasher.verify(stored, password):
            raise OperatorCredentialsInvalid("operator number or password is wrong")

    def find_staff_account(self, account_id: UUID) -> StaffAccount | None:
        try:
            found = self.repository.get(account_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, StaffAccount) else None

    def verify_staff(self, user_name: str, password: str, hasher: PasswordHasher) -> StaffAccount:
        """The account, if the password is right and the account may sign in (slow on purpose)."""
        try:
            account = self.find_staff_account(staff_account_id_for(check_user_name(user_name)))
        except InvalidInput:
            account = None
        # Hash even for an unknown name, so the answer's timing does not tell which names exist.
        stored = account.password_hash if account is not None else _UNKNOWN_STAFF_HASH
        if not hasher.verify(stored, password) or account is None:
            raise StaffCredentialsInvalid("user name or password is wrong")
        if account.disabled:
            raise StaffCredentialsInvalid(f"the account {account.user_name} is disabled; ask an admin")
        return account

    def history(self, aggregate_id: UUID, cls: type[LedgerAggregate]) -> tuple[list[dict[str, Any]], ChainCheck]:
        """Every stored event of one stream as canonical records, with the hash-chain verdict."""
        records = [event_record(e) for e in self.events.get(aggregate_id)]
        if not records or not records[0]["topic"].startswith(f"{cls.__module__}:{cls.__qualname__}."):
            raise NotFound(f"no {cls.__name__} with id {aggregate_id}")
        for record in records:
            record["hash"] = record_hash(record)
        return records, verify_records({k: v for k, v in r.items() if k != "hash"} for r in records)
