"""The pages' words in Chinese and English, and which language a request gets.

The language is, in order: ``?lang=zh|en`` (remembered in a cookie), the cookie, the browser's
Accept-Language, else Chinese (the stores' language, as in the seed procedure).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

LANGUAGES = ("zh", "en")
LANG_COOKIE = "till_lang"

MESSAGES: dict[str, tuple[str, str]] = {
    # frame
    "app": ("收银台账本", "Till Ledger"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "user_name": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "wrong_credentials": ("用户名或密码错误。", "User name or password is wrong."),
    "account_disabled": ("此账号已停用，请联系管理员。", "This account is disabled; ask an admin."),
    "too_many": ("失败次数过多，请稍后再试", "Too many failed attempts; try again later"),
    "signed_in_as": ("当前用户", "Signed in as"),
    "role_accountant": ("会计", "Accountant"),
    "role_dispute": ("争议处理", "Dispute handler"),
    "role_admin": ("管理员", "Admin"),
    "nav_day": ("日报与对账", "Day and reconciliation"),
    "nav_disputes": ("争议查询", "Disputes"),
    "language": ("语言", "Language"),
    "session_ended": ("会话已结束，请重新登录。", "Your session has ended; please sign in again."),
    "form_expired": ("表单已过期，请重试。", "The form expired; please try again."),
    "forbidden": ("您的角色无权查看此页。", "Your role may not see this page."),
    "not_found": ("未找到。", "Not found."),
    "error": ("出错了", "Something went wrong"),
    "back": ("返回", "Back"),
    # accountant
    "day": ("营业日", "Business day"),
    "store": ("门店", "Store"),
    "all_stores": ("全部门店", "All stores"),
    "show": ("查看", "Show"),
    "generated_at": ("生成时间", "Generated at"),
    "as_of_position": ("截至事件位置", "As of event position"),
    "totals": ("合计", "Totals"),
    "currency": ("币种", "Currency"),
    "count": ("笔数", "Count"),
    "gross": ("总额", "Gross"),
    "fee": ("手续费", "Fee"),
    "net": ("净额", "Net"),
    "by_terminal": ("按终端", "By terminal"),
    "by_operator": ("按操作员", "By operator"),
    "by_brand": ("按卡品牌与类型", "By card brand and type"),
    "terminal": ("终端号", "Terminal"),
    "operator": ("操作员", "Operator"),
    "brand": ("品牌", "Brand"),
    "kind": ("类型", "Type"),
    "kind_sale": ("消费", "Sale"),
    "kind_void": ("撤销", "Void"),
    "kind_refund": ("退货", "Refund"),
    "brand_cash": ("现金", "Cash"),
    "brand_other": ("其他", "Other"),
    "status_open": ("进行中", "open"),
    "status_completed": ("已完成", "completed"),
    "status_cancelled": ("已取消", "cancelled"),
    "outcome_authorized": ("已授权", "authorized"),
    "outcome_declined": ("拒绝", "declined"),
    "outcome_reversed": ("已冲正", "reversed"),
    "outcome_pending": ("待定", "pending"),
    "outcome_unknown": ("未知", "unknown"),
    "outcome_cash": ("现金", "cash"),
    "sales_by_hour": ("分时销售额", "Sales by hour"),
    "hour": ("时", "Hour"),
    "no_sales": ("当日无交易。", "No transactions on this day."),
    "cash_drawers": ("现金核对（每个钱箱）", "Cash per till"),
    "float": ("备用金", "Float"),
    "cash_sales": ("现金收入", "Cash sales"),
    "cash_refunds": ("现金退款", "Cash refunds"),
    "cash_voids": ("现金撤销", "Cash voids"),
    "expected": ("应有", "Expected"),
    "counted": ("实点", "Counted"),
    "variance": ("差额", "Variance"),
    "not_counted": ("未点钞", "not counted"),
    "note": ("备注", "Note"),
    "declined": ("拒绝", "Declined"),
    "reversed": ("已冲正", "Reversed"),
    "in_doubt": ("结果未定（待冲正或待确认）", "Outcome in doubt (pending or unknown)"),
    "download": ("下载", "Download"),
    "x_report": ("X 报表（当前累计，不结账）", "X report (running totals, no close)"),
    "z_reports": ("Z 报表（结算批次）", "Z reports (settled batches)"),
    "z_number": ("Z 号", "Z no."),
    "batch": ("批次号", "Batch"),
    "settled_at": ("结算时间", "Settled at"),
    "chain": ("哈希链", "Hash chain"),
    "chain_valid": ("完整", "intact"),
    "chain_broken": ("已损坏", "BROKEN"),
    "no_z_reports": ("当日无 Z 报表。", "No Z reports on this day."),
    "settlement": ("收单结算文件对账", "Acquirer settlement file"),
    "upload": ("上传并对账", "Upload and match"),
    "settlement_file": ("结算文件（CSV）", "Settlement file (CSV)"),
    "matched": ("一致", "Matched"),
    "amount_differs": ("金额不符", "Amount differs"),
    "ledger_only": ("仅账本有", "Only in the ledger"),
    "file_only": ("仅文件有", "Only in the file"),
    "balanced": ("账平", "Balanced"),
    "not_balanced": ("账不平", "Not balanced"),
    "already_imported": ("此文件此前已导入，显示原结果。", "This file was imported before; its result is shown."),
    "line": ("行", "Line"),
    "trace": ("凭证号", "Trace"),
    "amount": ("金额", "Amount"),
    "in_file": ("文件", "File"),
    "in_ledger": ("账本", "Ledger"),
    # dispute
    "search": ("查询", "Search"),
    "search_help": ("按参考号、授权码、终端号+凭证号，或卡号末四位+日期（+金额）查询。",
                    "Search by RRN, auth code, terminal + trace number, or last 4 digits + date (+ amount)."),
    "rrn": ("参考号", "RRN"),
    "auth_code": ("授权码", "Auth code"),
    "last4": ("卡号末四位", "Last 4 digits"),
    "date": ("日期", "Date"),
    "amount_minor": ("金额（分）", "Amount (minor units)"),
    "no_matches": ("没有匹配的交易。", "No matching transactions."),
    "truncated": ("仅显示前 200 条，请缩小范围。", "Only the first 200 are shown; narrow the search."),
    "card": ("卡片", "Card"),
    "status": ("状态", "Status"),
    "outcome": ("结果", "Outcome"),
    "opened_at": ("开始时间", "Started"),
    "transaction": ("交易", "Transaction"),
    "summary": ("概要", "Summary"),
    "timeline": ("时间线", "Timeline"),
    "server_time": ("服务器时间", "Server time"),
    "terminal_time": ("终端时间", "Terminal time"),
    "event": ("事件", "Event"),
    "chip_data": ("芯片数据", "Chip data"),
    "cvm": ("持卡人验证", "Cardholder verification"),
    "receipts": ("签购单（打印内容）", "Receipts (as printed)"),
    "copy_merchant": ("商户存根", "Merchant copy"),
    "copy_customer": ("持卡人存根", "Customer copy"),
    "printed_times": ("打印次数", "Printed"),
    "no_receipt": ("尚无结果，没有签购单。", "No outcome yet, so no receipt."),
    "related": ("关联的撤销与退货", "Related voids and refunds"),
    "chain_verdict": ("哈希链校验", "Hash-chain verdict"),
    "chain_ok_text": ("全部事件的哈希链完整，未被篡改。", "Every event's hash chains to the last: not altered."),
    "chain_bad_text": ("哈希链在此版本处断开：", "The hash chain breaks at version:"),
    "download_bundle": ("下载证据包（JSON，已签名）", "Download the evidence bundle (JSON, signed)"),
    "download_pdf": ("下载 PDF", "Download the PDF"),
    "masked_pan": ("卡号（掩码）", "Card number (masked)"),
    "entry_mode": ("读卡方式", "Entry mode"),
    "fields": ("内容", "Details"),
}

Translate = Callable[[str], str]


def choose_language(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    remembered = request.cookies.get(LANG_COOKIE)
    if remembered in LANGUAGES:
        return remembered
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "zh"


def translator(language: str) -> Translate:
    index = LANGUAGES.index(language)

    def translate(key: str) -> str:
        words = MESSAGES.get(key)
        return words[index] if words else key

    return translate


def labeller(language: str) -> Callable[[str, object], str]:
    """``label("kind", "void")`` -> 撤销 / Void; a value without a message shows as it is (a brand name)."""
    index = LANGUAGES.index(language)

    def label(group: str, value: object) -> str:
        words = MESSAGES.get(f"{group}_{value}")
        return words[index] if words else ("" if value is None else str(value))

    return label
