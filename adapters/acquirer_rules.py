"""Behaviour rules for the acquirer simulator: which messages it declines, answers late or not at all.

A rule is a dict (a JSON rules file holds a list of them). Matchers, all optional (a rule without
any matches everything): ``pan_prefix``, ``pan_suffix``, ``amount_minor`` (exact),
``min_amount_minor`` / ``max_amount_minor``, ``kinds`` (of sale, void, refund, reversal, settlement,
sign_on); ``times`` applies the rule to the first N matching messages only, then it falls through.
Messages without a card (reversal, settlement, sign-on) never match a PAN matcher, those without an
amount (settlement, sign-on) never an amount matcher. The first matching rule wins; none: approve.

Actions:

* ``approve`` — the host's normal decision (the default);
* ``decline`` with ``response_code`` (05, 51, 54, 55 or any 2 characters) — journaled as declined;
  a declined reversal, sign-on or settlement changes nothing;
* ``slow`` with ``delay_ms`` — decide and journal now, reply after the delay;
* ``drop`` — decide and journal, never reply (the connection stays open until the client closes it);
* ``duplicate`` — reply twice;
* ``disconnect`` — decide and journal, then close without replying;
* ``stale_reply_first`` — first send a reply with another STAN (a stale answer), then the real one.

Example::

    [{"pan_suffix": "0051", "action": "decline", "response_code": "51"},
     {"kinds": ["reversal"], "times": 2, "action": "drop"},
     {"min_amount_minor": 500000, "action": "slow", "delay_ms": 5000}]
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACTIONS = ("approve", "decline", "slow", "drop", "duplicate", "disconnect", "stale_reply_first")
KINDS = ("sale", "void", "refund", "reversal", "settlement", "sign_on")
_KEYS = {"pan_prefix", "pan_suffix", "amount_minor", "min_amount_minor", "max_amount_minor", "kinds", "times",
         "action", "response_code", "delay_ms"}


def _int(spec: Mapping[str, Any], key: str) -> int | None:
    value: int | None = spec.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"rule {key} must be a whole number >= 0")
    return value


def _digits(spec: Mapping[str, Any], key: str) -> str | None:
    value: str | None = spec.get(key)
    if value is not None and (not isinstance(value, str) or not value.isdigit() or len(value) > 10):
        raise ValueError(f"rule {key} must be 1 to 10 digits")  # a prefix or suffix, never a whole PAN
    return value


@dataclass(frozen=True, slots=True)
class Rule:
    """One behaviour rule: what to do with the messages it matches."""

    action: str = "approve"
    pan_prefix: str | None = None
    pan_suffix: str | None = None
    amount_minor: int | None = None
    min_amount_minor: int | None = None
    max_amount_minor: int | None = None
    kinds: frozenset[str] | None = None
    times: int | None = None
    response_code: str = "05"
    delay_ms: int = 0

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Rule:
        unknown = set(spec) - _KEYS
        if unknown:
            raise ValueError(f"unknown rule keys: {', '.join(sorted(unknown))} (known: {', '.join(sorted(_KEYS))})")
        action = spec.get("action", "approve")
        if action not in ACTIONS:
            raise ValueError(f"rule action must be one of {', '.join(ACTIONS)}")
        kinds = spec.get("kinds")
        if kinds is not None and (not isinstance(kinds, list) or not set(kinds) <= set(KINDS)):
            raise ValueError(f"rule kinds must be a list of {', '.join(KINDS)}")
        code = spec.get("response_code", "05")
        if not isinstance(code, str) or len(code) != 2 or not code.isascii() or not code.isalnum():
            raise ValueError("rule response_code must be 2 letters or digits, e.g. 51")
        if action == "decline" and code == "00":
            raise ValueError("a decline needs a response code other than 00")
        return cls(action=action, pan_prefix=_digits(spec, "pan_prefix"), pan_suffix=_digits(spec, "pan_suffix"),
                   amount_minor=_int(spec, "amount_minor"), min_amount_minor=_int(spec, "min_amount_minor"),
                   max_amount_minor=_int(spec, "max_amount_minor"),
                   kinds=frozenset(kinds) if kinds is not None else None, times=_int(spec, "times"),
                   response_code=code, delay_ms=_int(spec, "delay_ms") or 0)

    def matches(self, kind: str, pan: str | None, amount_minor: int | None) -> bool:
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.pan_prefix is not None and (pan is None or not pan.startswith(self.pan_prefix)):
            return False
        if self.pan_suffix is not None and (pan is None or not pan.endswith(self.pan_suffix)):
            return False
        bounds = (self.amount_minor, self.min_amount_minor, self.max_amount_minor)
        if amount_minor is None:
            return all(bound is None for bound in bounds)
        return ((self.amount_minor is None or amount_minor == self.amount_minor)
                and (self.min_amount_minor is None or amount_minor >= self.min_amount_minor)
                and (self.max_amount_minor is None or amount_minor <= self.max_amount_minor))


APPROVE = Rule()


class RuleBook:
    """Rules in order, with how often each ``times`` rule has been used."""

    def __init__(self, rules: Iterable[Rule | Mapping[str, Any]] = ()) -> None:
        self.rules = tuple(rule if isinstance(rule, Rule) else Rule.from_dict(rule) for rule in rules)
        self._used = [0] * len(self.rules)
        self._lock = threading.Lock()

    def pick(self, kind: str, pan: str | None, amount_minor: int | None) -> Rule:
        """The first rule that matches (and counts it), else APPROVE."""
        with self._lock:
            for i, rule in enumerate(self.rules):
                if rule.times is not None and self._used[i] >= rule.times:
                    continue
                if rule.matches(kind, pan, amount_minor):
                    self._used[i] += 1
                    return rule
        return APPROVE


def load_rules(path: str | Path) -> list[Rule]:
    """Rules from a JSON file holding a list of rule objects."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError("a rules file holds a JSON list of rule objects")
    return [Rule.from_dict(item) for item in data]
