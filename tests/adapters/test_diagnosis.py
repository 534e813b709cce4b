"""The doctor's check runner: bounded, never crashing, skipping what cannot be checked, hiding secrets."""

from __future__ import annotations

import json
import threading

from adapters.diagnosis import Check, Finding, diagnose, mask_url, ok, problem, warning


def test_a_check_that_raises_becomes_a_problem_with_the_exception_and_the_others_still_run() -> None:
    def broken() -> Finding:
        raise KeyError("signing")

    diagnosis = diagnose("t", [Check("broken", broken), Check("fine", lambda: ok("fine"))])

    assert [(r.check, r.finding.status) for r in diagnosis.results] == [("broken", "problem"), ("fine", "ok")]
    assert diagnosis.results[0].finding.message == "the check stopped with an unexpected error: KeyError: 'signing'"
    assert "Traceback" not in diagnosis.as_text()
    assert diagnosis.exit_code == 1


def test_a_check_that_hangs_is_a_problem_after_its_time_limit() -> None:
    release = threading.Event()
    try:
        diagnosis = diagnose("t", [Check("stuck", lambda: ok("never") if release.wait(30) else ok(""), timeout_s=0.2)])
    finally:
        release.set()

    assert diagnosis.results[0].finding.status == "problem"
    assert diagnosis.results[0].finding.message == "the check did not finish within 0.2 s"


def test_a_check_whose_prerequisite_failed_is_skipped_and_so_are_the_ones_after_it() -> None:
    diagnosis = diagnose("t", [
        Check("database", lambda: problem("no database", "start it")),
        Check("tables", lambda: ok("tables"), needs=("database",)),
        Check("lag", lambda: ok("lag"), needs=("tables",)),
        Check("key", lambda: warning("no key yet", "start once")),
    ])

    assert [r.finding.status for r in diagnosis.results] == ["problem", "skipped", "skipped", "warning"]
    assert diagnosis.results[2].finding.message == "not checked until the tables check passes"
    assert diagnosis.as_text().endswith("1 problem, 1 warning.\n")


def test_warnings_alone_exit_0() -> None:
    diagnosis = diagnose("t", [Check("lag", lambda: warning("behind", "start a runner"))])

    assert diagnosis.exit_code == 0
    assert diagnosis.as_text().endswith("0 problems, 1 warning: nothing stops it from working.\n")


def test_secrets_and_url_passwords_are_hidden_in_text_and_json_whatever_a_check_says() -> None:
    leak = problem("cannot log in to postgresql://till:pa55@db:5432/till with tl_secret",
                   "the token tl_secret was refused", seen="tl_secret")

    diagnosis = diagnose("t", [Check("leak", lambda: leak)], secrets=lambda: ["tl_secret"])

    text, data = diagnosis.as_text(), diagnosis.as_json()
    assert "pa55" not in text + data and "tl_secret" not in text + data
    assert "postgresql://till:***@db:5432/till with ***" in text
    assert json.loads(data)["checks"][0]["facts"] == {"seen": "***"}


def test_json_gives_scripts_the_verdict_counts_and_each_finding() -> None:
    diagnosis = diagnose("t", [Check("a", lambda: ok("fine", lag=0)), Check("b", lambda: problem("bad", "fix it"))])

    report = json.loads(diagnosis.as_json())

    assert report["ok"] is False and report["problems"] == 1 and report["warnings"] == 0
    assert report["checks"] == [
        {"check": "a", "status": "ok", "message": "fine", "fix": "", "facts": {"lag": 0}},
        {"check": "b", "status": "problem", "message": "bad", "fix": "fix it", "facts": {}},
    ]


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("postgresql://till:s3cret@db:5432/till") == "postgresql://till:***@db:5432/till"
    assert mask_url("postgresql://till@db/till") == "postgresql://till@db/till"
    assert mask_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
