"""A card sale through the API, end to end on each store."""

from __future__ import annotations

from tests.counter import Till


def test_a_chip_sale_with_pin_completes_and_its_history_verifies(till: Till) -> None:
    sale = till.card_sale(12_345)

    state = till.state(sale)
    assert (state["status"], state["outcome"], state["amount_minor"], state["cvm"]) == (
        "completed", "authorized", 12_345, "pin_online")
    history = till.history(sale)
    assert history["chain_valid"] is True
    assert [e["type"] for e in history["events"]] == [
        "TransactionOpened", "AmountEntered", "AmountConfirmed", "CardPresented", "PinVerified",
        "AuthorizationRequested", "Authorized", "ReceiptPrinted", "ReceiptPrinted", "TransactionCompleted"]
    assert history["events"][0]["prev_hash"] == "0" * 64
    assert all(e["prev_hash"] == prev["hash"] for prev, e in zip(history["events"], history["events"][1:]))
