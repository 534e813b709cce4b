"""The receipt (签购单): every field the domain lists, two copies, voids/refunds/cash, exact column layout
at 58 mm and 80 mm, reprints that differ only in their mark, and never a full card number."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import unicodedata
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.card_data import looks_like_card_data, luhn_valid
from domain.errors import InvalidInput, OutOfSequence
from domain.transaction import Transaction
from projections.receipt import (
    Copy,
    Lang,
    ReceiptFacts,
    facts_for,
    format_amount,
    receipt_document,
    receipt_sha256,
    render_text,
)
from tests.domain.world import MERCHANT_NO, Counter, card

COPIES: tuple[Copy, ...] = ("merchant", "customer")
LANGS: tuple[Lang, ...] = ("zh", "en")
LAYOUTS = [(columns, lang) for columns in (32, 48) for lang in LANGS]


def width(text: str) -> int:
    """Printer columns, written independently of the module: wide/full-width 2, combining 0, else 1."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def assert_exact_columns(text: str, columns: int) -> None:
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    assert lines, "a receipt has lines"
    for line in lines:
        assert width(line) == columns, f"{line!r} is {width(line)} columns, not {columns}"


def facts(counter: Counter, txn: UUID, **kwargs: Any) -> ReceiptFacts:
    loaded = counter.txn(txn)
    original = counter.txn(loaded.original_transaction_id) if loaded.original_transaction_id else None
    return facts_for(loaded, counter.terminal(), original, **kwargs)


def text_of(receipt: ReceiptFacts, copy: Copy = "customer", columns: int = 32, lang: Lang = "zh") -> str:
    return render_text(receipt_document(receipt, copy, 0), columns, lang)


def values(receipt: ReceiptFacts, copy: Copy = "customer") -> dict[str, str]:
    return {line["key"]: line["value"]["en"] for line in receipt_document(receipt, copy)["lines"]}


@pytest.fixture(scope="module")
def chip_sale() -> ReceiptFacts:
    """A chip sale of 123.45 CNY with online PIN, at 10:00 in Shanghai (02:00 UTC), both copies printed."""
    counter = Counter.at_open_till()
    return facts(counter, counter.card_sale(12_345))


# ---- what the slip states ------------------------------------------------------------------------

def test_a_chip_sale_receipt_states_every_field_the_domain_lists(chip_sale: ReceiptFacts) -> None:
    zh, en = text_of(chip_sale, lang="zh"), text_of(chip_sale, lang="en")
    rrn = chip_sale.rrn
    assert rrn is not None and len(rrn) == 12
    expected = {
        "merchant name": ("商户名称", "MERCHANT NAME", "示范超市 Demo Market"),
        "merchant number": ("商户编号", "MERCHANT NO", MERCHANT_NO),
        "terminal number": ("终端编号", "TERMINAL NO", "10000001"),
        "operator": ("操作员号", "OPERATOR NO", "01"),
        "card number, first 6 + last 4": ("卡号", "CARD NO", "622202******1234"),
        "card brand": ("卡组织", "CARD BRAND", "银联"),
        "entry mode": ("输入方式", "ENTRY MODE", "插卡"),
        "transaction type": ("交易类型", "TRANS TYPE", "消费"),
        "batch no": ("批次号", "BATCH NO", "000001"),
        "trace no": ("凭证号", "VOUCHER NO", chip_sale.trace_no),
        "auth code": ("授权码", "AUTH NO", "A1B2C3"),
        "reference no": ("参考号", "REFER NO", rrn),
        "date and time": ("日期/时间", "DATE/TIME", "2026/11/24 10:00:00"),
        "amount": ("金额", "AMOUNT", "RMB 123.45"),
        "AID": ("应用标识", "AID", "A000000333010101"),
        "application label": ("应用标签", "APP LABEL", "UnionPay Debit"),
        "CVM": ("密码验证", "PIN VERIFIED", "密码验证"),
    }
    for field, (label_zh, label_en, value) in expected.items():
        assert label_zh in zh and value in zh, field
        assert label_en in en, field
    assert "UNIONPAY" in en and "CHIP" in en and "SALE" in en
    assert "POS签购单" in zh and "POS SALES SLIP" in en


