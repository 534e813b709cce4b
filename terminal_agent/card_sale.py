"""A card transaction at the counter (sale, void or refund), following the seed's steps:

开启交易 open -> 输入交易金额 amount, customer confirms -> 刷卡 card (chip, tap, or swipe; a swipe of a
chip card only as fallback after three chip failures) -> 输入密码 cardholder verification (the card's
CVM list, the no-CVM limit) -> 确认交易 authorization through the service -> signature or waiver ->
打印凭条 both copies -> 结束交易 back to idle.

The PAN and track 2 live in this module's locals only while the card is read and the authorization
is sent; the events carry the masked PAN and the keyed token.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain.hardware import CardChannel, CardRemoved, CardUnreadable, HardwareError, UnsupportedCard
from terminal_agent.counter import Counter, State
from terminal_agent.emv import CardApplication, chip_fields, generate_ac, pan_token, read_application, select_cvm
from terminal_agent.magstripe import SwipeRead, parse_track2
from terminal_agent.receipt_desk import ReceiptDesk
from terminal_agent.recorder import StreamRef
from terminal_agent.service_client import ServiceRefused, ServiceUnreachable

CHIP_FAILURES_BEFORE_FALLBACK = 3
TSI = "6800"  # cardholder verification and terminal risk management performed
DECLINED_OFFLINE = "declined_offline"  # the first GENERATE AC answered an AAC


@dataclass
class SaleResult:
    """How a card transaction ended: approved | declined | reversed | unknown | cancelled | unavailable."""

    outcome: str
    transaction_id: str | None = None
    printed: bool = False
    card_to_authorize_ms: float | None = None  # card detected -> authorization request sent


class CardSale:
    def __init__(self, counter: Counter, desk: ReceiptDesk, *, random_bytes: Callable[[int], bytes] = os.urandom,
                 resolve_timeout_s: float = 90.0) -> None:
        self.c, self.desk, self._random, self._resolve_timeout_s = counter, desk, random_bytes, resolve_timeout_s

    def run(self, kind: str = "sale", original: dict[str, Any] | None = None) -> SaleResult:
        c = self.c
        till = c.require_till()
        if not c.online:
            c.cashier.show("network_down")
            return SaleResult("unavailable")
        if not c.card_ready:
            c.cashier.show("card_unavailable", reason="not signed on with the bank host")
            return SaleResult("unavailable")
        c.enter(State.AMOUNT)
        txn = StreamRef("transaction", str(uuid.uuid4()))
        opened: dict[str, Any] = {"type": "TransactionOpened", "kind": kind, "payment_method": "card",
                                  "till_session_id": till.stream_id, "batch_no": c.batch_no,
                                  "trace_no": c.journal.next_trace_no()}
        if original is not None:
            opened["original_transaction_id"] = original["transaction_id"]
        try:
            c.record(txn, opened, must_forward=True)
        except ServiceRefused as exc:
            c.cashier.show("refused", detail=exc.detail)
            return SaleResult("cancelled")
        except ServiceUnreachable:
            c.cashier.show("network_down")
            return self._cancel(txn, "the service became unreachable")
        c.remember(txn, kind=kind, payment_method="card", batch_no=c.batch_no, trace_no=opened["trace_no"],
                   status="open", currency=c.currency, original_transaction_id=opened.get("original_transaction_id"))
        try:
            return self._sale(txn, kind, original)
        except ServiceUnreachable:
            c.cashier.show("network_down")
            return self._cancel(txn, "the service became unreachable")
        finally:
            c.enter(State.IDLE)

    # ---- the steps -----------------------------------------------------------------------------------
    def _sale(self, txn: StreamRef, kind: str, original: dict[str, Any] | None) -> SaleResult:
        c = self.c
        amount = self._amount(txn, kind, original)
        if amount is None:
            return self._cancel(txn, "the cashier went back before the amount was entered")
        c.enter(State.CONFIRM)
        if not c.cashier.confirm("confirm_amount", amount=self.c.money(amount)):
            c.cashier.show("amount_not_confirmed")
            return self._cancel(txn, "the customer did not confirm the amount")
        c.record(txn, {"type": "AmountConfirmed"})
        read = self._card(txn, amount)
        if read is None:
            return self._cancel(txn, "no card was read")
        card, cvm, detected = read
        if cvm is None:
            return self._cancel(txn, "cardholder verification did not succeed")
        if cvm == DECLINED_OFFLINE:
            c.cashier.show("declined", response_code="Z1", reason="the card declined offline")
            return self._cancel(txn, "the card declined offline (AAC)")
        return self._authorize(txn, card, amount, cvm, detected)

    def _amount(self, txn: StreamRef, kind: str, original: dict[str, Any] | None) -> int | None:
        c = self.c
        if kind == "void" and original is not None:
            amount: int | None = int(original["amount_minor"])  # a void is always of the whole sale
        else:
            amount = None
        while True:
            if amount is None:
                amount = c.cashier.ask_amount("enter_amount")
                if amount is None:
                    return None
            problem = self._amount_problem(amount, kind, original)
            if problem is None:
                try:
                    c.record(txn, {"type": "AmountEntered", "amount_minor": amount, "currency": c.currency})
                    c.remember(txn, amount_minor=amount)
                    return amount
                except ServiceRefused as exc:
                    problem = exc.detail
            c.cashier.show("wrong_amount", reason=problem)
            if kind == "void":
                return None
            amount = None

    def _amount_problem(self, amount: int, kind: str, original: dict[str, Any] | None) -> str | None:
        problem = self.c.amount_problem(amount)
        if problem is not None:
            return problem
        if kind == "refund" and original is not None:
            left = int(original["amount_minor"]) - int(original.get("refunded_minor", 0))
            if amount > left:
                return f"only {self.c.money(left)} of the sale can still be refunded"
        return None

    def _card(self, txn: StreamRef, amount: int) -> tuple[Any, str | None, float] | None:
        """(card read, CVM outcome or None if it failed, time the card was detected), or None: no card."""
        c = self.c
        failures = 0
        fallback_allowed = bool(c.parameters.get("fallback_allowed", True))
        while True:
            c.enter(State.WAIT_CARD)
            if failures >= CHIP_FAILURES_BEFORE_FALLBACK and fallback_allowed:
                c.cashier.show("fallback_swipe", failures=failures)
            else:
                c.cashier.show("present_card")
            got = self._wait_for_card()
            if got is None:
                return None
            detected = time.monotonic()
            if isinstance(got, str):
                swipe = self._swipe(txn, got, failures, fallback_allowed)
                if swipe == "retry":
                    continue
                if swipe is None:
                    return None
                return swipe, self._swipe_cvm(txn, swipe, amount), detected
            entry_mode, channel = got
            try:
                chip = self._chip(txn, entry_mode, channel, amount)
            except UnsupportedCard as exc:
                c.cashier.show("unsupported_method", reason=exc.detail)
                return None
            except (CardRemoved, CardUnreadable) as exc:
                reason = "the card was removed during the read" if isinstance(exc, CardRemoved) else exc.detail
                c.record(txn, {"type": "CardReadFailed", "entry_mode": entry_mode, "reason": reason[:200]})
                failures += entry_mode == "chip"
                if isinstance(exc, CardRemoved):
                    c.cashier.show("card_removed")
                elif failures >= CHIP_FAILURES_BEFORE_FALLBACK and not fallback_allowed:
                    c.cashier.show("fallback_forbidden")
                    return None
                else:
                    c.cashier.show("card_unreadable", reason=reason)
                continue
            finally:
                channel.close()
            app, cvm = chip
            return app, cvm, detected

    def _wait_for_card(self) -> tuple[str, CardChannel] | str | None:
        c = self.c
        deadline = time.monotonic() + c.card_timeout_s
        slice_s = 0.05 if len(c.readers) > 1 else 0.2
        while time.monotonic() < deadline:
            for reader in c.readers:
                try:
                    channel = reader.wait_for_card(slice_s)
                except HardwareError as exc:
                    c.cashier.show("card_unreadable", reason=exc.detail)
                    time.sleep(slice_s)
                    continue
                if channel is not None:
                    return reader.entry_mode, channel
            line = c.cashier.poll()
            if line == "":
                return None
            if line:
                return line
        return None

    def _chip(self, txn: StreamRef, entry_mode: str, channel: CardChannel, amount: int) -> tuple[CardApplication, str | None]:
        c = self.c
        c.enter(State.READING)
        c.cashier.show("keep_card")
        when = c.now()
        unpredictable = self._random(4)
        app = read_application(channel, c.emv, amount_minor=amount, currency=c.currency, when=when,
                               unpredictable_number=unpredictable, entry_mode=entry_mode)  # type: ignore[arg-type]
        choice = select_cvm(app, amount_minor=amount, entry_mode=entry_mode,  # type: ignore[arg-type]
                            no_cvm_limit_minor=int(c.parameters.get("no_cvm_limit_minor", 0)), config=c.emv)
        pin_events, cvm = self._cardholder(channel, choice.method)
        cvm_results = choice.results_after(cvm is not None)
        tvr = "0000000000" if cvm is not None else "0000800000"  # byte 3 bit 8: cardholder verification failed
        cryptogram = generate_ac(channel, app, amount_minor=amount, currency=c.currency, when=when,
                                 unpredictable_number=unpredictable, cvm_results=cvm_results, tvr=tvr,
                                 entry_mode=entry_mode)  # type: ignore[arg-type]
        fields = chip_fields(app, cryptogram, tvr=tvr, tsi=TSI, cvm_results=cvm_results,
                             pan_token=pan_token(app.pan, c.pan_key))
        c.record(txn, {"type": "CardPresented", "entry_mode": entry_mode, **fields})
        c.remember(txn, masked_pan=fields["masked_pan"], brand=fields["brand"], entry_mode=entry_mode)
        for event in pin_events:
            c.record(txn, event)
        if cvm is not None and cryptogram.kind == "AAC":  # the card itself said no: never go online
            return app, DECLINED_OFFLINE
        return app, cvm

    def _cardholder(self, channel: CardChannel, method: str) -> tuple[list[dict[str, Any]], str | None]:
        """Run the CVM the card asked for; the events to record after CardPresented and the CVM, or None."""
        c = self.c
        if method == "no_cvm":
            return [{"type": "CvmNotRequired"}], "no_cvm"
        if method == "signature":
            return [{"type": "PinBypassed", "reason": "the card's CVM list asks for a signature"}], "signature"
        if method != "pin_offline":
            c.cashier.show("cvm_failed")
            return [], None
        c.enter(State.PIN)
        events: list[dict[str, Any]] = []
        while True:
            c.cashier.show("enter_pin")
            result = c.pin_pad.verify_offline(channel)
            if result.outcome == "verified":
                return [*events, {"type": "PinVerified", "method": "offline"}], "pin_offline"
            if result.outcome == "wrong" and result.tries_left:
                events.append({"type": "PinFailed", "tries_left": result.tries_left})
                c.cashier.show("wrong_pin", tries=result.tries_left)
                continue
            if result.outcome in ("wrong", "blocked"):
                c.cashier.show("pin_blocked")
                return [*events, {"type": "PinFailed", "tries_left": 0}], None
            c.cashier.show("pin_cancelled")
            return events, None

    def _swipe(self, txn: StreamRef, line: str, failures: int, fallback_allowed: bool) -> SwipeRead | str | None:
        c = self.c
        try:
            swipe = parse_track2(line)
        except CardUnreadable as exc:
            c.record(txn, {"type": "CardReadFailed", "entry_mode": "swipe", "reason": exc.detail[:200]})
            c.cashier.show("card_unreadable", reason=exc.detail)
            return "retry"
        if swipe.is_chip_card and failures < CHIP_FAILURES_BEFORE_FALLBACK:
            c.cashier.show("use_chip")
            return "retry"
        if swipe.is_chip_card and not fallback_allowed:
            c.cashier.show("fallback_forbidden")
            return None
        entry_mode = "fallback_swipe" if swipe.is_chip_card else "swipe"
        c.record(txn, {"type": "CardPresented", "entry_mode": entry_mode, "masked_pan": swipe.masked_pan,
                       "pan_token": pan_token(swipe.pan, c.pan_key), "brand": swipe.brand, "aid": "",
                       "app_label": "", "tvr": "", "tsi": "", "atc": "", "cryptogram": "", "cvm_results": ""})
        c.remember(txn, masked_pan=swipe.masked_pan, brand=swipe.brand, entry_mode=entry_mode)
        return swipe

    def _swipe_cvm(self, txn: StreamRef, swipe: SwipeRead, amount: int) -> str:
        # A magnetic stripe carries no CVM list: signature, unless the amount is under the no-CVM limit.
        if amount <= int(self.c.parameters.get("no_cvm_limit_minor", 0)):
            self.c.record(txn, {"type": "CvmNotRequired"})
            return "no_cvm"
        self.c.record(txn, {"type": "PinBypassed", "reason": "magnetic stripe: the cardholder signs"})
        return "signature"

    # ---- authorization and after ---------------------------------------------------------------------
    def _authorize(self, txn: StreamRef, card: Any, amount: int, cvm: str, detected: float) -> SaleResult:
        c = self.c
        c.enter(State.AUTHORIZING)
        c.cashier.show("authorizing")
        c.recorder.drain(txn)
        body = c.recorder.envelope(txn, {}, c.operator_no)
        del body["event"]
        body["card"] = {"pan": card.pan, "expiry": card.expiry}
        sent_after_ms = (time.monotonic() - detected) * 1000
        try:
            reply = c.client.authorize(txn.stream_id, body)
        except ServiceRefused as exc:
            c.cashier.show("refused", detail=exc.detail)
            return self._cancel(txn, f"authorization refused: {exc.code}")
        except ServiceUnreachable as exc:
            return self._after_failed_send(txn, exc, sent_after_ms)
        finally:
            body.clear()
        txn.version = int(reply["version"])
        return self._after_outcome(txn, reply, cvm, sent_after_ms)

    def _after_failed_send(self, txn: StreamRef, exc: ServiceUnreachable, sent_after_ms: float) -> SaleResult:
        c = self.c
        if exc.code == "acquirer_unavailable" or not exc.sent:
            # Nothing reached the bank (the service recorded AuthorizationNotSent, or never got the request).
            c.cashier.show("host_unavailable" if exc.code == "acquirer_unavailable" else "network_down")
            self._refresh_version(txn)
            result = self._cancel(txn, f"not authorized: {exc.code}")
            result.card_to_authorize_ms = sent_after_ms
            return result
        c.cashier.show("outcome_unknown")
        return self._resolve(txn, sent_after_ms)

    def _resolve(self, txn: StreamRef, sent_after_ms: float) -> SaleResult:
        """Wait (bounded) for the service to settle an unknown outcome: reversed, or found authorized."""
        c = self.c
        deadline = time.monotonic() + self._resolve_timeout_s
        while time.monotonic() < deadline:
            try:
                state = c.client.transaction(txn.stream_id)
            except ServiceUnreachable:
                state = None
            if state is not None and state["outcome"] in ("reversed", "declined", "authorized"):
                txn.version = int(state["version"])
                reply = {"outcome": state["outcome"], **state.get("authorization", {})}
                return self._after_outcome(txn, reply, state.get("cvm") or "", sent_after_ms)
            time.sleep(0.5)
        c.remember(txn, status="in_doubt", outcome="unknown")
        return SaleResult("unknown", txn.stream_id, card_to_authorize_ms=sent_after_ms)

    def _after_outcome(self, txn: StreamRef, reply: dict[str, Any], cvm: str, sent_after_ms: float) -> SaleResult:
        c = self.c
        outcome = reply["outcome"]
        c.remember(txn, outcome=outcome, auth_code=reply.get("auth_code"), rrn=reply.get("rrn"),
                   response_code=reply.get("response_code"))
        if outcome != "authorized":
            if outcome == "declined":
                c.cashier.show("declined", response_code=reply.get("response_code") or "--", reason=reply.get("reason") or "")
            else:
                c.cashier.show("reversed")
            self._complete(txn, outcome)
            return SaleResult("declined" if outcome == "declined" else "reversed", txn.stream_id,
                              card_to_authorize_ms=sent_after_ms)
        c.cashier.show("approved", auth_code=reply.get("auth_code"), rrn=reply.get("rrn"))
        if cvm == "signature":
            self._signature(txn)
        printed = self.desk.print_copies(txn)
        c.cashier.show("check_receipt")
        self._complete(txn, outcome)
        self._credit_original(txn)
        return SaleResult("approved", txn.stream_id, printed=printed, card_to_authorize_ms=sent_after_ms)

    def _signature(self, txn: StreamRef) -> None:
        c = self.c
        c.enter(State.SIGNATURE)
        c.cashier.show("sign_here")
        image = c.signature_pad.capture(txn.stream_id)
        if image is not None:
            c.record(txn, {"type": "SignatureCaptured", "image_sha256": hashlib.sha256(image).hexdigest(),
                           "image_ref": f"signatures/{txn.stream_id}.png"})
            return
        reason = c.cashier.waiver_reason() or "the customer declined to sign"
        c.cashier.show("signature_waived", reason=reason)
        c.record(txn, {"type": "SignatureWaived", "reason": reason[:200]})

    def _complete(self, txn: StreamRef, outcome: str) -> None:
        self.c.record(txn, {"type": "TransactionCompleted"})
        self.c.remember(txn, status="completed", outcome=outcome)
        self.c.cashier.show("done")

    def _credit_original(self, txn: StreamRef) -> None:
        sale = self.c.journal.sale(txn.stream_id) or {}
        original_id = sale.get("original_transaction_id")
        original = self.c.journal.sale(original_id) if original_id else None
        if original is None:
            return
        if sale["kind"] == "void":
            original["voided"] = True
        else:
            original["refunded_minor"] = int(original.get("refunded_minor", 0)) + int(sale["amount_minor"])
        self.c.journal.put_sale(original_id, original)

    def _cancel(self, txn: StreamRef, reason: str) -> SaleResult:
        c = self.c
        try:
            c.record(txn, {"type": "TransactionCancelled", "reason": reason[:200]})
        except ServiceRefused:
            pass  # e.g. already resolved by the service; the stream says what happened
        c.remember(txn, status="cancelled")
        c.cashier.show("cancelled")
        return SaleResult("cancelled", txn.stream_id)

    def _refresh_version(self, txn: StreamRef) -> None:
        try:
            txn.version = int(self.c.client.transaction(txn.stream_id)["version"])
        except (ServiceUnreachable, ServiceRefused):
            pass
