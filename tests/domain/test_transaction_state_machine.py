"""Random counter sessions through the Ledger: whatever the terminal sends, in whatever order, every
refusal is a named LedgerError that records nothing, and the ledger's invariants hold after each step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, precondition, rule

from domain.errors import LedgerError
from domain.terminal import Terminal
from domain.till import TillSession
from domain.transaction import RESOLVED, Transaction
from tests.domain.world import Counter, card, position, receipt_hash

T = TypeVar("T")
AMOUNTS = st.sampled_from([1, 999, 5_000, 5_001, 10_000, 25_000])
LAST4 = st.sampled_from(["1234", "1234", "9999"])  # mostly the card of the sale, sometimes another


def event_fields(event_type: str, draw: Callable[[st.SearchStrategy[Any]], Any], txn: UUID) -> dict[str, Any]:
    """Plausible fields for any event type a terminal may send (validity is the ledger's business)."""
    copy = draw(st.sampled_from(["merchant", "customer"]))
    reprint_no = draw(st.integers(0, 2))
    return {
        "AmountEntered": lambda: {"amount_minor": draw(AMOUNTS), "currency": draw(st.sampled_from(["CNY", "USD"]))},
        "CardPresented": lambda: card(draw(LAST4), draw(st.sampled_from(["chip", "contactless",
                                                                         "fallback_swipe"]))),
        "CardReadFailed": lambda: {"entry_mode": draw(st.sampled_from(["chip", "swipe"])), "reason": "read error"},
        "PinVerified": lambda: {"method": "online"},
        "PinFailed": lambda: {"tries_left": draw(st.integers(0, 2))},
        "PinBypassed": lambda: {"reason": "no PIN"},
        "AuthorizationRequested": lambda: {"stan": "000777"},
        "Authorized": lambda: {"auth_code": "A1B2C3", "rrn": "123456789012", "response_code": "00"},
        "Declined": lambda: {"response_code": "51", "reason": "insufficient funds"},
        "OutcomeUnknown": lambda: {"reason": "timeout"},
        "Reversed": lambda: {"reason_code": "4021", "response_code": "00"},
        "SignatureCaptured": lambda: {"image_sha256": "ab" * 32, "image_ref": "sig.png"},
        "SignatureWaived": lambda: {"reason": "免签"},
        "ReceiptPrinted": lambda: {"copy": copy, "printer": "p", "reprint_no": reprint_no,
                                   "receipt_sha256": receipt_hash(txn, copy, reprint_no)},
        "PrintFailed": lambda: {"copy": copy, "printer": "p", "reprint_no": reprint_no, "reason": "paper out"},
        "TransactionCancelled": lambda: {"reason": "customer left"},
        "CashTendered": lambda: {"amount_minor": draw(AMOUNTS)},
        "ChangeGiven": lambda: {"amount_minor": draw(st.integers(0, 25_000))},
    }.get(event_type, dict)()


EVENT_TYPES = ["AmountEntered", "AmountConfirmed", "CardPresented", "CardReadFailed", "PinVerified", "PinFailed",
               "PinBypassed", "CvmNotRequired", "AuthorizationRequested", "Authorized", "Declined",
               "OutcomeUnknown", "Reversed", "SignatureCaptured", "SignatureWaived", "ReceiptPrinted",
               "PrintFailed", "TransactionCompleted", "TransactionCancelled", "CashTendered", "ChangeGiven"]


class CounterSession(RuleBasedStateMachine):
    """One terminal, one till, operator 01: sales, voids, refunds and settlements in random order."""

    txns = Bundle("txns")

    def __init__(self) -> None:
        super().__init__()
        self.counter = Counter.at_open_till(no_cvm_limit_minor=5_000)
        self.opened: list[UUID] = []
        self.sales: list[UUID] = []
        self.opened_since_settlement = 0
        self.refusals = 0
        self.verified: dict[UUID, int] = {}  # stream -> version whose chain was checked
        self.loaded_at: tuple[int, int] | None = None
        self.transactions: dict[UUID, Transaction] = {}

    def attempt(self, command: Callable[[], T]) -> T | None:
        """Run one terminal command: either it is recorded, or a named rule refuses it and nothing moves."""
        before = position(self.counter.ledger)
        try:
            return command()
        except LedgerError as error:
            assert type(error) is not LedgerError and error.code != LedgerError.code, repr(error)
            assert position(self.counter.ledger) == before, f"{error!r} left partial state behind"
            self.refusals += 1
            return None

    def opened_txn(self, txn: UUID | None, sale: bool = False) -> Any:
        if txn is None:
            return multiple()
        self.opened.append(txn)
        if sale:
            self.sales.append(txn)
        self.opened_since_settlement += 1
        return txn

    # ---- rules ---------------------------------------------------------------------------------
    @precondition(lambda self: len(self.opened) < 12)
    @rule(target=txns, method=st.sampled_from(["card", "cash"]),
          choices=st.lists(st.integers(0, 5), max_size=12))
    def ring_up(self, method: str, choices: list[int]) -> Any:
        """A sale carried some steps along (often to completion, so voids and refunds have something to credit)."""
        txn = self.attempt(lambda: self.counter.begin("sale", method))
        if txn is not None:
            self.advance_through(txn, choices)
        return self.opened_txn(txn, sale=True)

    @precondition(lambda self: len(self.opened) < 12 and self.sales)
    @rule(target=txns, kind=st.sampled_from(["void", "refund"]), pick=st.integers(0, 9),
          which=st.sampled_from(["eligible", "eligible", "eligible", "any"]),
          method=st.sampled_from(["as paid", "as paid", "card", "cash"]),
          choices=st.lists(st.integers(0, 5), max_size=12), hold=st.booleans())
    def begin_credit(self, kind: str, pick: int, which: str, method: str, choices: list[int], hold: bool) -> Any:
        """A void or refund of some sale (mostly one it could apply to), carried some steps along; held
        before it claims the sale's money, so that several credits can race for the same sale."""
        batch_no = self.counter.batch_no
        eligible = [s for s in self.sales if self.counter.txn(s).status == "completed"
                    and (self.counter.txn(s).batch_no == batch_no) == (kind == "void")]
        candidates = eligible if which == "eligible" and eligible else self.sales
        original = candidates[pick % len(candidates)]
        if method == "as paid":
            method = self.counter.txn(original).payment_method
        txn = self.attempt(lambda: self.counter.begin(kind, method, original))
        if txn is not None:
            self.advance_through(txn, choices, ("AuthorizationRequested", "TransactionCompleted") if hold else ())
        return self.opened_txn(txn)

    @rule(txn=txns, event_type=st.sampled_from(EVENT_TYPES), data=st.data())
    def send(self, txn: UUID, event_type: str, data: st.DataObject) -> None:
        fields = event_fields(event_type, data.draw, txn)
        self.attempt(lambda: self.counter.txn_event(txn, event_type, **fields))

    @rule(txn=txns, choices=st.lists(st.integers(0, 5), min_size=1, max_size=12))
    def advance(self, txn: UUID, choices: list[int]) -> None:
        self.advance_through(txn, choices)

    def advance_through(self, txn: UUID, choices: list[int], hold_before: tuple[str, ...] = ()) -> None:
        """The next steps of the counter procedure, each answer (host, customer, cashier) chosen at random."""
        for choice in choices:
            step = self.next_step(self.counter.txn(txn), choice)
            if step is None or step[0] in hold_before or self.attempt(lambda: self.counter.txn_event(txn, step[0], **step[1])) is None:
                return

    @precondition(lambda self: self.opened_since_settlement > 0)  # else most steps would be settlements
    @rule(wrong=st.booleans())
    def settle(self, wrong: bool) -> None:
        batch_no = self.counter.batch_no
        if self.attempt(lambda: self.counter.till_event("BatchSettled", batch_no="999999" if wrong else batch_no)):
            self.opened_since_settlement = 0

    def next_step(self, txn: Transaction, choice: int) -> tuple[str, dict[str, Any]] | None:
        if txn.status == "completed" and choice == 5:
            return self.receipt(txn, "customer")
        if txn.status != "open":
            return None
        original = self.counter.txn(txn.original_transaction_id) if txn.original_transaction_id else None
        if txn.amount_minor is None:
            if txn.kind == "void" and original is not None:
                amount = original.amount_minor or 1
            elif original is not None:
                amount = max(1, [original.refundable_minor, original.refundable_minor // 2, 1][choice % 3])
            else:
                amount = [999, 5_000, 5_001, 25_000][choice % 4]
            return "AmountEntered", {"amount_minor": amount, "currency": "CNY"}
        if not txn.amount_confirmed:
            return "AmountConfirmed", {}
        if txn.payment_method == "cash":
            if txn.kind == "sale" and txn.cash_tendered_minor is None:
                return "CashTendered", {"amount_minor": txn.amount_minor + [0, 1_000][choice % 2]}
            if txn.kind == "sale" and txn.cash_tendered_minor != txn.amount_minor and txn.change_given_minor is None:
                return "ChangeGiven", {"amount_minor": (txn.cash_tendered_minor or 0) - txn.amount_minor}
            if txn.kind == "sale" and txn.cash_tendered_minor is not None and choice == 5:
                return self.receipt(txn, "merchant")
            return "TransactionCompleted", {}
        if txn.card is None:
            return "CardPresented", card()
        if txn.cvm is None:
            return [("PinVerified", {"method": "online"}), ("PinBypassed", {"reason": "no PIN"}),
                    ("CvmNotRequired", {})][choice % 3]
        answers = {
            None: [("AuthorizationRequested", {"stan": "000888"})],
            "pending": [("Authorized", {"auth_code": "A1B2C3", "rrn": "123456789012", "response_code": "00"}),
                        ("Declined", {"response_code": "05", "reason": "do not honour"}),
                        ("OutcomeUnknown", {"reason": "timeout"})],
            "unknown": [("Authorized", {"auth_code": "A1B2C3", "rrn": "123456789012", "response_code": "00"}),
                        ("Declined", {"response_code": "05", "reason": "do not honour"}),
                        ("Reversed", {"reason_code": "4021", "response_code": "00"})],
        }
        if txn.outcome in answers:
            options = answers[txn.outcome]
            return options[choice % len(options)]
        if txn.outcome == "authorized" and txn.signature_required and txn.signature is None:
            return "SignatureWaived", {"reason": "免签"}
        if choice >= 4:
            return self.receipt(txn, ["merchant", "customer"][choice % 2])
        return "TransactionCompleted", {}

    @staticmethod
    def receipt(txn: Transaction, copy: str) -> tuple[str, dict[str, Any]]:
        reprint_no = txn.prints[copy]
        return "ReceiptPrinted", {"copy": copy, "printer": "p", "reprint_no": reprint_no,
                                  "receipt_sha256": receipt_hash(txn.id, copy, reprint_no)}

    # ---- invariants ----------------------------------------------------------------------------
    def loaded(self) -> dict[UUID, Transaction]:
        """Every transaction as the ledger has it now (reloaded only when the store moved on)."""
        now = (position(self.counter.ledger), len(self.opened))
        if self.loaded_at != now:
            self.transactions = {txn_id: self.counter.txn(txn_id) for txn_id in self.opened}
            self.loaded_at = now
        return self.transactions

    @invariant()
    def nothing_completes_without_an_outcome_or_the_cash(self) -> None:
        for txn in self.loaded().values():
            if txn.status != "completed":
                continue
            if txn.payment_method == "card":
                assert txn.outcome in RESOLVED, txn.outcome
                assert not (txn.outcome == "authorized" and txn.signature_required and txn.signature is None)
            elif txn.kind == "sale":
                assert txn.cash_tendered_minor is not None and txn.cash_tendered_minor >= (txn.amount_minor or 0)
            else:
                assert txn.amount_confirmed

    @invariant()
    def credits_never_exceed_the_sale_and_are_applied_only_for_credits_that_went_through(self) -> None:
        txns = self.loaded()
        for sale in txns.values():
            if sale.kind != "sale":
                continue
            assert sum(c["amount_minor"] for c in sale.credits.values()) <= (sale.amount_minor or 0)
            for credit_id, credit in sale.credits.items():
                if credit["state"] == "applied":
                    done = txns[UUID(credit_id)]
                    assert done.status == "completed" and done.outcome in ("authorized", None)
            if sale.voided_by is not None:  # a voided sale carries its void and nothing else
                assert list(sale.credits) == [str(sale.voided_by)]

    @invariant()
    def no_void_is_recorded_after_its_batch_was_settled(self) -> None:
        settled_at = {e.batch_no: e.timestamp for e in self.counter.ledger.events.get(self.counter.till_id)
                      if type(e).__name__ == "BatchSettled"}
        for txn_id, sale in self.loaded().items():
            if sale.voided_by is not None and sale.batch_no in settled_at:
                voided = next(e for e in self.counter.ledger.events.get(txn_id)
                              if type(e).__name__ == "TransactionVoided")
                assert voided.timestamp < settled_at[sale.batch_no]

    @invariant()
    def the_terminal_is_blocked_exactly_while_a_transaction_is_in_doubt(self) -> None:
        in_doubt = {txn_id for txn_id, txn in self.loaded().items() if txn.outcome == "unknown"}
        assert set(self.counter.terminal().blocked_by) == in_doubt

    @invariant()
    def every_stream_verifies(self) -> None:
        streams = [(txn_id, Transaction) for txn_id in self.opened]
        streams += [(self.counter.till_id, TillSession), (self.counter.terminal_id, Terminal)]
        for stream_id, cls in streams:
            version = self.counter.version(stream_id)
            if self.verified.get(stream_id) != version:  # a refused step changes no stream
                assert self.counter.ledger.history(stream_id, cls)[1].valid, (cls.__name__, stream_id)  # type: ignore[arg-type]
                self.verified[stream_id] = version


CounterSession.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_a_counter_session_keeps_every_rule_whatever_the_terminal_sends = CounterSession.TestCase
