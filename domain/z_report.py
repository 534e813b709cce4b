"""ZReport: the immutable record of one terminal batch at its settlement (结算), numbered by batch.

Issued once per terminal and batch, when the projection that keeps the ledger view reaches the
batch's BatchSettled event: the totals are those of every transaction of the batch recorded before
it. The id derives from terminal and batch, so issuing it again (a rebuilt view, a retried page)
is recognisably the same report and is refused as AlreadyExists instead of being duplicated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.aggregate import LedgerAggregate
from domain.errors import InvalidInput
from domain.stamp import Stamp


def z_report_id_for(terminal_id: UUID, batch_no: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"till-ledger:z-report:{terminal_id}/{batch_no}")


class ZReport(LedgerAggregate):
    """Totals of one settled batch; nothing is ever recorded after its one event."""

    class Issued(LedgerAggregate.Created):
        z_terminal_id: UUID
        batch_no: str
        z_number: int
        business_day: str
        settled_at: str
        report: dict[str, Any]

        def apply(self, z: ZReport) -> None:
            z.z_terminal_id, z.batch_no, z.z_number = self.z_terminal_id, self.batch_no, self.z_number
            z.business_day, z.settled_at, z.report = self.business_day, self.settled_at, dict(self.report)

    if TYPE_CHECKING:
        z_terminal_id: UUID
        batch_no: str
        z_number: int
        business_day: str
        settled_at: str
        report: dict[str, Any]

    @classmethod
    def issue(cls, stamp: Stamp, terminal_id: UUID, batch_no: str, business_day: str, settled_at: str,
              report: dict[str, Any]) -> ZReport:
        if not (isinstance(batch_no, str) and len(batch_no) == 6 and batch_no.isdigit()):
            raise InvalidInput("batch_no must be 6 digits", field="batch_no")
        return cls._start(cls.Issued, z_report_id_for(terminal_id, batch_no), stamp, z_terminal_id=terminal_id,
                          batch_no=batch_no, z_number=int(batch_no), business_day=business_day,
                          settled_at=settled_at, report=report)
