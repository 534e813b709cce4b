"""A cashier's script over the real HTTP API: register a terminal, open the till, ring up sales.

Tests read like the counter procedure: ``till.open()``, ``till.card_sale(12_345)``, ``till.void(sale)``.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from starlette.testclient import TestClient

SHANGHAI = timezone(timedelta(hours=8))
_terminal_numbers = itertools.count(10_000_001)


def card(brand: str = "unionpay", last4: str = "1234", entry_mode: str = "chip") -> dict[str, Any]:
    """What a chip read yields after the agent masked the PAN and keyed its hash (never the PAN)."""
    bins = {"unionpay": ("622202", "A000000333010101", "UnionPay Debit"),
            "visa": ("476173", "A0000000031010", "VISA CREDIT"),
            "mastercard": ("545454", "A0000000041010", "MASTERCARD")}
    bin6, aid, label = bins[brand]
    return {"type": "CardPresented", "entry_mode": entry_mode, "masked_pan": f"{bin6}******{last4}",
            "pan_token": hashlib.sha256(f"{brand}{last4}".encode()).hexdigest(), "brand": brand, "aid": aid,
            "app_label": label, "tvr": "0000008000", "tsi": "E800", "atc": "001C",
            "cryptogram": "9F2A3B4C5D6E7F80", "cvm_results": "420300"}


@dataclass
class Stream:
    stream_id: str
    version: int = 0


@dataclass
class Till:
    """One terminal with its token, till session and operator, driven through the API."""

    client: TestClient
    admin_token: str
    terminal_no: str = field(default_factory=lambda: str(next(_terminal_numbers)))
    operator_no: str = "01"
    password: str = "counter-01"
    terminal_id: str = ""
    token: str = ""
    session: Stream = field(default_factory=lambda: Stream(str(uuid.uuid4())))
    trace: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]
    batch_no: str = "000001"

    # ---- setup ------------------------------------------------------------------------------------
    def register(self, **parameters: Any) -> Till:
        admin = {"Authorization": f"Bearer {self.admin_token}"}
        body = {"merchant_name": "示范超市 Demo Market", "merchant_no": "898310048990001",
                "terminal_no": self.terminal_no, "fee_rates_ppm": {"unionpay": 3800, "visa": 5500}, **parameters}
        response = self.client.post("/v1/terminals", json=body, headers=admin)
        assert response.status_code == 201, response.text
        self.terminal_id = response.json()["terminal_id"]
        response = self.client.post(f"/v1/terminals/{self.terminal_id}/operators", headers=admin,
                                    json={"operator_no": self.operator_no, "name": "王芳", "password": self.password})
        assert response.status_code == 201, response.text
        response = self.client.post("/v1/tokens", headers=admin, json={"role": "terminal", "terminal_id": self.terminal_id})
        assert response.status_code == 201, response.text
        self.token = response.json()["token"]
        return self

    def open(self, float_minor: int = 50_000) -> Till:
        self.till_event({"type": "TillOpened", "float_minor": float_minor, "currency": "CNY",
                         "self_check": {"service_reachable": True, "printer_online": True, "paper_present": True,
                                        "reader_present": True, "software_version": "test-1"}}, operator=None)
        self.till_event({"type": "OperatorSignedIn", "operator_no": self.operator_no, "password": self.password})
        return self

    # ---- raw appends ------------------------------------------------------------------------------
    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def post(self, path: str, version: int, event: dict[str, Any], operator: str | None = "01",
             device_time: str | None = None) -> Any:
        body = {"expected_version": version, "operator_no": operator,
                "device_time": device_time or datetime.now(SHANGHAI).isoformat(), "event": event}
        return self.client.post(path, json=body, headers=self.headers)

    def till_event(self, event: dict[str, Any], operator: str | None = "01", expect: int = 201) -> Any:
        response = self.post(f"/v1/till-sessions/{self.session.stream_id}/events", self.session.version, event, operator)
        assert response.status_code == expect, response.text
        if response.status_code == 201:
            self.session.version += 1
        return response.json()

    def append(self, txn: Stream, event: dict[str, Any], expect: int = 201) -> Any:
        response = self.post(f"/v1/transactions/{txn.stream_id}/events", txn.version, event)
        assert response.status_code == expect, response.text
        if response.status_code == 201:
            txn.version += 1
        return response.json()

    def begin(self, kind: str = "sale", method: str = "card", original: Stream | None = None) -> Stream:
        txn = Stream(str(uuid.uuid4()))
        event = {"type": "TransactionOpened", "kind": kind, "payment_method": method,
                 "till_session_id": self.session.stream_id, "batch_no": self.batch_no,
                 "trace_no": f"{next(self.trace):06d}"}
        if original is not None:
            event["original_transaction_id"] = original.stream_id
        self.append(txn, event)
        return txn

    # ---- whole procedures -------------------------------------------------------------------------
    def card_sale(self, amount_minor: int, *, brand: str = "unionpay", last4: str = "1234",
                  kind: str = "sale", original: Stream | None = None) -> Stream:
        """Amount, customer confirms, chip + online PIN, approval, two receipts, completed."""
        txn = self.begin(kind, "card", original)
        self.authorize(txn, amount_minor, brand=brand, last4=last4)
        self.finish(txn)
        return txn

    def authorize(self, txn: Stream, amount_minor: int, *, brand: str = "unionpay", last4: str = "1234") -> None:
        self.append(txn, {"type": "AmountEntered", "amount_minor": amount_minor, "currency": "CNY"})
        self.append(txn, {"type": "AmountConfirmed"})
        self.append(txn, card(brand, last4))
        self.append(txn, {"type": "PinVerified", "method": "online"})
        self.append(txn, {"type": "AuthorizationRequested", "stan": f"{next(self.trace):06d}"})
        self.append(txn, {"type": "Authorized", "auth_code": "A1B2C3", "rrn": f"{uuid.uuid4().int % 10**12:012d}",
                          "response_code": "00"})

    def finish(self, txn: Stream) -> None:
        for copy in ("merchant", "customer"):
            self.append(txn, {"type": "ReceiptPrinted", "copy": copy, "printer": "escpos-test", "reprint_no": 0,
                              "receipt_sha256": hashlib.sha256(f"{txn.stream_id}{copy}".encode()).hexdigest()})
        self.append(txn, {"type": "TransactionCompleted"})

    def cash_sale(self, amount_minor: int, tendered_minor: int) -> Stream:
        txn = self.begin("sale", "cash")
        self.append(txn, {"type": "AmountEntered", "amount_minor": amount_minor, "currency": "CNY"})
        self.append(txn, {"type": "AmountConfirmed"})
        self.append(txn, {"type": "CashTendered", "amount_minor": tendered_minor})
        if tendered_minor > amount_minor:
            self.append(txn, {"type": "ChangeGiven", "amount_minor": tendered_minor - amount_minor})
        self.append(txn, {"type": "TransactionCompleted"})
        return txn

    def settle(self) -> None:
        self.till_event({"type": "BatchSettled", "batch_no": self.batch_no})
        self.batch_no = f"{int(self.batch_no) + 1:06d}"

    def state(self, txn: Stream) -> dict[str, Any]:
        response = self.client.get(f"/v1/transactions/{txn.stream_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def history(self, txn: Stream) -> dict[str, Any]:
        response = self.client.get(f"/v1/transactions/{txn.stream_id}/events", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def now_utc() -> datetime:
    return datetime.now(UTC)