def test_acquirer_and_issuer_are_omitted_when_unknown_and_shown_when_known(chip_sale: ReceiptFacts) -> None:
    assert "ACQUIRER" not in text_of(chip_sale, lang="en") and "收单行" not in text_of(chip_sale)
    known = dataclasses.replace(chip_sale, acquirer="中国银联", issuer="工商银行")
    text = text_of(known)
    assert "收单行" in text and "中国银联" in text and "发卡行" in text and "工商银行" in text


def test_the_document_lists_its_lines_in_slip_order_with_zh_and_en_labels(chip_sale: ReceiptFacts) -> None:
    document = receipt_document(chip_sale, "merchant")
    assert [line["key"] for line in document["lines"]] == [
        "merchant_name", "merchant_no", "terminal_no", "operator_no", "card_no", "card_brand", "entry_mode",
        "txn_type", "batch_no", "trace_no", "auth_code", "rrn", "date_time", "amount", "aid", "app_label"]
    assert all(set(line["label"]) == set(line["value"]) == {"zh", "en"} for line in document["lines"])
    assert document["reference"] == chip_sale.transaction_id
    assert json.loads(json.dumps(document)) == document, "the document is JSON as it stands"


def test_the_two_copies_differ_only_in_their_copy_title(chip_sale: ReceiptFacts) -> None:
    merchant, customer = (receipt_document(chip_sale, copy) for copy in COPIES)
    assert merchant["copy_title"] == {"zh": "商户存根", "en": "MERCHANT COPY"}
    assert customer["copy_title"] == {"zh": "持卡人存根", "en": "CARDHOLDER COPY"}
    assert {k: v for k, v in merchant.items() if k not in ("copy", "copy_title")} == \
           {k: v for k, v in customer.items() if k not in ("copy", "copy_title")}
    assert "商户存根" in text_of(chip_sale, "merchant") and "CARDHOLDER COPY" in text_of(chip_sale, lang="en")


def test_the_receipt_time_is_the_transactions_time_in_the_terminals_timezone() -> None:
    counter = Counter.at_open_till(timezone="Europe/London")
    sale = counter.card_sale(1_000)
    assert values(facts(counter, sale))["date_time"] == "2026/11/24 02:00:00"


def test_the_caller_may_print_the_authorization_time_instead() -> None:
    counter = Counter.at_open_till()
    sale = counter.card_sale(1_000)
    authorized = next(e for e in counter.ledger.events.get(sale) if isinstance(e, Transaction.Authorized))
    receipt = facts(counter, sale, at=authorized.timestamp)
    assert receipt.local_time == authorized.timestamp
    assert str(receipt.local_time.tzinfo) == "Asia/Shanghai"


def test_printing_a_copy_does_not_change_what_the_receipt_says() -> None:
    counter = Counter.at_open_till()
    sale = counter.begin()
    counter.send_for_authorization(sale, 2_000)
    counter.approve(sale)
    before = facts(counter, sale)
    counter.print_receipts(sale)
    counter.txn_event(sale, "TransactionCompleted")
    counter.print_receipts(sale)  # reprints
    assert facts(counter, sale) == before


# ---- voids, refunds, cash, declines ---------------------------------------------------------------

def test_a_void_shows_its_type_the_original_trace_and_rrn_and_a_negative_amount() -> None:
    counter = Counter.at_open_till()
    sale = counter.card_sale(12_345)
    original = counter.txn(sale)
    void = facts(counter, counter.void(sale))
    shown = values(void)
    assert shown["txn_type"] == "VOID" and "撤销" in text_of(void)
    assert (shown["original_trace_no"], shown["original_rrn"]) == (original.trace_no, original.authorization["rrn"])
    assert shown["amount"] == "RMB -123.45"


def test_a_refund_shows_its_type_the_original_reference_and_a_negative_amount() -> None:
    counter = Counter.at_open_till()
    sale = counter.card_sale(12_345)
    counter.settle()
    refund = facts(counter, counter.refund(sale, 2_000))
    shown = values(refund)
    assert shown["txn_type"] == "REFUND" and "退货" in text_of(refund)
    assert shown["original_trace_no"] == counter.txn(sale).trace_no
    assert shown["original_rrn"] == counter.txn(sale).authorization["rrn"]
    assert shown["amount"] == "RMB -20.00"
    assert shown["batch_no"] == "000002", "a refund belongs to the batch it was made in"


