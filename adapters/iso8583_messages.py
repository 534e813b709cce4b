"""The port's requests and replies (domain.acquirer) as ISO 8583 messages of ``adapters.iso8583_spec``.

``encode_*`` builds the message dict a terminal (or the host, for ``encode_*_reply``) sends;
``decode_*`` reads one back. Fields 12/13 carry no year or zone, so decoding takes a ``reference``
moment whose year and zone they are read in. Anything that does not fit (unknown currency or entry
mode, a field of the wrong length, a forbidden EMV tag) is a ValueError before a byte is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from adapters.emv_tlv import decode_tlv, encode_tlv
from adapters.iso8583_spec import HEADER, TPDU_REPLY, TPDU_REQUEST, Message, MessageError
from domain.acquirer import (
    BatchTotals,
    CardData,
    FinancialRequest,
    HostReply,
    OriginalRef,
    ReversalReply,
    ReversalRequest,
    SettlementReply,
    SettlementRequest,
    SignOnReply,
    SignOnRequest,
    TerminalRef,
)

REVERSAL_NO_REPLY = "98"  # field 39 of a 0400: CUP's "reversed because no reply came"
CURRENCY_NUMERIC = {"CNY": "156", "USD": "840", "EUR": "978", "HKD": "344", "JPY": "392", "GBP": "826"}
CURRENCY_ALPHA = {numeric: alpha for alpha, numeric in CURRENCY_NUMERIC.items()}
ENTRY_MODES = {"chip": "051", "contactless": "071", "swipe": "021", "fallback_swipe": "801"}
ENTRY_MODE_NAMES = {code: name for name, code in ENTRY_MODES.items()}
PROCESSING_CODES = {"sale": "000000", "void": "200000", "refund": "200000"}
REQUEST_MTI = {"sale": "0200", "void": "0200", "refund": "0220"}
TYPE_CODES = {"sale": "22", "void": "23", "refund": "25"}


# --- field values ------------------------------------------------------------------------------------

def _digits(value: str, length: int, name: str) -> str:
    if not re.fullmatch(rf"\d{{{length}}}", value):
        raise MessageError(f"{name} must be {length} digits")  # never echo: it could be card data
    return value


def _amount(value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10 ** 12:
        raise MessageError("an amount must be 0 to 999999999999 minor units")
    return f"{value:012d}"


def _currency(alpha: str) -> str:
    try:
        return CURRENCY_NUMERIC[alpha]
    except KeyError:
        raise MessageError(f"currency {alpha!r} has no numeric code here "
                           f"(known: {', '.join(CURRENCY_NUMERIC)})") from None


def _currency_alpha(numeric: str) -> str:
    try:
        return CURRENCY_ALPHA[numeric]
    except KeyError:
        raise MessageError(f"unknown currency code {numeric!r} in field 49") from None


def _field(message: Mapping[str, str], key: str) -> str:
    try:
        return message[key]
    except KeyError:
        raise MessageError(f"field {key} is missing") from None


def _time_fields(moment: datetime) -> Message:
    return {"12": moment.strftime("%H%M%S"), "13": moment.strftime("%m%d")}


def moment_of(mmdd: str, hhmmss: str, reference: datetime) -> datetime:
    """Fields 13 and 12 as a datetime in the reference's year and zone (a year back across New Year)."""
    _digits(mmdd, 4, "a date MMDD")
    _digits(hhmmss, 6, "a time hhmmss")
    try:
        moment = reference.replace(month=int(mmdd[:2]), day=int(mmdd[2:]), hour=int(hhmmss[:2]),
                                   minute=int(hhmmss[2:4]), second=int(hhmmss[4:]), microsecond=0)
        if moment - reference > timedelta(days=180):
            moment = moment.replace(year=moment.year - 1)
    except ValueError:
        raise MessageError("fields 12/13 hold no valid date and time") from None
    return moment


def _head(mti: str, terminal: TerminalRef, stan: str) -> Message:
    return {"h": TPDU_REQUEST + HEADER, "t": mti, "11": _digits(stan, 6, "the STAN"),
            "41": terminal.terminal_no, "42": terminal.merchant_no}


def _terminal(message: Mapping[str, str]) -> TerminalRef:
    return TerminalRef(merchant_no=_field(message, "42"), terminal_no=_field(message, "41"))


def _batch(message: Mapping[str, str]) -> str:
    return _digits(_field(message, "60")[2:8], 6, "the batch number in field 60")


def _field60(type_code: str, batch_no: str, network_code: str) -> str:
    return type_code + _digits(batch_no, 6, "the batch number") + network_code


# --- requests ------------------------------------------------------------------------------------------

def encode_sign_on(request: SignOnRequest, stan: str) -> Message:
    return {**_head("0800", request.terminal, stan), **_time_fields(request.local_time),
            "60": _field60("00", request.batch_no, "003"), "63": request.operator_no}


