"""TillSession: one till's day — opened with its self-check and float, operators, cash count, close.

Only the terminal writes this stream, so the version it tracks is always right: what the service
must record on its own (transactions started, a till blocked by an unknown outcome) goes on the
Terminal aggregate instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from typing import Any
from uuid import UUID

from domain.aggregate import LedgerAggregate
from domain.errors import (
    InvalidInput,
    OperatorAlreadySignedIn,
    OperatorNotSignedIn,
    TillNotOpen,
    WrongBatch,
)
from domain.money import check_currency, check_minor
from domain.stamp import Stamp, check_operator_no

SELF_CHECK_FLAGS = ("service_reachable", "printer_online", "paper_present", "reader_present")


def check_self_check(self_check: Any) -> dict[str, Any]:
    if not isinstance(self_check, dict):
        raise InvalidInput("self_check must be an object", field="self_check")
    for flag in SELF_CHECK_FLAGS:
        if not isinstance(self_check.get(flag), bool):
            raise InvalidInput(f"self_check.{flag} must be true or false", field=f"self_check.{flag}")
    version = self_check.get("software_version")
    if not isinstance(version, str) or not 1 <= len(version) <= 64:
        raise InvalidInput("self_check.software_version must be 1-64 characters", field="self_check.software_version")
    unknown = set(self_check) - {*SELF_CHECK_FLAGS, "software_version"}
    if unknown:  # not echoed: a key could be anything, card data included
        raise InvalidInput(f"self_check has {len(unknown)} unknown key(s); allowed: "
                           f"{', '.join((*SELF_CHECK_FLAGS, 'software_version'))}", field="self_check")
    return self_check


class TillSession(LedgerAggregate):
    """The till of one terminal from opening (float counted, self-check) to closing (Z)."""

    class TillOpened(LedgerAggregate.Created):
        float_minor: int
        currency: str
        self_check: dict[str, Any]
        client_fields = ("float_minor", "currency", "self_check")

        def apply(self, till: TillSession) -> None:
            till.till_terminal_id = self.terminal_id
            till.float_minor = self.float_minor
            till.currency = self.currency
            till.self_check = dict(self.self_check)
            till.operator = None
            till.is_open = True
            till.counted_minor = None
            till.settled_batches = []

    class OperatorSignedIn(LedgerAggregate.Event):
        client_fields = ("operator_no",)

        def apply(self, till: TillSession) -> None:
            till.operator = self.operator_no

    class OperatorSignedOut(LedgerAggregate.Event):
        client_fields = ("operator_no",)

        def apply(self, till: TillSession) -> None:
            till.operator = None

    class CashCounted(LedgerAggregate.Event):
        counted_minor: int
        note: str
        client_fields = ("counted_minor", "note")

        def apply(self, till: TillSession) -> None:
            till.counted_minor = self.counted_minor

    class BatchSettled(LedgerAggregate.Event):
        batch_no: str
        client_fields = ("batch_no",)

        def apply(self, till: TillSession) -> None:
            till.settled_batches.append(self.batch_no)

    class TillClosed(LedgerAggregate.Event):
        client_fields = ()

        def apply(self, till: TillSession) -> None:
            till.is_open = False
            till.operator = None




    if TYPE_CHECKING:  # state attributes; not annotations at run time (they would become __init__ args)
        till_terminal_id: UUID
        float_minor: int
        currency: str
        self_check: dict[str, Any]
        operator: str | None
        is_open: bool
        counted_minor: int | None
        settled_batches: list[str]

    @classmethod
    def open(cls, till_session_id: UUID, stamp: Stamp, float_minor: int, currency: str,
             self_check: dict[str, Any]) -> TillSession:
        if check_minor(float_minor, "float_minor") < 0:
            raise InvalidInput("float_minor must not be negative", field="float_minor")
        check_currency(currency)
        return cls._start(cls.TillOpened, till_session_id, stamp, float_minor=float_minor, currency=currency,
                          self_check=check_self_check(self_check))

    def _require_open(self) -> None:
        if not self.is_open:
            raise TillNotOpen("this till session is closed")

    def sign_in(self, stamp: Stamp) -> None:
        self._require_open()
        check_operator_no(stamp.operator_no)
        if self.operator is not None:
            raise OperatorAlreadySignedIn(f"operator {self.operator} is signed in; sign out first")
        self._record(self.OperatorSignedIn, stamp)

    def sign_out(self, stamp: Stamp) -> None:
        self._require_open()
        if self.operator is None or self.operator != stamp.operator_no:
            raise OperatorNotSignedIn(f"operator {stamp.operator_no} is not signed in on this till")
        self._record(self.OperatorSignedOut, stamp)

    def require_operator(self, operator_no: str | None) -> None:
        self._require_open()
        if self.operator is None or self.operator != operator_no:
            raise OperatorNotSignedIn(f"operator {operator_no} is not signed in on this till")

    def count_cash(self, stamp: Stamp, counted_minor: int, note: str) -> None:
        self._require_open()
        if check_minor(counted_minor, "counted_minor") < 0:
            raise InvalidInput("counted_minor must not be negative", field="counted_minor")
        if not isinstance(note, str) or len(note) > 200:
            raise InvalidInput("note must be at most 200 characters", field="note")
        self._record(self.CashCounted, stamp, counted_minor=counted_minor, note=note)

    def settle_batch(self, stamp: Stamp, batch_no: str, open_batch: str) -> None:
        """Record the batch settled (结算); the terminal checks first that nothing is in doubt."""
        self._require_open()
        if batch_no != open_batch:
            raise WrongBatch(f"the terminal's open batch is {open_batch}, not {batch_no}")
        self._record(self.BatchSettled, stamp, batch_no=batch_no)

    def close(self, stamp: Stamp) -> None:
        self._require_open()
        self._record(self.TillClosed, stamp)
