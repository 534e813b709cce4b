"""The acquirer simulator's decisions: what the host answers to each request, journaled at once.

Decisions are written to the journal before the reply is sent (or delayed, or dropped): the bank
has charged the card even when the till never hears, which is what reversals exist for.

* Sale: approved (fresh 6-character auth code, unique 12-digit RRN) unless a rule declines it; a
  batch the host has already settled: 12. A (terminal, batch, STAN) seen before: 94, nothing journaled.
* Void: the sale by RRN (field 37) of the same terminal — unknown: 25; not approved any more, in
  another or a settled batch: 12; amount or currency not the sale's: 13. Approved: the sale is voided.
* Refund: the sale by RRN, any batch — unknown: 25; declined or reversed: 12; another currency or a
  zero amount: 13; more than remains of it (the amount less approved, unreversed refunds; nothing
  remains of a voided sale): 61.
* Reversal (terminal, batch, STAN): unknown: 25; approved: reversed, 00 (a reversed void revives its
  sale; a reversed refund frees its amount); already reversed or declined: 00, nothing changes; in a
  settled batch: 12, it is on the books already.
* Sign-on: opens the terminal's batch, unless the host settled it; then the next after the highest
  settled one.
* Settlement: the host's totals for the terminal, batch and currency (debits: approved sales not voided
  or reversed; credits: approved refunds not reversed), balanced or not against the terminal's; the
  batch is settled either way, and the day's settlement file is rewritten.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from adapters.acquirer_journal import Journal, JournalEntry
from adapters.acquirer_rules import Rule
from adapters.acquirer_settlement_file import write_settlement_file
from adapters.iso8583_messages import (
    decode_financial,
    decode_reversal,
    decode_settlement,
    decode_sign_on,
    encode_host_reply,
    encode_reversal_reply,
    encode_settlement_reply,
    encode_sign_on_reply,
)
from adapters.iso8583_spec import Message
from domain.acquirer import (
    APPROVED,
    FinancialRequest,
    HostReply,
    ReversalReply,
    SettlementReply,
    SignOnReply,
)

ACQUIRER_ID = "48020000"
ISSUER_ID = "01020000"
DUPLICATE = "94"
_AUTH_ALPHABET = string.digits + string.ascii_uppercase


def next_batch(batch_no: str) -> str:
    return f"{int(batch_no) % 999_999 + 1:06d}"


class SimulatedIssuer:
    """Decides each request as the acquirer host would, over the journal."""

    def __init__(self, journal: Journal, now: Callable[[], datetime], *, settlement_dir: Path | None = None,
                 fee_ppm: int = 0) -> None:
        self.journal = journal
        self.now = now
        self.settlement_dir = settlement_dir
        self.fee_ppm = fee_ppm

    def decide(self, kind: str, message: Message, rule: Rule) -> Message:
        """The reply to a request of this kind (from ``kind_of``); a malformed one is a ValueError."""
        decline = rule.response_code if rule.action == "decline" else None
        if kind in ("sale", "void", "refund"):
            return self._financial(message, decline)
        if kind == "reversal":
            return self._reversal(message, decline)
        if kind == "sign_on":
            return self._sign_on(message, decline)
        return self._settlement(message, decline)

    def _financial(self, message: Message, decline: str | None) -> Message:
        now = self.now()
        request = decode_financial(message, now)
        terminal = request.terminal
        if self.journal.entry(terminal.terminal_no, request.batch_no, request.stan) is not None:
            return encode_host_reply(message, HostReply(DUPLICATE), now)
        original = self.journal.by_rrn(request.original.rrn) if request.original else None
        code = decline or self._verdict(request, original)
        approved = code == APPROVED
        reply = HostReply(code, rrn=self.journal.next_rrn(),
                          auth_code="".join(secrets.choice(_AUTH_ALPHABET) for _ in range(6)) if approved else "",
                          acquirer_id=ACQUIRER_ID, issuer_id=ISSUER_ID)
        self.journal.record(kind=request.kind, terminal_no=terminal.terminal_no, merchant_no=terminal.merchant_no,
                            batch_no=request.batch_no, stan=request.stan, amount_minor=request.amount_minor,
                            currency=request.currency, masked_pan=request.card.masked, rrn=reply.rrn,
                            auth_code=reply.auth_code, response_code=code,
                            state="approved" if approved else "declined", at=now, original=original)
        if approved and request.kind == "void" and original is not None:
            self.journal.set_state(original.id, "voided", now)
        return encode_host_reply(message, reply, now)

    def _verdict(self, request: FinancialRequest, original: JournalEntry | None) -> str:
        if request.kind == "sale":
            settled = self.journal.settlement_date(request.terminal.terminal_no, request.batch_no)
            return "12" if settled else APPROVED
        if original is None or original.kind != "sale":
            return "25"
        if request.kind == "void":
            if original.terminal_no != request.terminal.terminal_no:
                return "25"
            if original.state != "approved" or original.batch_no != request.batch_no or original.settled:
                return "12"
            same = (original.amount_minor, original.currency) == (request.amount_minor, request.currency)
            return APPROVED if same else "13"
        if original.state in ("declined", "reversed"):
            return "12"
        if original.currency != request.currency or request.amount_minor <= 0:
            return "13"
        remaining = 0 if original.state == "voided" else \
            original.amount_minor - self.journal.refunded_minor(original.id)
        return APPROVED if request.amount_minor <= remaining else "61"

    def _reversal(self, message: Message, decline: str | None) -> Message:
        now = self.now()
        request = decode_reversal(message, now)
        if decline:
            return encode_reversal_reply(message, ReversalReply(decline), now)
        entry = self.journal.entry(request.terminal.terminal_no, request.batch_no, request.stan)
        if entry is None:
            code = "25"
        elif entry.settled and entry.state != "reversed":
            code = "12"
        else:
            code = APPROVED
            if entry.state in ("approved", "voided"):
                self.journal.set_state(entry.id, "reversed", now)
                sale = self.journal.by_rrn(entry.original_rrn) if entry.kind == "void" else None
                if sale is not None and sale.state == "voided":
                    self.journal.set_state(sale.id, "approved", now)
        return encode_reversal_reply(message, ReversalReply(code), now)

    def _sign_on(self, message: Message, decline: str | None) -> Message:
        now = self.now()
        request = decode_sign_on(message, now)
        terminal = request.terminal
        if decline:
            return encode_sign_on_reply(message, SignOnReply(decline, request.batch_no, now), now)
        batch_no = request.batch_no
        if self.journal.settlement_date(terminal.terminal_no, batch_no) is not None:
            batch_no = next_batch(self.journal.highest_settled(terminal.terminal_no) or batch_no)
        self.journal.open_batch(terminal.terminal_no, terminal.merchant_no, batch_no, now)
        return encode_sign_on_reply(message, SignOnReply(APPROVED, batch_no, now), now)

    def _settlement(self, message: Message, decline: str | None) -> Message:
        now = self.now()
        request = decode_settlement(message, now)
        if decline:
            return encode_settlement_reply(message, SettlementReply(decline, balanced=False), now)
        terminal = request.terminal
        totals = self.journal.totals(terminal.terminal_no, request.batch_no, request.currency)
        balanced = totals == request.totals
        day = self.journal.settle(terminal.terminal_no, terminal.merchant_no, request.batch_no, now.date(),
                                  balanced, now)
        if self.settlement_dir is not None:
            write_settlement_file(self.settlement_dir, day, self.journal.settled_on(day), self.fee_ppm)
        return encode_settlement_reply(
            message, SettlementReply(APPROVED, balanced, host_totals=totals, settlement_date=f"{day:%m%d}"), now)