def decode_sign_on(message: Mapping[str, str], reference: datetime) -> SignOnRequest:
    return SignOnRequest(terminal=_terminal(message), batch_no=_batch(message),
                         operator_no=message.get("63", ""),
                         local_time=moment_of(_field(message, "13"), _field(message, "12"), reference))


def encode_financial(request: FinancialRequest) -> Message:
    """0200 (sale, void) or 0220 (refund). Unknown kind, currency, entry mode or a bad field: MessageError."""
    if request.kind not in REQUEST_MTI:
        raise MessageError(f"unknown financial kind {request.kind!r}")
    if request.entry_mode not in ENTRY_MODES:
        raise MessageError(f"unknown entry mode {request.entry_mode!r}")
    if not re.fullmatch(r"\d{13,19}", request.card.pan):
        raise MessageError("the card number must be 13 to 19 digits")
    message = {**_head(REQUEST_MTI[request.kind], request.terminal, request.stan),
               "2": request.card.pan, "3": PROCESSING_CODES[request.kind], "4": _amount(request.amount_minor),
               **_time_fields(request.local_time), "22": ENTRY_MODES[request.entry_mode], "25": "00",
               "49": _currency(request.currency),
               "60": _field60(TYPE_CODES[request.kind], request.batch_no, "000")}
    if request.card.expiry is not None:
        message["14"] = _digits(request.card.expiry, 4, "the expiry")
    if request.chip_data:
        message["55"] = encode_tlv(request.chip_data)
    if request.kind != "sale":
        original = request.original
        if original is None:
            raise MessageError(f"a {request.kind} needs the original sale's reference")
        message["37"] = original.rrn
        if original.auth_code:
            message["38"] = original.auth_code
        trace = _digits(original.batch_no, 6, "the original batch") + _digits(original.stan, 6, "the original STAN")
        message["61"] = trace + (_digits(original.date_mmdd, 4, "the original date") if request.kind == "refund"
                                 else "")
    return message


def kind_of(message: Mapping[str, str]) -> str:
    """sale | void | refund | reversal | sign_on | settlement, or MessageError for anything else."""
    mti, code = message.get("t"), message.get("3")
    if mti == "0200" and code in ("000000", "200000"):
        return "sale" if code == "000000" else "void"
    kinds = {"0220": "refund", "0400": "reversal", "0800": "sign_on", "0500": "settlement"}
    if mti in kinds:
        return kinds[mti]
    raise MessageError(f"unsupported message type {mti} / processing code {code}")


def decode_financial(message: Mapping[str, str], reference: datetime) -> FinancialRequest:
    kind = kind_of(message)
    if kind not in REQUEST_MTI:
        raise MessageError(f"a {kind} is not a financial request")
    original = None
    if kind != "sale":
        trace = _field(message, "61")
        original = OriginalRef(rrn=_field(message, "37"), auth_code=message.get("38", ""), batch_no=trace[:6],
                               stan=trace[6:12], date_mmdd=trace[12:16])
    entry_mode = ENTRY_MODE_NAMES.get(_field(message, "22"))
    if entry_mode is None:
        raise MessageError("unknown entry mode in field 22")
    return FinancialRequest(
        kind=kind, terminal=_terminal(message), batch_no=_batch(message), stan=_field(message, "11"),
        amount_minor=int(_digits(_field(message, "4"), 12, "the amount")),
        currency=_currency_alpha(_field(message, "49")),
        card=CardData(pan=_field(message, "2"), expiry=message.get("14")), entry_mode=entry_mode,
        chip_data=decode_tlv(message["55"]) if "55" in message else {},
        local_time=moment_of(_field(message, "13"), _field(message, "12"), reference), original=original)


def encode_reversal(request: ReversalRequest) -> Message:
    """0400: finds the original by terminal, batch and STAN. No card data (no field 2, 14, 35 or 55)."""
    if request.kind not in REQUEST_MTI:
        raise MessageError(f"unknown financial kind {request.kind!r}")
    original = REQUEST_MTI[request.kind] + _digits(request.stan, 6, "the original STAN")
    return {**_head("0400", request.terminal, request.stan), "3": PROCESSING_CODES[request.kind],
            "4": _amount(request.amount_minor), **_time_fields(request.local_time), "25": "00",
            "39": REVERSAL_NO_REPLY, "49": _currency(request.currency),
            "60": _field60(TYPE_CODES[request.kind], request.batch_no, "000"),
            "63": request.reason_code, "90": original.ljust(42, "0")}


def decode_reversal(message: Mapping[str, str], reference: datetime) -> ReversalRequest:
    original_mti = _field(message, "90")[:4]
    kind = "refund" if original_mti == "0220" else "void" if _field(message, "3") == "200000" else "sale"
    return ReversalRequest(
        kind=kind, terminal=_terminal(message), batch_no=_batch(message), stan=_field(message, "11"),
        amount_minor=int(_digits(_field(message, "4"), 12, "the amount")),
        currency=_currency_alpha(_field(message, "49")), reason_code=message.get("63", ""),
        local_time=moment_of(_field(message, "13"), _field(message, "12"), reference))