def test_a_void_or_refund_needs_its_original_sale_to_state_the_reference() -> None:
    counter = Counter.at_open_till()
    sale = counter.card_sale(1_000)
    void = counter.void(sale)
    with pytest.raises(ValueError):
        facts_for(counter.txn(void), counter.terminal())
    with pytest.raises(ValueError):
        facts_for(counter.txn(sale), counter.terminal(), counter.txn(void))


def test_a_cash_sale_shows_cash_tendered_and_change_and_no_card_lines() -> None:
    counter = Counter.at_open_till()
    receipt = facts(counter, counter.cash_sale(1_250, 2_000))
    shown = values(receipt)
    assert (shown["payment"], shown["amount"], shown["cash_tendered"], shown["change"]) == \
           ("CASH", "RMB 12.50", "RMB 20.00", "RMB 7.50")
    assert not {"card_no", "card_brand", "entry_mode", "auth_code", "rrn", "aid", "app_label"} & set(shown)
    document = receipt_document(receipt, "customer")
    assert document["signature"] is None and document["title"]["zh"] == "收款凭证"
    zh = text_of(receipt)
    assert "实收" in zh and "找零" in zh and "现金" in zh


def test_a_declined_slip_says_so_and_asks_for_no_signature() -> None:
    counter = Counter.at_open_till()
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000, cvm="signature")
    counter.decline(sale)
    receipt = facts(counter, sale)
    assert values(receipt)["result"] == "DECLINED (51)"
    assert "auth_code" not in values(receipt)
    assert receipt_document(receipt, "merchant")["signature"] is None


@pytest.mark.parametrize("stage", ["pending", "unknown", "cancelled"])
def test_there_is_no_receipt_while_the_outcome_is_open_or_after_a_cancel(stage: str) -> None:
    counter = Counter.at_open_till()
    sale = counter.begin()
    if stage == "cancelled":
        counter.txn_event(sale, "TransactionCancelled", reason="customer left")
    else:
        counter.send_for_authorization(sale, 1_000)
    if stage == "unknown":
        counter.time_out(sale)
    with pytest.raises(OutOfSequence):
        facts(counter, sale)


# ---- cardholder verification ---------------------------------------------------------------------

@pytest.mark.parametrize(("cvm", "zh", "en"), [
    ("pin", "密码验证", "PIN VERIFIED"),
    ("no_cvm", "免签", "NO SIGNATURE REQUIRED"),
    ("signature", "持卡人签名", "CARDHOLDER SIGNATURE"),
])
def test_the_cvm_line_follows_the_cardholder_verification(cvm: str, zh: str, en: str) -> None:
    counter = Counter.at_open_till()
    receipt = facts(counter, counter.card_sale(1_000, cvm=cvm))
    assert zh in text_of(receipt, "merchant", lang="zh") and en in text_of(receipt, "merchant", lang="en")
    others = {"密码验证", "免签", "持卡人签名"} - {zh}
    assert not any(other in text_of(receipt, "merchant") for other in others)


def test_a_signature_sale_leaves_a_line_to_sign_on_the_merchant_copy_only() -> None:
    counter = Counter.at_open_till()
    receipt = facts(counter, counter.card_sale(1_000, cvm="signature"))
    merchant, customer = (receipt_document(receipt, copy)["signature"] for copy in COPIES)
    assert merchant["sign_here"] and not customer["sign_here"]
    assert "_" * 32 in text_of(receipt, "merchant") and "_" * 32 not in text_of(receipt, "customer")
    assert "本人确认以上交易" in text_of(receipt, "merchant")


def test_a_waived_signature_prints_as_no_signature_required() -> None:
    counter = Counter.at_open_till()
    sale = counter.begin()
    counter.send_for_authorization(sale, 1_000, cvm="signature")
    counter.approve(sale)
    counter.txn_event(sale, "SignatureWaived", reason="merchant waived for a regular customer")
    receipt = facts(counter, sale)
    assert "免签" in text_of(receipt, "merchant") and "持卡人签名" not in text_of(receipt, "merchant")


