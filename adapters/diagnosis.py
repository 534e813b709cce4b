"""Findings of a deployment check: what ``till doctor`` and ``till-agent doctor`` run and print.

A check is a function that returns one ``Finding``: ``ok``, ``warning`` or ``problem``, one plain
sentence, and for warnings and problems what to do about it. ``diagnose`` runs the checks in order:

* each one in its own thread, waited for at most ``Check.timeout_s`` (a hung driver or network call
  becomes a problem finding, and the doctor goes on);
* an unexpected exception becomes a problem finding with the exception's type and message, never a
  traceback;
* a check whose prerequisite (``Check.needs``) has a problem, or was itself skipped, is ``skipped``;
* every secret handed to it (a password, a token) and the password in any ``scheme://user:pw@`` URL
  is replaced by ``***`` in every message, whatever a check or a library put there.

``Diagnosis.exit_code`` is 0 without problems (warnings allowed) and 1 with any.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import ValidationError

Status = Literal["ok", "warning", "problem", "skipped"]

DEFAULT_TIMEOUT_S = 10.0
_LABELS: Mapping[Status, str] = {"ok": "ok", "warning": "WARNING", "problem": "PROBLEM", "skipped": "skipped"}
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)[^@\s]*@")


@dataclass(frozen=True, slots=True)
class Finding:
    """What one check found: a status, one plain sentence, what to do, and facts for scripts."""

    status: Status
    message: str
    fix: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)


def ok(message: str, **facts: Any) -> Finding:
    return Finding("ok", message, "", facts)


def warning(message: str, fix: str = "", **facts: Any) -> Finding:
    return Finding("warning", message, fix, facts)


def problem(message: str, fix: str, **facts: Any) -> Finding:
    return Finding("problem", message, fix, facts)


@dataclass(frozen=True, slots=True)
class Check:
    """A named check. ``needs`` names earlier checks that must not have a problem for this one to run."""

    name: str
    run: Callable[[], Finding]
    needs: tuple[str, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class Result:
    check: str
    finding: Finding


@dataclass(frozen=True)
class Diagnosis:
    """Every check's finding, in order; rendered as text for people or JSON for scripts."""

    title: str
    results: list[Result]

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.finding.status == status)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("problem") else 0

    def as_text(self) -> str:
        width = max((len(r.check) for r in self.results), default=0) + 2
        lines = [self.title]
        for r in self.results:
            sentence = r.finding.message + (f" — {r.finding.fix}" if r.finding.fix else "")
            lines.append(f"  {_LABELS[r.finding.status]:<9}{r.check:<{width}}{sentence}")
        problems, warnings = self.count("problem"), self.count("warning")
        if problems or warnings:
            lines.append(f"{_plural(problems, 'problem')}, {_plural(warnings, 'warning')}"
                         f"{'' if problems else ': nothing stops it from working'}.")
        else:
            lines.append(f"All {self.count('ok')} checks passed.")
        return "\n".join(lines) + "\n"

    def as_json(self) -> str:
        return json.dumps({
            "ok": self.exit_code == 0, "problems": self.count("problem"), "warnings": self.count("warning"),
            "checks": [{"check": r.check, "status": r.finding.status, "message": r.finding.message,
                        "fix": r.finding.fix, "facts": dict(r.finding.facts)} for r in self.results],
        }, ensure_ascii=False, indent=2, default=str) + "\n"


def diagnose(title: str, checks: Iterable[Check], *,
             secrets: Callable[[], Iterable[str]] | None = None) -> Diagnosis:
    """Run ``checks`` in order. ``secrets`` is asked after each check (a check may be what finds them)."""
    results: list[Result] = []
    status_of: dict[str, Status] = {}
    for check in checks:
        blocked = [name for name in check.needs if status_of.get(name) in ("problem", "skipped")]
        if blocked:
            finding = Finding("skipped", f"not checked until the {blocked[0]} check passes")
        else:
            finding = _run_bounded(check)
        finding = _redacted(finding, [s for s in (secrets() if secrets else ()) if s])
        status_of[check.name] = finding.status
        results.append(Result(check.name, finding))
    return Diagnosis(title, results)


def print_diagnosis(diagnosis: Diagnosis, *, as_json: bool) -> int:
    """Print the findings (text for people, JSON for scripts); the exit status: 1 with any problem."""
    print(diagnosis.as_json() if as_json else diagnosis.as_text(), end="", flush=True)
    return diagnosis.exit_code


def _run_bounded(check: Check) -> Finding:
    outcome: list[Finding] = []

    def run() -> None:
        try:
            outcome.append(check.run())
        except Exception as exc:  # noqa: BLE001 - the doctor must report, never crash
            outcome.append(problem(f"the check stopped with an unexpected error: {type(exc).__name__}: {exc}",
                                   "the other checks still ran; report this line if the cause is not clear"))

    # A daemon thread: a check stuck in a driver call is left behind rather than holding the doctor.
    worker = threading.Thread(target=run, name=f"doctor-{check.name}", daemon=True)
    worker.start()
    worker.join(check.timeout_s)
    if not outcome:
        return problem(f"the check did not finish within {check.timeout_s:g} s",
                       "something it talks to hangs; the other checks still ran")
    return outcome[0]


def _redacted(finding: Finding, secrets: list[str]) -> Finding:
    def clean(text: str) -> str:
        text = _URL_PASSWORD.sub(r"\g<head>***@", text)
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    return replace(finding, message=clean(finding.message), fix=clean(finding.fix),
                   facts={k: clean(v) if isinstance(v, str) else v for k, v in finding.facts.items()})


def mask_url(url: str) -> str:
    """``url`` with its password, if any, shown as ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>***@", url)


def settings_problem(exc: ValidationError, prefix: str, secret_fields: Iterable[str] = ()) -> Finding:
    """A pydantic-settings ValidationError in plain words: which variable, what it holds, what is wrong."""
    hidden = set(secret_fields)
    parts = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        variable = f"{prefix}{name.upper()}"
        value = error.get("input")
        shown = "" if name in hidden or not isinstance(value, str) else f"={value!r}"
        reason = str(error["msg"])
        parts.append(f"{variable}{shown} is not valid ({reason[:1].lower() + reason[1:]})")
    variables = _and([f"{prefix}{str(e['loc'][0]).upper()}" for e in exc.errors() if e["loc"]])
    return problem("; ".join(parts), f"correct {variables} in the environment, or unset it for the default",
                   variables=[f"{prefix}{str(e['loc'][0]).upper()}" for e in exc.errors() if e["loc"]])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _and(items: list[str]) -> str:
    if not items:
        return "the settings"
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