def _totals48(totals: BatchTotals, flag: str) -> str:
    if not (0 <= totals.debit_count <= 999 and 0 <= totals.credit_count <= 999):
        raise MessageError("a settlement counts at most 999 debits and 999 credits")
    return (_amount(totals.debit_minor) + f"{totals.debit_count:03d}" + _amount(totals.credit_minor)
            + f"{totals.credit_count:03d}" + flag)


def _totals_of(field48: str) -> BatchTotals:
    _digits(field48[:30], 30, "the totals in field 48")
    return BatchTotals(debit_minor=int(field48[:12]), debit_count=int(field48[12:15]),
                       credit_minor=int(field48[15:27]), credit_count=int(field48[27:30]))


def encode_settlement(request: SettlementRequest, stan: str) -> Message:
    return {**_head("0500", request.terminal, stan), **_time_fields(request.local_time),
            "48": _totals48(request.totals, "0"), "49": _currency(request.currency),
            "60": _field60("00", request.batch_no, "201"), "63": request.operator_no}


def decode_settlement(message: Mapping[str, str], reference: datetime) -> SettlementRequest:
    return SettlementRequest(
        terminal=_terminal(message), batch_no=_batch(message),
        currency=_currency_alpha(_field(message, "49")), totals=_totals_of(_field(message, "48")),
        operator_no=message.get("63", ""),
        local_time=moment_of(_field(message, "13"), _field(message, "12"), reference))


# --- replies -------------------------------------------------------------------------------------------

def reply_mti(request_mti: str) -> str:
    return f"{int(request_mti) + 10:04d}"


def reply_to(request: Mapping[str, str], response_code: str, host_time: datetime) -> Message:
    """The common part of a reply: MTI + 10, and the request's STAN, terminal and merchant echoed."""
    return {"h": TPDU_REPLY + HEADER, "t": reply_mti(_field(request, "t")), "11": _field(request, "11"),
            **_time_fields(host_time), "39": response_code, "41": _field(request, "41"),
            "42": _field(request, "42")}


def answers(request: Mapping[str, str], reply: Mapping[str, str]) -> bool:
    """Whether the reply is this request's: MTI + 10, same STAN (11) and terminal (41)."""
    return (reply.get("t") == reply_mti(request["t"]) and reply.get("11") == request["11"]
            and reply.get("41") == request["41"])


def encode_host_reply(request: Mapping[str, str], reply: HostReply, host_time: datetime) -> Message:
    message = reply_to(request, reply.response_code, host_time)
    if reply.rrn:
        message["37"] = reply.rrn
    if reply.auth_code:
        message["38"] = reply.auth_code
    if reply.acquirer_id:
        message["32"] = reply.acquirer_id
    if reply.issuer_id or reply.acquirer_id:
        message["44"] = reply.issuer_id.ljust(11) + reply.acquirer_id.ljust(11)
    return message


def decode_host_reply(message: Mapping[str, str]) -> HostReply:
    additional = message.get("44", "")
    return HostReply(response_code=_field(message, "39"), rrn=message.get("37", ""),
                     auth_code=message.get("38", ""),
                     acquirer_id=message.get("32") or additional[11:22].strip(),
                     issuer_id=additional[:11].strip())


def encode_reversal_reply(request: Mapping[str, str], reply: ReversalReply, host_time: datetime) -> Message:
    return reply_to(request, reply.response_code, host_time)


def decode_reversal_reply(message: Mapping[str, str]) -> ReversalReply:
    return ReversalReply(response_code=_field(message, "39"))


def encode_sign_on_reply(request: Mapping[str, str], reply: SignOnReply, host_time: datetime) -> Message:
    return {**reply_to(request, reply.response_code, reply.host_time or host_time),
            "60": _field60("00", reply.batch_no, "003")}


def decode_sign_on_reply(message: Mapping[str, str], reference: datetime) -> SignOnReply:
    host_time = None
    if "12" in message and "13" in message:
        host_time = moment_of(message["13"], message["12"], reference)
    return SignOnReply(response_code=_field(message, "39"), batch_no=message.get("60", "")[2:8],
                       host_time=host_time)


def encode_settlement_reply(request: Mapping[str, str], reply: SettlementReply,
                            host_time: datetime) -> Message:
    message = {**reply_to(request, reply.response_code, host_time),
               "48": _totals48(reply.host_totals, "1" if reply.balanced else "2")}
    if reply.settlement_date:
        message["15"] = _digits(reply.settlement_date, 4, "the settlement date")
    return message


def decode_settlement_reply(message: Mapping[str, str]) -> SettlementReply:
    field48 = message.get("48", "")
    return SettlementReply(response_code=_field(message, "39"), balanced=field48[30:31] == "1",
                           host_totals=_totals_of(field48) if field48 else BatchTotals(),
                           settlement_date=message.get("15", ""))
