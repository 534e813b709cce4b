"""What the counter says to the cashier and the customer, in Chinese and English, by stable code.

The codes follow the seed's steps (开启交易 … 结束交易) and its FAQ (card unreadable, network down,
wrong amount, unsupported payment method). A flow emits a code and values; the UI picks the words.
"""

from __future__ import annotations

from typing import Any

MESSAGES: dict[str, tuple[str, str]] = {
    # start of day
    "self_check": ("开机自检：服务{service}，打印机{printer}，纸张{paper}，读卡器{reader}",
                   "Self-check: service {service}, printer {printer}, paper {paper}, reader {reader}"),
    "till_opened": ("收银台已开启，备用金 {amount}", "Till opened with a float of {amount}"),
    "till_resumed": ("继续使用已开启的收银台", "Carrying on with the till already open"),
    "signed_in": ("操作员 {operator} 已登录", "Operator {operator} signed in"),
    "signed_on": ("已签到，批次号 {batch}", "Signed on with the bank, batch {batch}"),
    "card_unavailable": ("刷卡暂不可用：{reason}；可收现金", "Card payments unavailable: {reason}; cash only"),
    # a sale, step by step
    "enter_amount": ("请输入交易金额", "Enter the amount"),
    "wrong_amount": ("金额错误：{reason}，请重新输入", "Wrong amount: {reason}; enter it again"),
    "confirm_amount": ("请顾客确认金额 {amount}", "Customer: please confirm {amount}"),
    "amount_not_confirmed": ("顾客未确认金额，交易取消", "The customer did not confirm the amount; cancelled"),
    "present_card": ("请插卡、挥卡或刷卡", "Insert, tap or swipe the card"),
    "keep_card": ("交易处理中，请勿移动卡片", "Processing: do not remove the card"),
    "card_unreadable": ("读卡失败（{reason}），请重新插卡", "Card unreadable ({reason}); insert it again"),
    "card_removed": ("卡片被拔出，请重新插卡", "The card was removed; insert it again"),
    "use_chip": ("此卡为芯片卡，请插卡", "This is a chip card: insert it"),
    "fallback_swipe": ("芯片读卡失败 {failures} 次，请刷卡", "Chip failed {failures} times: swipe the card"),
    "fallback_forbidden": ("芯片读卡失败，本终端不允许降级刷卡", "Chip read failed; this terminal does not allow "
                           "a fallback swipe"),
    "unsupported_method": ("不支持的支付方式：{reason}，请使用其他卡或现金",
                           "Payment method not supported: {reason}; use another card or cash"),
    "enter_pin": ("请输入密码", "Enter your PIN"),
    "wrong_pin": ("密码错误，还可尝试 {tries} 次", "Wrong PIN, {tries} tries left"),
    "pin_blocked": ("密码已锁定，交易取消", "PIN blocked; the transaction is cancelled"),
    "pin_cancelled": ("持卡人取消输入密码，交易取消", "PIN entry cancelled; the transaction is cancelled"),
    "cvm_failed": ("持卡人验证失败，交易取消", "Cardholder verification failed; cancelled"),
    "authorizing": ("正在联机授权，请稍候", "Authorizing, please wait"),
    "approved": ("交易成功 授权码 {auth_code} 参考号 {rrn}", "Approved: auth code {auth_code}, RRN {rrn}"),
    "declined": ("交易拒绝（{response_code}）：{reason}", "Declined ({response_code}): {reason}"),
    "host_unavailable": ("银行主机无法连接，未扣款，请稍后重试或收现金",
                         "The bank host cannot be reached; nothing was charged. Retry later or take cash"),
    "outcome_unknown": ("交易结果未知，系统自动冲正，请勿交付商品", "Outcome unknown: it is being reversed; "
                        "do not hand over the goods"),
    "reversed": ("交易已冲正，未扣款", "Reversed: nothing was charged"),
    "sign_here": ("请持卡人在签名板上签名", "Cardholder: please sign on the pad"),
    "signature_waived": ("免签：{reason}", "Signature waived: {reason}"),
    "printing": ("正在打印{copy}", "Printing the {copy}"),
    "printed": ("凭条已打印", "Receipt printed"),
    "paper_out": ("打印机缺纸，请装纸后重打", "The printer is out of paper: load paper, then reprint"),
    "printer_offline": ("打印机离线，请检查后重打", "The printer is offline: check it, then reprint"),
    "printer_unavailable": ("打印机无法连接，请检查后重打", "The printer does not answer: check it, then reprint"),
    "check_receipt": ("请顾客核对凭条，签名后将卡和凭条交还顾客", "Customer: check the slip; return the card "
                      "and the slip"),
    "done": ("交易完成", "Transaction complete"),
    "cancelled": ("交易已取消", "Transaction cancelled"),
    # cash
    "cash_tendered": ("实收 {tendered}，找零 {change}", "Tendered {tendered}, change {change}"),
    "cash_short": ("实收金额不足", "The cash tendered does not cover the amount"),
    # offline
    "network_down": ("网络中断：只能收现金，已批准交易可重打凭条", "Network down: cash only; approved "
                     "transactions can be reprinted"),
    "network_back": ("网络已恢复", "Network back"),
    "queue": ("待上传 {queued} 条", "{queued} events waiting to upload"),
    "rejected": ("{rejected} 条记录被服务拒绝，请联系技术支持", "{rejected} events were refused by the "
                 "service; call support"),
    "refused": ("服务拒绝：{detail}", "Refused by the service: {detail}"),
    # till
    "not_found": ("未找到原交易 {ref}", "No original transaction {ref}"),
    "void_not_allowed": ("不能撤销：{reason}", "Cannot void: {reason}"),
    "settled": ("结算完成，批次 {batch}：{balanced}", "Settled batch {batch}: {balanced}"),
    "cash_counted": ("现金清点 {amount}", "Cash counted: {amount}"),
    "till_closed": ("收银台已关闭", "Till closed"),
}


def say(code: str, lang: str = "zh", **values: Any) -> str:
    """The message ``code`` in ``lang`` ("zh" or "en"), or both ("both": Chinese / English)."""
    zh, en = MESSAGES[code]
    if lang == "en":
        return en.format(**values)
    if lang == "zh":
        return zh.format(**values)
    return f"{zh.format(**values)} / {en.format(**values)}"
