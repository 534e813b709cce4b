"""The counter end to end: agent + service + acquirer simulator + pcscd/vpcd + TCP printer.

Each scenario ends with the right events in the ledger (chain checked) and the right slips on paper,
nothing lost or duplicated.
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.escpos_decoder import decode_escpos
from adapters.virtual_card import VirtualCard
from terminal_agent.scripted_cashier import Customer
from tests.e2e.conftest import DECLINED_AMOUNT, Counter

UNIONPAY_MASKED = "622202******1234"


def sale(counter: Counter, customer: Customer, kind: str = "sale", original: dict | None = None):  # type: ignore[no-untyped-def]
    counter.cashier.next_customer(customer)
    return counter.agent.card.run(kind, original)


def slips(counter: Counter) -> list[str]:
    return [decode_escpos(job).text for job in counter.printer.jobs]


def test_a_chip_sale_with_the_pin_is_approved_and_prints_both_copies(counter: Counter) -> None:
    result = sale(counter, Customer(amount_minor=12_345, card=VirtualCard("unionpay"), pins=["1234"]))

    assert result.outcome == "approved", counter.cashier.codes()
    assert counter.types(result.transaction_id) == [
        "TransactionOpened", "AmountEntered", "AmountConfirmed", "CardPresented", "PinVerified",
        "AuthorizationRequested", "Authorized", "ReceiptPrinted", "ReceiptPrinted", "TransactionCompleted"]
    card = counter.events(result.transaction_id)[3]["data"]
    assert (card["entry_mode"], card["masked_pan"], card["brand"]) == ("chip", UNIONPAY_MASKED, "unionpay")
    assert len(card["cryptogram"]) == 16 and card["cvm_results"].endswith("02")
    merchant, customer = slips(counter)
    assert "商户存根" in merchant and "持卡人存根" in customer
    assert UNIONPAY_MASKED in merchant and "123.45" in merchant
    assert decode_escpos(counter.printer.jobs[0]).qr_codes == [result.transaction_id]


def test_a_tap_under_the_no_cvm_limit_needs_no_pin(counter: Counter) -> None:
    result = sale(counter, Customer(amount_minor=2_500, card=VirtualCard("visa"), presentations=["contactless"]))

    assert result.outcome == "approved"
    types = counter.types(result.transaction_id)
    assert "CvmNotRequired" in types and "PinVerified" not in types
    assert counter.events(result.transaction_id)[3]["data"]["entry_mode"] == "contactless"
    assert "免签" in slips(counter)[0]


def test_three_chip_failures_allow_a_fallback_swipe_signed_for(counter: Counter) -> None:
    card = VirtualCard("unionpay")
    result = sale(counter, Customer(amount_minor=45_000, card=card, presentations=[
        "chip_unreadable", "chip_unreadable", "chip_unreadable", "swipe"]))

    assert result.outcome == "approved", counter.cashier.codes()
    types = counter.types(result.transaction_id)
    assert types.count("CardReadFailed") == 3
    presented = next(e for e in counter.events(result.transaction_id) if e["type"] == "CardPresented")
    assert presented["data"]["entry_mode"] == "fallback_swipe"
    assert "PinBypassed" in types and "SignatureWaived" in types


def test_a_swipe_of_a_chip_card_is_refused_until_the_chip_failed_three_times(counter: Counter) -> None:
    result = sale(counter, Customer(amount_minor=1_000, card=VirtualCard("unionpay"),
                                    presentations=["swipe", "chip"], pins=["1234"]))

    assert result.outcome == "approved"
    assert "use_chip" in counter.cashier.codes()
    presented = next(e for e in counter.events(result.transaction_id) if e["type"] == "CardPresented")
    assert presented["data"]["entry_mode"] == "chip"


def test_a_declined_card_completes_without_a_slip(counter: Counter) -> None:
    result = sale(counter, Customer(amount_minor=DECLINED_AMOUNT, card=VirtualCard("unionpay"), pins=["1234"]))

    assert result.outcome == "declined"
    assert counter.types(result.transaction_id)[-2:] == ["Declined", "TransactionCompleted"]
    assert any(code == "declined" and said["response_code"] == "51" for code, said in counter.cashier.said)
    assert counter.printer.jobs == []


def test_a_wrong_pin_then_the_right_one(counter: Counter) -> None:
    result = sale(counter, Customer(amount_minor=8_800, card=VirtualCard("unionpay"), pins=["9999", "1234"]))

    assert result.outcome == "approved"
    events = counter.events(result.transaction_id)
    failed = [e["data"] for e in events if e["type"] == "PinFailed"]
    assert failed == [{"tries_left": 2}]
    assert [e["type"] for e in events].index("PinFailed") < [e["type"] for e in events].index("PinVerified")
    assert ("wrong_pin", {"tries": 2}) in counter.cashier.said


def test_a_card_pulled_mid_transaction_is_recorded_and_read_again(counter: Counter) -> None:
    result = sale(counter, Customer(amount_minor=3_300, card=VirtualCard("unionpay"), pins=["1234"],
                                    presentations=["chip_pulled", "chip"]))

    assert result.outcome == "approved", counter.cashier.codes()
    failed = [e["data"] for e in counter.events(result.transaction_id) if e["type"] == "CardReadFailed"]
    assert failed == [{"entry_mode": "chip", "reason": "the card was removed during the read"}]
    assert "card_removed" in counter.cashier.codes()


def test_a_printer_out_of_paper_records_the_failure_and_the_reprint_comes_out(counter: Counter) -> None:
    counter.printer.paper_out = True
    result = sale(counter, Customer(amount_minor=6_600, card=VirtualCard("unionpay"), pins=["1234"]))
    assert result.outcome == "approved" and result.printed is False
    assert "paper_out" in counter.cashier.codes()

    counter.printer.paper_out = False
    from terminal_agent.recorder import StreamRef

    sale_facts = counter.agent.counter.journal.sale(result.transaction_id)
    txn = StreamRef("transaction", result.transaction_id, sale_facts["version"])
    assert counter.agent.receipts.print_copy(txn, "merchant") is True

    events = counter.events(result.transaction_id)
    assert [(e["type"], e["data"]["copy"]) for e in events if e["type"] in ("PrintFailed", "ReceiptPrinted")] == [
        ("PrintFailed", "merchant"), ("PrintFailed", "customer"), ("ReceiptPrinted", "merchant")]
    assert len(counter.printer.jobs) == 1 and UNIONPAY_MASKED in slips(counter)[0]


def test_a_void_credits_the_whole_sale(counter: Counter) -> None:
    card = VirtualCard("unionpay")
    first = sale(counter, Customer(amount_minor=20_000, card=card, pins=["1234"]))
    original = counter.agent.counter.journal.sale(first.transaction_id)

    void = sale(counter, Customer(card=card, pins=["1234"]), "void", original)

    assert void.outcome == "approved", counter.cashier.codes()
    assert "TransactionVoided" in counter.types(first.transaction_id)
    assert counter.agent.counter.journal.sale(first.transaction_id)["voided"] is True
    assert "撤销" in slips(counter)[-1]


def test_a_partial_refund_leaves_the_rest_refundable(counter: Counter, until: Callable[..., bool]) -> None:
    card = VirtualCard("unionpay")
    first = sale(counter, Customer(amount_minor=50_000, card=card, pins=["1234"]))
    original = counter.agent.counter.journal.sale(first.transaction_id)
    settled = counter.agent.till.settle()  # a refund credits a sale of a settled batch (else: void it)
    assert settled["z_report"]["report"]["totals"][0]["gross_minor"] == 50_000
    assert counter.printer.wait_for_jobs(3, 5) and "Z 报表" in slips(counter)[2]

    refund = sale(counter, Customer(amount_minor=12_000, card=card, pins=["1234"]), "refund", original)

    assert refund.outcome == "approved", counter.cashier.said[-4:]
    state = counter.admin.get(f"/v1/transactions/{first.transaction_id}").json()
    assert state["refundable_minor"] == 38_000
    assert "退货" in slips(counter)[-1]
