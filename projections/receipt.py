"""Receipt (签购单): what one transaction's slip states, each copy as a document, and its text layout.

Pure: aggregates in, JSON-able documents and text out; no store, no printer, no clock.

    facts_for(txn, terminal, original)      -> ReceiptFacts   what the slip states, read from aggregate state
    receipt_document(facts, copy, reprint)  -> dict           one copy (商户存根 / 持卡人存根), labels in zh-CN and en
    render_text(document, columns, lang)    -> str            32 columns (58 mm paper) or 48 (80 mm)
    receipt_sha256(document)                -> str            the hash the terminal agent records in ReceiptPrinted

Never on a receipt (PCI DSS): a full PAN, the expiry date, track data or its chip equivalent. The card
number is the masked PAN exactly as the transaction stores it (first 6 + last 4), checked again here.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from domain.card_data import check_masked_pan
from domain.errors import InvalidInput, OutOfSequence
from domain.money import decimal_text
from domain.terminal import Terminal
from domain.transaction import RESOLVED, Transaction

Copy = Literal["merchant", "customer"]
Lang = Literal["zh", "en"]

SCHEMA = "till-ledger/receipt/1"  # part of every hashed document: a layout change is a new schema
COLUMNS = (32, 48)  # 58 mm and 80 mm paper, in single-width columns

_KINDS = {"sale": ("消费", "SALE"), "void": ("撤销", "VOID"), "refund": ("退货", "REFUND")}
_ENTRY_MODES = {"chip": ("插卡", "CHIP"), "contactless": ("挥卡", "CONTACTLESS"), "swipe": ("刷卡", "SWIPE"),
                "fallback_swipe": ("降级刷卡", "FALLBACK SWIPE")}
_BRANDS = {"unionpay": ("银联", "UNIONPAY"), "visa": ("VISA", "VISA"), "mastercard": ("万事达", "MASTERCARD"),
           "amex": ("美国运通", "AMEX"), "jcb": ("JCB", "JCB"), "other": ("其他", "OTHER")}
_COPY_TITLES = {"merchant": ("商户存根", "MERCHANT COPY"), "customer": ("持卡人存根", "CARDHOLDER COPY")}
_CHIP_ENTRY = ("chip", "contactless")
_CURRENCY_SYMBOLS = {"CNY": "RMB"}  # what Chinese slips print for yuan
_REFERENCE_LABEL = ("交易编号", "TXN ID")
_ACKNOWLEDGEMENT = ("本人确认以上交易，同意将其记入本卡账户",
                    "I ACKNOWLEDGE SATISFACTORY RECEIPT OF RELATIVE GOODS/SERVICES")


@dataclass(frozen=True, slots=True)
class ReceiptFacts:
    """Everything a 签购单 states about one transaction, and nothing a receipt must not show.

    ``amount_minor`` is the amount as entered (positive for voids and refunds too); the document
    shows credits negative. ``local_time`` is timezone-aware, in the terminal's timezone.
    """

    transaction_id: str
    kind: str  # sale | void | refund
    payment_method: str  # card | cash
    result: str  # approved | declined | reversed (a cash transaction is approved once tendered)
    merchant_name: str
    merchant_no: str
    terminal_no: str
    operator_no: str | None
    batch_no: str
    trace_no: str
    local_time: datetime
    amount_minor: int
    currency: str
    response_code: str | None = None
    acquirer: str | None = None
    issuer: str | None = None
    masked_pan: str | None = None
    card_brand: str | None = None
    entry_mode: str | None = None
    aid: str | None = None
    app_label: str | None = None
    auth_code: str | None = None
    rrn: str | None = None
    cvm: str | None = None  # pin_online | pin_offline | signature | no_cvm
    signature: str | None = None  # captured | waived
    original_trace_no: str | None = None
    original_rrn: str | None = None
    cash_tendered_minor: int | None = None
    change_given_minor: int | None = None

    def __post_init__(self) -> None:
        # Facts can be built by hand too: the masked form is enforced here, not only at the event.
        if self.masked_pan is not None:
            check_masked_pan(self.masked_pan)
        if not 1 <= len(self.merchant_name) <= 40:
            raise InvalidInput("merchant_name must be 1-40 characters", field="merchant_name")
        if self.local_time.utcoffset() is None:
            raise InvalidInput("local_time must carry its UTC offset", field="local_time")

    @property
    def is_credit(self) -> bool:
        return self.kind in ("void", "refund")


def facts_for(txn: Transaction, terminal: Terminal, original: Transaction | None = None, *,
              at: datetime | None = None) -> ReceiptFacts:
    """The receipt facts of ``txn`` at ``terminal`` (its own); ``original`` is the sale a void/refund credits.

    Date and time: the aggregate keeps no per-event times, only ``created_on`` (the server time of
    TransactionOpened) and ``modified_on`` (which moves with every ReceiptPrinted, so it would make a
    reprint differ). The receipt therefore shows ``created_on`` unless the caller passes ``at`` — e.g.
    the Authorized or TransactionCompleted event's timestamp, which a projection sees — always in the
    terminal's ``timezone`` parameter.

    Raises OutOfSequence when the transaction has no receipt yet (the same rule ReceiptPrinted follows:
    not while the outcome is pending or unknown, never once cancelled).
    """
    if txn.txn_terminal_id != terminal.id:
        raise ValueError("the terminal passed is not the transaction's terminal")
    if txn.original_transaction_id != (original.id if original is not None else None):
        raise ValueError("pass the original sale of a void or refund, and only then")
    result = _result(txn)
    if txn.amount_minor is None:
        raise OutOfSequence("a transaction without an amount has no receipt")
    when = at if at is not None else txn.created_on
    if when.utcoffset() is None:
        raise InvalidInput("the receipt time must carry its UTC offset", field="at")
    card = txn.card or {}
    chip = card.get("entry_mode") in _CHIP_ENTRY
    return ReceiptFacts(
        transaction_id=str(txn.id), kind=txn.kind, payment_method=txn.payment_method, result=result,
        response_code=txn.authorization.get("response_code") if result == "declined" else None,
        merchant_name=terminal.merchant_name, merchant_no=terminal.merchant_no, terminal_no=terminal.terminal_no,
        operator_no=txn.operator, batch_no=txn.batch_no, trace_no=txn.trace_no,
        local_time=when.astimezone(ZoneInfo(terminal.parameters["timezone"])),
        # The currency in force when the transaction opened; AmountEntered was checked against it.
        amount_minor=txn.amount_minor, currency=txn.limits["currency"],
        masked_pan=card.get("masked_pan"), card_brand=card.get("brand"), entry_mode=card.get("entry_mode"),
        aid=(card.get("aid") or None) if chip else None, app_label=(card.get("app_label") or None) if chip else None,
        auth_code=txn.authorization.get("auth_code"), rrn=txn.authorization.get("rrn"),
        cvm=txn.cvm, signature=txn.signature,
        original_trace_no=original.trace_no if original is not None else None,
        original_rrn=original.authorization.get("rrn") if original is not None else None,
        cash_tendered_minor=txn.cash_tendered_minor, change_given_minor=txn.change_given_minor,
    )


def _result(txn: Transaction) -> str:
    if txn.status == "cancelled":
        raise OutOfSequence("a cancelled transaction has no receipt")
    if txn.payment_method == "cash":
        if txn.cash_tendered_minor is None and txn.status != "completed":
            raise OutOfSequence("a cash receipt follows the cash tendered")
        return "approved"
    if txn.outcome not in RESOLVED:
        raise OutOfSequence("receipts print only after an outcome; never while it is pending or unknown")
    return "approved" if txn.outcome == "authorized" else str(txn.outcome)


def format_amount(minor: int, currency: str, *, credit: bool = False) -> str:
    """``12345, "CNY"`` -> ``"RMB 123.45"``; a credit (void, refund) is shown negative: ``"RMB -123.45"``."""
    value = -abs(minor) if credit else minor
    return f"{_CURRENCY_SYMBOLS.get(currency, currency)} {decimal_text(value, currency)}"


def _text(zh: str, en: str | None = None) -> dict[str, str]:
    return {"zh": zh, "en": zh if en is None else en}


def _line(group: str, key: str, label: tuple[str, str], value: dict[str, str]) -> dict[str, Any]:
    return {"group": group, "key": key, "label": _text(*label), "value": value}


def _lines(f: ReceiptFacts) -> list[dict[str, Any]]:
    card = f.payment_method == "card"
    entries: list[tuple[str, str, tuple[str, str], dict[str, str] | None]] = [
        ("merchant", "merchant_name", ("商户名称", "MERCHANT NAME"), _text(f.merchant_name)),
        ("merchant", "merchant_no", ("商户编号", "MERCHANT NO"), _text(f.merchant_no)),
        ("merchant", "terminal_no", ("终端编号", "TERMINAL NO"), _text(f.terminal_no)),
        ("merchant", "operator_no", ("操作员号", "OPERATOR NO"), _maybe(f.operator_no)),
        ("card", "acquirer", ("收单行", "ACQUIRER"), _maybe(f.acquirer)),
        ("card", "issuer", ("发卡行", "ISSUER"), _maybe(f.issuer)),
        ("card", "card_no", ("卡号", "CARD NO"), _maybe(f.masked_pan)),
        ("card", "card_brand", ("卡组织", "CARD BRAND"), _named(_BRANDS, f.card_brand)),
        ("card", "entry_mode", ("输入方式", "ENTRY MODE"), _named(_ENTRY_MODES, f.entry_mode)),
        ("transaction", "txn_type", ("交易类型", "TRANS TYPE"), _named(_KINDS, f.kind)),
        ("transaction", "payment", ("付款方式", "PAYMENT"), None if card else _text("现金", "CASH")),
        ("transaction", "batch_no", ("批次号", "BATCH NO"), _text(f.batch_no)),
        ("transaction", "trace_no", ("凭证号", "VOUCHER NO"), _text(f.trace_no)),
        ("transaction", "auth_code", ("授权码", "AUTH NO"), _maybe(f.auth_code)),
        ("transaction", "rrn", ("参考号", "REFER NO"), _maybe(f.rrn)),
        ("transaction", "date_time", ("日期/时间", "DATE/TIME"), _text(f.local_time.strftime("%Y/%m/%d %H:%M:%S"))),
        ("transaction", "original_trace_no", ("原凭证号", "ORIG VOUCHER NO"), _maybe(f.original_trace_no)),
        ("transaction", "original_rrn", ("原参考号", "ORIG REFER NO"), _maybe(f.original_rrn)),
        ("amount", "amount", ("金额", "AMOUNT"), _text(format_amount(f.amount_minor, f.currency, credit=f.is_credit))),
        ("amount", "cash_tendered", ("实收", "TENDERED"), _money(f.cash_tendered_minor, f.currency)),
        ("amount", "change", ("找零", "CHANGE"), _money(f.change_given_minor, f.currency)),
        ("amount", "result", ("交易结果", "RESULT"), _result_text(f)),
        ("chip", "aid", ("应用标识", "AID"), _maybe(f.aid)),
        ("chip", "app_label", ("应用标签", "APP LABEL"), _maybe(f.app_label)),
    ]
    return [_line(group, key, label, value) for group, key, label, value in entries if value is not None]


def _maybe(value: str | None) -> dict[str, str] | None:
    return None if value is None else _text(value)


def _named(names: dict[str, tuple[str, str]], value: str | None) -> dict[str, str] | None:
    if value is None:
        return None
    return _text(*names.get(value, (value.upper(), value.upper())))


def _money(minor: int | None, currency: str) -> dict[str, str] | None:
    return None if minor is None else _text(format_amount(minor, currency))


def _result_text(f: ReceiptFacts) -> dict[str, str] | None:
    # An approved slip carries no result line (as on Chinese slips); any other must not pass for one.
    if f.result == "declined":
        code = f" ({f.response_code})" if f.response_code else ""
        return _text(f"交易失败{code}", f"DECLINED{code}")
    if f.result == "reversed":
        return _text("已冲正", "REVERSED")
    return None


def _signature(f: ReceiptFacts, copy: str) -> dict[str, Any] | None:
    if f.payment_method != "card" or f.result != "approved" or f.cvm is None:
        return None
    if f.cvm.startswith("pin_"):
        return {"cvm": f.cvm, "text": _text("密码验证", "PIN VERIFIED"), "sign_here": False, "acknowledgement": None}
    if f.cvm == "no_cvm" or f.signature == "waived":
        return {"cvm": f.cvm, "text": _text("免签", "NO SIGNATURE REQUIRED"), "sign_here": False,
                "acknowledgement": None}
    # The cardholder signs the merchant's copy; the customer's copy shows whose signature it asks for.
    return {"cvm": f.cvm, "text": _text("持卡人签名", "CARDHOLDER SIGNATURE"), "sign_here": copy == "merchant",
            "acknowledgement": None if f.is_credit else _text(*_ACKNOWLEDGEMENT)}


def receipt_document(facts: ReceiptFacts, copy: Copy, reprint_no: int = 0) -> dict[str, Any]:
    """One copy of the receipt as a JSON-able document, a function of its arguments only.

    Keys: ``schema``, ``reference`` (the transaction id, for the QR code), ``copy``, ``title``,
    ``copy_title``, ``lines`` (ordered; each with ``group``, ``key``, ``label`` and ``value`` in zh and
    en), ``signature`` (None on cash, declined and reversed slips) and, only for reprint_no > 0,
    ``reprint``. A reprint's document differs from the original's in that key alone.
    """
    if copy not in _COPY_TITLES:
        raise ValueError("copy must be 'merchant' or 'customer'")
    if isinstance(reprint_no, bool) or not isinstance(reprint_no, int) or reprint_no < 0:
        raise ValueError("reprint_no must be a non-negative integer")
    card = facts.payment_method == "card"
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "reference": facts.transaction_id,
        "copy": copy,
        "title": _text("POS签购单", "POS SALES SLIP") if card else _text("收款凭证", "CASH RECEIPT"),
        "copy_title": _text(*_COPY_TITLES[copy]),
        "lines": _lines(facts),
        "signature": _signature(facts, copy),
    }
    if reprint_no > 0:
        document["reprint"] = {"number": reprint_no, **_text("重印", "REPRINT")}
    return document


def canonical_json(document: dict[str, Any]) -> bytes:
    """The document's one byte form: sorted keys, no spaces, UTF-8 without escapes."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def receipt_sha256(document: dict[str, Any]) -> str:
    """SHA-256 (hex) of ``canonical_json(document)``.

    This is the value the terminal agent records in ``ReceiptPrinted.receipt_sha256`` for the copy it
    printed, so a dispute can show which document was on paper. It covers the document, not the text
    layout: the same receipt on 58 mm and 80 mm paper has one hash.
    """
    return hashlib.sha256(canonical_json(document)).hexdigest()


