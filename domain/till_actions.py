"""What each till-session event a terminal appends does (and its effect on the terminal)."""

from __future__ import annotations

from collections.abc import Mapping

from domain.append import AppendRequest, Handler, creates_stream
from domain.errors import Forbidden, OperatorCredentialsInvalid, OutOfSequence
from domain.ports import UnitOfWork
from domain.terminal import Terminal
from domain.till import TillSession

# Set by the service after checking the operator's password outside the writer (argon2 is slow);
# the password itself never reaches an event.
PASSWORD_VERIFIED = "_password_verified"


def _terminal(uow: UnitOfWork, request: AppendRequest) -> Terminal:
    if request.stamp.terminal_id is None:
        raise Forbidden("only a terminal appends till events")
    return uow.get(request.stamp.terminal_id, Terminal)


@creates_stream
def _opened(uow: UnitOfWork, till: TillSession | None, r: AppendRequest) -> TillSession:
    if till is not None:
        raise OutOfSequence("the till session is already open")
    terminal = _terminal(uow, r)
    till = TillSession.open(r.stream_id, r.stamp, r.fields.get("float_minor"),  # type: ignore[arg-type]
                            r.fields.get("currency"), r.fields.get("self_check"))  # type: ignore[arg-type]
    terminal.assign_till(r.stamp, r.stream_id)
    uow.add(till)
    return till


def _signed_in(uow: UnitOfWork, till: TillSession, r: AppendRequest) -> TillSession:
    if r.fields.get(PASSWORD_VERIFIED) is not True:
        raise OperatorCredentialsInvalid("operator number or password is wrong")
    till.sign_in(r.stamp)
    return till


def _signed_out(uow: UnitOfWork, till: TillSession, r: AppendRequest) -> TillSession:
    till.sign_out(r.stamp)
    return till


def _cash_counted(uow: UnitOfWork, till: TillSession, r: AppendRequest) -> TillSession:
    till.count_cash(r.stamp, r.fields.get("counted_minor"), r.fields.get("note", ""))  # type: ignore[arg-type]
    return till


def _batch_settled(uow: UnitOfWork, till: TillSession, r: AppendRequest) -> TillSession:
    terminal = _terminal(uow, r)
    terminal.require_unblocked("settle the batch")
    till.settle_batch(r.stamp, r.fields.get("batch_no"), terminal.batch_label)  # type: ignore[arg-type]
    terminal.close_batch(r.stamp)
    return till


def _closed(uow: UnitOfWork, till: TillSession, r: AppendRequest) -> TillSession:
    terminal = _terminal(uow, r)
    terminal.require_unblocked("close the till")
    till.close(r.stamp)
    terminal.release_till(r.stamp, till.id)
    return till


TILL_HANDLERS: Mapping[str, Handler] = {
    "TillOpened": _opened,
    "OperatorSignedIn": _signed_in,
    "OperatorSignedOut": _signed_out,
    "CashCounted": _cash_counted,
    "BatchSettled": _batch_settled,
    "TillClosed": _closed,
}
