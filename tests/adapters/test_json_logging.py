"""JSON log lines with the request id, and the filter that keeps card data out of every line."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.json_logging import (
    CardDataFilter,
    JsonFormatter,
    TextFormatter,
    logging_config,
    redact,
    request_id,
)
from domain.card_data import luhn_valid

PAN = "6222021234567890128"  # Luhn-valid, 19 digits
VISA = "4761739001010010"  # Luhn-valid, 16 digits
TRACK2 = f";{VISA}=25122011234567890?"
TRACK1 = f"%B{VISA}^WANG/FANG^2512201123400000?"


class Captured:
    """A logger of its own, writing through a handler set up as ``till serve`` sets up its handler."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(formatter)
        handler.addFilter(CardDataFilter())
        self.logger = logging.getLogger(f"tests.json_logging.{id(self)}")
        self.logger.handlers = [handler]
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    capture = Captured(JsonFormatter())
    yield capture
    capture.logger.handlers = []


def test_a_record_is_one_json_line_with_time_level_logger_message_and_its_extra_fields(captured: Captured) -> None:
    captured.logger.warning("till %s blocked after %d reversals", "12345678", 2, extra={"terminal_no": "12345678",
                                                                                        "attempts": 2})

    [entry] = captured.entries()
    assert entry["level"] == "WARNING" and entry["logger"] == captured.logger.name
    assert entry["message"] == "till 12345678 blocked after 2 reversals"
    assert (entry["terminal_no"], entry["attempts"], entry["request_id"]) == ("12345678", 2, None)
    assert entry["time"].endswith("Z") and "T" in entry["time"]
    assert "args" not in entry and "msg" not in entry  # the record's own attributes are not repeated


def test_a_line_logged_while_a_request_is_served_carries_its_request_id(captured: Captured) -> None:
    token = request_id.set("req-42")
    try:
        captured.logger.info("inside")
    finally:
        request_id.reset(token)
    captured.logger.info("outside")

    assert [entry["request_id"] for entry in captured.entries()] == ["req-42", None]


def test_an_exception_is_one_line_too_with_its_traceback_in_a_field(captured: Captured) -> None:
    try:
        raise RuntimeError("the printer caught fire")
    except RuntimeError:
        captured.logger.exception("print failed")

    [entry] = captured.entries()
    assert entry["message"] == "print failed"
    assert "RuntimeError: the printer caught fire" in entry["exception"]


def test_the_filter_redacts_a_luhn_valid_pan_in_the_message_and_in_its_arguments(captured: Captured) -> None:
    captured.logger.info(f"card {PAN} presented")
    captured.logger.info("card %s presented at %s", VISA, "counter 3")
    captured.logger.info("grouped %s", "4761 7390 0101 0010")

    messages = [entry["message"] for entry in captured.entries()]
    assert messages == ["card [redacted] presented", "card [redacted] presented at counter 3", "grouped [redacted]"]


def test_the_filter_redacts_track_2_and_track_1_data(captured: Captured) -> None:
    captured.logger.info("swipe %s", TRACK2)
    captured.logger.info("swipe %s", TRACK1)
    captured.logger.info("chip tag 57 %sD25122011234", VISA)

    assert [entry["message"] for entry in captured.entries()] == ["swipe [redacted]", "swipe [redacted]",
                                                                  "chip tag 57 [redacted]"]
    assert VISA not in captured.stream.getvalue()


def test_the_filter_redacts_extra_fields_and_tracebacks(captured: Captured) -> None:
    try:
        raise ValueError(f"bad card {PAN}")
    except ValueError:
        captured.logger.error("refused", exc_info=True, extra={"detail": f"pan={VISA}"})

    [entry] = captured.entries()
    assert entry["detail"] == "pan=[redacted]"
    assert "bad card [redacted]" in entry["exception"]
    assert PAN not in captured.stream.getvalue() and VISA not in captured.stream.getvalue()


def test_numbers_that_are_not_card_numbers_are_kept() -> None:
    not_luhn = "4761739001010011"
    assert not luhn_valid(not_luhn)
    for text in (f"rrn 000012345678, stan 000123, amount 12345 fen, id {not_luhn}",
                 "at 2026-11-24 10:30:00, terminal 12345678, merchant 898310048990001",
                 "masked 622202******0128"):
        assert redact(text) == text


def test_a_pan_glued_to_other_digit_groups_is_still_found() -> None:
    assert redact(f"ids 12 {VISA} 7") == "ids 12 [redacted] 7"
    assert redact(f"x{PAN}y") == "x[redacted]y"


def test_a_message_whose_arguments_do_not_fit_is_left_for_the_handler_to_report() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "%d items", ("many",), None)

    assert CardDataFilter().filter(record) is True
    assert (record.msg, record.args) == ("%d items", ("many",))


def test_the_text_format_is_for_a_terminal_and_names_the_request_too() -> None:
    capture = Captured(TextFormatter())
    token = request_id.set("req-7")
    try:
        capture.logger.info("card %s", VISA)
    finally:
        request_id.reset(token)
        capture.logger.handlers = []

    [line] = capture.lines()
    assert line.endswith("INFO    " + capture.logger.name + ": card [redacted] [req-7]")


def test_the_serve_logging_config_routes_uvicorn_through_the_filter_and_the_chosen_format() -> None:
    config = logging_config("json", "warning", access_log=False)
    handler = config["handlers"]["default"]

    assert config["formatters"]["default"]["()"] is JsonFormatter
    assert handler["filters"] == ["card_data"] and config["filters"]["card_data"]["()"] is CardDataFilter
    assert config["loggers"]["uvicorn"]["handlers"] == ["default"]
    assert config["loggers"]["uvicorn.access"]["handlers"] == []  # replaced by till.access
    assert config["loggers"]["till.access"] == {"level": "WARNING"}
    assert config["root"] == {"handlers": ["default"], "level": "WARNING"}
    assert logging_config("text", "info")["formatters"]["default"]["()"] is TextFormatter
    assert logging_config("json", "info")["loggers"]["till.access"] == {}  # on: it follows the root level
