"""The cashier's terminal UI: keyboard driven, one line per answer, prompts in Chinese and English.

A reader thread turns standard input into a queue of lines, so the counter can wait for a card in
the reader and for a swipe from a keyboard-wedge reader (which types the track-2 line) at once.
The development PIN pad reads the PIN from the same keyboard with echo off; it goes straight to
the card and is never shown, logged or kept.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO

from domain.money import minor_digits
from terminal_agent.bootstrap import Agent
from terminal_agent.counter import State
from terminal_agent.messages import say
from terminal_agent.service_client import ServiceRefused, ServiceUnreachable

MENU = """\
 1 消费 Card sale      2 现金 Cash sale     3 撤销 Void          4 退货 Refund
 5 重打 Reprint        6 X报表 X report     7 结算 Settle        8 清点 Cash count
 9 关班 Close till     0 退出 Quit"""
_EOF = object()


class ConsoleCashier:
    """Implements ``terminal_agent.counter.Cashier`` on a text console."""

    def __init__(self, lang: str = "both", stdin: TextIO | None = None, stdout: TextIO | None = None,
                 currency: str = "CNY") -> None:
        self.lang, self.currency = lang, currency
        self._in, self._out = stdin or sys.stdin, stdout or sys.stdout
        self._lines: queue.Queue[Any] = queue.Queue()
        threading.Thread(target=self._read, name="till-agent-keyboard", daemon=True).start()

    def _read(self) -> None:
        for line in self._in:
            self._lines.put(line.rstrip("\r\n"))
        self._lines.put(_EOF)

    def line(self, prompt: str) -> str:
        self._out.write(prompt)
        self._out.flush()
        item = self._lines.get()
        if item is _EOF:
            self._lines.put(_EOF)  # every later read sees the end too
            raise EOFError
        return str(item)

    def say(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    # ---- Cashier -----------------------------------------------------------------------------------
    def show(self, code: str, **values: Any) -> None:
        self.say("  » " + say(code, self.lang, **values))

    def ask_amount(self, code: str) -> int | None:
        prompt = {"enter_amount": "金额 Amount", "cash_tendered_prompt": "实收 Cash tendered"}.get(code, code)
        while True:
            text = self.line(f"{prompt} ({self.currency}, 例 e.g. 12.50; 回车返回 Enter = back): ").strip()
            if not text:
                return None
            minor = parse_amount(text, self.currency)
            if minor is not None:
                return minor
            self.show("wrong_amount", reason=f"'{text}'")

    def confirm(self, code: str, **values: Any) -> bool:
        answer = self.line("  » " + say(code, self.lang, **values) + " [Y/n] ").strip().lower()
        return answer in ("", "y", "yes", "是", "确认")

    def poll(self) -> str | None:
        try:
            item = self._lines.get(timeout=0.01)
        except queue.Empty:
            return None
        if item is _EOF:
            self._lines.put(_EOF)
            return ""
        text = str(item).strip()
        return text if text else ""  # an empty line cancels waiting for the card

    def ask_pin(self, tries_left: int | None) -> str | None:
        hint = f" ({tries_left})" if tries_left is not None else ""
        with _no_echo(self._in):
            pin = self.line(f"  » 密码 PIN{hint} (回车取消 Enter = cancel): ").strip()
        self._out.write("\n")
        return pin or None

    def waiver_reason(self) -> str | None:
        return self.line("免签原因 Reason to waive the signature: ").strip() or None


def parse_amount(text: str, currency: str) -> int | None:
    """"12.50" -> 1250 (minor units of ``currency``); None when it is not a positive amount."""
    try:
        value = Decimal(text.replace("，", ".").replace(",", "."))
    except InvalidOperation:
        return None
    scaled = value.scaleb(minor_digits(currency))
    if value <= 0 or scaled != scaled.to_integral_value():
        return None
    return int(scaled)


@contextlib.contextmanager
def _no_echo(stream: TextIO) -> Iterator[None]:
    try:
        import termios
    except ImportError:  # not a POSIX terminal
        yield
        return
    try:
        fd = stream.fileno()
        old = termios.tcgetattr(fd)
    except (termios.error, OSError, ValueError, AttributeError):  # a pipe, a test: nothing to hide
        yield
        return
    new = list(old)
    new[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSADRAIN, new)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def run_counter(agent: Agent, cashier: ConsoleCashier, password: str | None = None) -> int:
    """Start of day, then the menu until the cashier quits (or the input ends)."""
    c = agent.counter
    try:
        if password is None:
            with _no_echo(cashier._in):
                password = cashier.line(f"操作员 {c.operator_no} 密码 Operator password: ")
            cashier.say("")
        float_minor = cashier.ask_amount("备用金 Float") or 0
        agent.till.start_of_day(password, float_minor)
        password = None
        while c.till is not None:
            backlog = c.journal.backlog()
            cashier.say(f"\n[{c.state.value}] {'在线 online' if c.online else '离线 OFFLINE'} · "
                        f"{say('queue', cashier.lang, queued=backlog.queued)}"
                        + (f" · {say('rejected', cashier.lang, rejected=backlog.rejected)}" if backlog.rejected else ""))
            cashier.say(MENU)
            choice = cashier.line("> ").strip()
            if choice == "0":
                break
            _menu_action(agent, cashier, choice)
    except EOFError:
        pass
    except KeyboardInterrupt:
        cashier.say("")
    c.enter(State.OFF)
    return 0


def _menu_action(agent: Agent, cashier: ConsoleCashier, choice: str) -> None:
    c = agent.counter
    try:
        if choice == "1":
            agent.card.run("sale")
        elif choice == "2":
            agent.cash.run()
        elif choice in ("3", "4"):
            original = _pick_original(agent, cashier, void=choice == "3")
            if original is not None:
                agent.card.run("void" if choice == "3" else "refund", original)
        elif choice == "5":
            sale = _pick_sale(agent, cashier)
            if sale is not None:
                from terminal_agent.recorder import StreamRef

                copy = "merchant" if cashier.line("联 Copy: 1 商户 merchant / 2 持卡人 customer: ").strip() == "1" \
                    else "customer"
                agent.receipts.print_copy(StreamRef("transaction", sale["transaction_id"], sale["version"]), copy)
        elif choice == "6":
            agent.till.x_report()
        elif choice == "7":
            agent.till.settle()
        elif choice == "8":
            counted = cashier.ask_amount("现金清点 Counted cash")
            if counted is not None:
                agent.till.count_cash(counted)
        elif choice == "9":
            agent.till.close()
    except ServiceRefused as exc:
        cashier.show("refused", detail=exc.detail)
    except ServiceUnreachable:
        cashier.show("network_down")


def _pick_sale(agent: Agent, cashier: ConsoleCashier, *, card_only: bool = False) -> dict[str, Any] | None:
    trace = cashier.line("原凭证号 Trace no. of the transaction: ").strip().zfill(6)
    for sale in reversed(agent.counter.journal.sales()):
        if sale.get("trace_no") == trace and (not card_only or sale.get("payment_method") == "card"):
            return sale
    cashier.show("not_found", ref=trace)
    return None


def _pick_original(agent: Agent, cashier: ConsoleCashier, *, void: bool) -> dict[str, Any] | None:
    sale = _pick_sale(agent, cashier, card_only=True)
    if sale is None:
        return None
    if sale.get("kind") != "sale" or sale.get("outcome") != "authorized" or sale.get("status") != "completed":
        cashier.show("void_not_allowed", reason="not an approved, completed card sale")
        return None
    if void and (sale.get("voided") or sale.get("batch_no") != agent.counter.batch_no):
        cashier.show("void_not_allowed", reason="already voided, or its batch is settled (use a refund)")
        return None
    return sale