# ---- layout --------------------------------------------------------------------------------------

def every_kind_of_receipt() -> list[ReceiptFacts]:
    counter = Counter.at_open_till()
    signed = counter.card_sale(1_000, cvm="signature")
    sale = counter.card_sale(12_345)
    receipts = [facts(counter, signed), facts(counter, sale), facts(counter, counter.void(sale)),
                facts(counter, counter.cash_sale(1_250, 2_000)), facts(counter, counter.card_sale(99, cvm="no_cvm"))]
    return receipts + [dataclasses.replace(receipts[1], acquirer="中国银联股份有限公司上海分公司", issuer="ICBC")]


@pytest.mark.parametrize(("columns", "lang"), LAYOUTS)
def test_every_line_is_exactly_as_wide_as_the_paper(columns: int, lang: Lang) -> None:
    for receipt in every_kind_of_receipt():
        for copy in COPIES:
            for reprint_no in (0, 3):
                document = receipt_document(receipt, copy, reprint_no)
                assert_exact_columns(render_text(document, columns, lang), columns)


@pytest.mark.parametrize("columns", [0, 31, 33, 40, 42, 80])
def test_paper_other_than_58_or_80_mm_is_refused(chip_sale: ReceiptFacts, columns: int) -> None:
    with pytest.raises(ValueError):
        render_text(receipt_document(chip_sale, "merchant"), columns)


def test_a_language_other_than_zh_or_en_is_refused(chip_sale: ReceiptFacts) -> None:
    with pytest.raises(ValueError):
        render_text(receipt_document(chip_sale, "merchant"), 32, "fr")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [
    "A" + "商" * 39,                       # odd offset: a wide character meets the line end
    "超" * 40,
    "ＦＵＬＬ　ＷＩＤＴＨ　ＭＡＲＫＥＴ",   # full-width letters and the ideographic space
    "Cafe\u0301 Re\u0301sume\u0301 上海",  # combining acute accents take no column
    "x" * 40,
    "Tab\there, new\nline 店",          # control characters become spaces, not broken lines
])
@pytest.mark.parametrize(("columns", "lang"), LAYOUTS)
def test_long_and_wide_merchant_names_wrap_whole_characters_into_exact_columns(
        chip_sale: ReceiptFacts, name: str, columns: int, lang: Lang) -> None:
    text = text_of(dataclasses.replace(chip_sale, merchant_name=name), columns=columns, lang=lang)
    assert_exact_columns(text, columns)
    assert "".join(name.split()) in "".join(text.split()), "wrapping keeps every character, in order"


def test_a_value_too_long_for_its_line_goes_right_aligned_below_its_label(chip_sale: ReceiptFacts) -> None:
    lines = text_of(dataclasses.replace(chip_sale, merchant_name="超" * 20), columns=32).split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("商户名称:"))
    assert lines[at].rstrip() == "商户名称:"
    assert lines[at + 1] == "超" * 16
    assert lines[at + 2] == " " * 24 + "超" * 4


@given(st.text(st.one_of(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
                         st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                         st.characters(min_codepoint=0x3000, max_codepoint=0x303F)),
               min_size=1, max_size=40))
def test_any_merchant_name_of_cjk_and_ascii_fills_exactly_the_paper_width(chip_sale: ReceiptFacts, name: str) -> None:
    receipt = dataclasses.replace(chip_sale, merchant_name=name)
    for copy in COPIES:
        document = receipt_document(receipt, copy)
        for columns, lang in LAYOUTS:
            text = render_text(document, columns, lang)
            assert_exact_columns(text, columns)
            assert "".join(name.split()) in "".join(text.split())


# ---- reprints, determinism, the hash -------------------------------------------------------------