# ---- text layout ----------------------------------------------------------------------------------

def char_width(ch: str) -> int:
    """Display columns of one character: 2 for East Asian wide/full-width, 0 for combining marks, else 1."""
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Display columns of ``text`` on a receipt printer (never ``len()``: 商户 takes four)."""
    return sum(char_width(ch) for ch in text)


def _printable(text: str) -> str:
    # A tab or a line break inside a value would break the column grid; other control, format or
    # unassigned characters have no reliable width on a printer.
    return "".join(_printable_char(ch) for ch in text)


def _printable_char(ch: str) -> str:
    category = unicodedata.category(ch)
    if category in ("Cc", "Zl", "Zp"):
        return " "
    return "?" if category[0] == "C" else ch


def _wrap(text: str, columns: int) -> list[str]:
    """Split into pieces of at most ``columns``, between characters (a wide one is never cut), at a space
    when the piece has one."""
    pieces: list[str] = []
    current, used = "", 0
    for ch in text:
        width = char_width(ch)
        if used + width > columns:
            head, space, tail = current.rpartition(" ")
            if space and head.strip():
                pieces.append(head)
                current = tail
            else:
                pieces.append(current)
                current = ""
            used = display_width(current)
        current += ch
        used += width
    pieces.append(current)
    return [piece.strip() for piece in pieces if piece.strip()] or [""]


def _left(text: str, columns: int) -> str:
    return text + " " * (columns - display_width(text))


def _right(text: str, columns: int) -> str:
    return " " * (columns - display_width(text)) + text


def _centre(text: str, columns: int) -> list[str]:
    lines = []
    for piece in _wrap(_printable(text), columns):
        margin = columns - display_width(piece)
        lines.append(" " * (margin // 2) + piece + " " * (margin - margin // 2))
    return lines


def _labelled(label: str, value: str, columns: int) -> list[str]:
    """Label left and value right on one line when both fit; else the value right-aligned below."""
    label, value = _printable(label) + ":", _printable(value)
    gap = columns - display_width(label) - display_width(value)
    if gap >= 1:
        return [label + " " * gap + value]
    return ([_left(piece, columns) for piece in _wrap(label, columns)]
            + [_right(piece, columns) for piece in _wrap(value, columns)])


def render_text(document: dict[str, Any], columns: int = 32, lang: Lang = "zh") -> str:
    """The document as plain text: every line exactly ``columns`` display columns wide, ending in "\\n".

    ``columns`` is 32 (58 mm paper) or 48 (80 mm); anything else is a ValueError, as is a ``lang``
    other than "zh" or "en".
    """
    if columns not in COLUMNS:
        raise ValueError(f"columns must be one of {COLUMNS} (58 mm or 80 mm paper), not {columns!r}")
    if lang not in ("zh", "en"):
        raise ValueError(f"lang must be 'zh' or 'en', not {lang!r}")
    rule = "-" * columns
    out = _centre(document["title"][lang], columns) + _centre(document["copy_title"][lang], columns)
    reprint = document.get("reprint")
    if reprint is not None:
        out += _centre(f"*** {reprint[lang]} {reprint['number']} ***", columns)
    group = None
    for line in document["lines"]:
        if line["group"] != group:
            out.append(rule)
            group = line["group"]
        out += _labelled(line["label"][lang], line["value"][lang], columns)
    out.append(rule)
    signature = document["signature"]
    if signature is not None:
        if signature["sign_here"]:
            out += [_left(_printable(signature["text"][lang]) + ":", columns), " " * columns, " " * columns,
                    "_" * columns]
        else:
            out += _centre(signature["text"][lang], columns)
        if signature["acknowledgement"] is not None:
            out += [_left(piece, columns) for piece in _wrap(_printable(signature["acknowledgement"][lang]), columns)]
        out.append(rule)
    out += _labelled(_REFERENCE_LABEL[0 if lang == "zh" else 1], document["reference"], columns)
    return "\n".join(out) + "\n"
