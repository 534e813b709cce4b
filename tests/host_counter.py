"""The counter script in host mode: the service authorizes through the acquirer host (a real
simulator over TCP), so the till never records outcomes itself."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.settings import Settings
from domain.card_data import luhn_valid
from tests.counter import SHANGHAI, Stream, Till

BINS = {"unionpay": ("622202", "A000000333010101", "UnionPay Debit"),
        "visa": ("476173", "A0000000031010", "VISA CREDIT")}


def test_pan(serial: int, brand: str = "unionpay") -> str:
    """A Luhn-valid 16-digit test number; only the simulator and the request ever see it whole."""
    body = f"{BINS[brand][0]}{serial:09d}"
    return next(body + str(d) for d in range(10) if luhn_valid(body + str(d)))


test_pan.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def chip_read(pan: str, brand: str = "unionpay") -> dict[str, Any]:
    """What the agent appends after a chip read: masked number and keyed hash, never the number."""
    _, aid, label = BINS[brand]
    return {"type": "CardPresented", "entry_mode": "chip", "masked_pan": f"{pan[:6]}{'*' * (len(pan) - 10)}{pan[-4:]}",
            "pan_token": hashlib.sha256(b"test-key" + pan.encode()).hexdigest(), "brand": brand, "aid": aid,
            "app_label": label, "tvr": "0000008000", "tsi": "E800", "atc": "001C",
            "cryptogram": "9F2A3B4C5D6E7F80", "cvm_results": "420300"}


@dataclass
class HostTill(Till):
    def sign_on(self, expect: int = 200) -> Any:
        response = self.client.post(f"/v1/terminals/{self.terminal_id}/sign-on", headers=self.headers,
                                    json={"operator_no": self.operator_no})
        assert response.status_code == expect, response.text
        if expect == 200:
            self.batch_no = response.json()["batch_no"]
        return response.json()

    def ready(self, amount_minor: int, pan: str, kind: str = "sale", original: Stream | None = None) -> Stream:
        """Opened, amount confirmed, card read, PIN verified: ready to authorize."""
        txn = self.begin(kind, "card", original)
        self.append(txn, {"type": "AmountEntered", "amount_minor": amount_minor, "currency": "CNY"})
        self.append(txn, {"type": "AmountConfirmed"})
        self.append(txn, chip_read(pan))
        self.append(txn, {"type": "PinVerified", "method": "online"})
        return txn

    def authorize_request(self, txn: Stream, pan: str, device_time: str | None = None) -> Any:
        body = {"expected_version": txn.version, "operator_no": self.operator_no,
                "device_time": device_time or datetime.now(SHANGHAI).isoformat(),
                "card": {"pan": pan, "expiry": "3012"}}
        return self.client.post(f"/v1/transactions/{txn.stream_id}/authorize", json=body, headers=self.headers)

    def authorize_card(self, txn: Stream, pan: str, expect: int = 200) -> dict[str, Any]:
        response = self.authorize_request(txn, pan)
        assert response.status_code == expect, response.text
        if expect == 200:
            txn.version = response.json()["version"]
        return response.json()  # type: ignore[no-any-return]

    def sale_through_host(self, amount_minor: int, pan: str, kind: str = "sale",
                          original: Stream | None = None) -> tuple[Stream, dict[str, Any]]:
        txn = self.ready(amount_minor, pan, kind, original)
        answer = self.authorize_card(txn, pan)
        if answer["outcome"] == "authorized":
            self.finish(txn)
        return txn, answer

    def settle_through_host(self, expect: int = 201) -> dict[str, Any]:
        body = {"expected_version": self.session.version, "operator_no": self.operator_no,
                "device_time": datetime.now(SHANGHAI).isoformat(), "batch_no": self.batch_no}
        response = self.client.post(f"/v1/till-sessions/{self.session.stream_id}/settle", json=body,
                                    headers=self.headers)
        assert response.status_code == expect, response.text
        if expect == 201:
            self.session.version = response.json()["version"]
            self.batch_no = response.json()["open_batch_no"]
        return response.json()  # type: ignore[no-any-return]

    def wait_for_outcome(self, txn: Stream, outcome: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """Poll the transaction (bounded) until the service resolved it to ``outcome``."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.state(txn)
            if state["outcome"] == outcome or time.monotonic() > deadline:
                txn.version = state["version"]
                return state
            time.sleep(0.05)


REPLY_TIMEOUT_S = 0.5  # how long the service waits for the host in these tests


def host_settings(settings: Settings, port: int) -> Settings:
    """``settings`` pointed at a host on ``port``, with short timeouts so in-doubt cases settle fast."""
    return settings.model_copy(update={
        "acquirer_url": f"127.0.0.1:{port}", "acquirer_timeout_s": REPLY_TIMEOUT_S, "acquirer_connect_timeout_s": 1.0,
        "reversal_scan_s": 0.3, "reversal_retry_max_s": 0.4, "embedded_projections": True})