def test_a_reprint_differs_only_in_its_mark(chip_sale: ReceiptFacts) -> None:
    for copy in COPIES:
        first, again = receipt_document(chip_sale, copy), receipt_document(chip_sale, copy, 2)
        assert "reprint" not in first
        assert again.pop("reprint") == {"number": 2, "zh": "重印", "en": "REPRINT"}
        assert again == first
        for columns, lang in LAYOUTS:
            original = render_text(first, columns, lang).split("\n")
            reprint = render_text(receipt_document(chip_sale, copy, 2), columns, lang).split("\n")
            marks = [line for line in reprint if line not in original]
            assert len(marks) == 1 and ("重印 2" in marks[0] or "REPRINT 2" in marks[0])
            assert [line for line in reprint if line not in marks] == original


def test_the_same_transaction_gives_the_same_bytes_every_time() -> None:
    counter = Counter.at_open_till()
    sale = counter.card_sale(12_345, cvm="signature")
    first, second = facts(counter, sale), facts(counter, sale)  # two independent loads from the store
    for copy in COPIES:
        a, b = receipt_document(first, copy), receipt_document(second, copy)
        assert json.dumps(a, sort_keys=True).encode() == json.dumps(b, sort_keys=True).encode()
        assert receipt_sha256(a) == receipt_sha256(b)
        for columns, lang in LAYOUTS:
            assert render_text(a, columns, lang).encode() == render_text(b, columns, lang).encode()


def test_the_receipt_hash_is_sha256_of_the_canonical_json(chip_sale: ReceiptFacts) -> None:
    document = receipt_document(chip_sale, "customer")
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert receipt_sha256(document) == hashlib.sha256(canonical).hexdigest()
    assert len({receipt_sha256(receipt_document(chip_sale, copy, n)) for copy in COPIES for n in (0, 1)}) == 4


@pytest.mark.parametrize(("minor", "currency", "credit", "shown"), [
    (12_345, "CNY", False, "RMB 123.45"),
    (5, "CNY", False, "RMB 0.05"),
    (12_345, "CNY", True, "RMB -123.45"),
    (1_234, "USD", False, "USD 12.34"),
    (500, "JPY", True, "JPY -500"),
    (1, "KWD", False, "KWD 0.001"),
])
def test_amounts_are_integer_minor_units_shown_with_their_currency(
        minor: int, currency: str, credit: bool, shown: str) -> None:
    assert format_amount(minor, currency, credit=credit) == shown


# ---- card data -----------------------------------------------------------------------------------

PAN = "6222021234567890128"  # 19 digits, Luhn-valid: what the chip said, before the agent masked it


def test_the_full_card_number_never_appears_on_any_copy_or_in_any_document() -> None:
    assert luhn_valid(PAN)
    counter = Counter.at_open_till()
    # A fixed id whose hex groups all hold letters: a random UUID may contain a Luhn-valid digit run.
    sale = UUID("c0ffee00-beef-4bad-a11c-e0ddba11fade")
    counter.txn_event(sale, "TransactionOpened", kind="sale", payment_method="card", till_session_id=counter.till_id,
                      batch_no=counter.batch_no, trace_no="000777")
    counter.enter(sale, 8_800)
    counter.txn_event(sale, "CardPresented", **{**card(PAN[-4:]), "masked_pan": PAN[:6] + "*" * 9 + PAN[-4:]})
    counter.verify_cardholder(sale, "pin")
    counter.request_authorization(sale)
    counter.approve(sale)
    counter.finish(sale)
    receipt = facts(counter, sale)
    assert receipt.masked_pan == "622202*********0128"
    for copy in COPIES:
        for reprint_no in (0, 1):
            document = receipt_document(receipt, copy, reprint_no)
            outputs = [json.dumps(document, ensure_ascii=False)] + [
                render_text(document, columns, lang) for columns, lang in LAYOUTS]
            for output in outputs:
                assert PAN not in output and PAN[6:-4] not in output
                assert "622202*********0128" in output
                assert not looks_like_card_data(output), "no 13-19 digit Luhn-valid run, no track data"
                assert "有效期" not in output and "EXPIRY" not in output.upper()


def test_receipt_facts_refuse_anything_but_a_masked_card_number(chip_sale: ReceiptFacts) -> None:
    with pytest.raises(InvalidInput):
        dataclasses.replace(chip_sale, masked_pan=PAN)
    with pytest.raises(InvalidInput):
        dataclasses.replace(chip_sale, masked_pan=PAN[:10] + "****" + PAN[-4:] + "0")
