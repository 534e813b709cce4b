"""Log records as one JSON object per line, stamped with the request id, with card data redacted.

* ``JsonFormatter``: ``time`` (UTC), ``level``, ``logger``, ``message``, ``request_id`` (the request
  being served, from the ``request_id`` context variable that ``api.request_id`` sets), the fields
  passed as ``extra=…``, and ``exception`` when there is one.
* ``CardDataFilter``: rewrites every record so that a Luhn-valid 13–19-digit run (single spaces or
  dashes allowed between digit groups) or track data reads ``[redacted]``. The ledger never logs
  card data; this is defence in depth against a message, an argument or a traceback that would.
  Attach it to handlers (a filter on a logger misses records propagated from its children).
* ``logging_config``: the ``logging.config.dictConfig`` for ``till serve`` (uvicorn's loggers too).
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from domain.card_data import luhn_valid

REQUEST_ID_HEADER = "X-Request-ID"
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
REDACTED = "[redacted]"

# Track 2 (";PAN=YYMM…?"), its chip form (tag 57: PAN 'D' YYMM…) and track 1 ("%B PAN ^NAME^ YYMM…").
_TRACK = re.compile(r";?\d{12,19}[=Dd]\d+\??|%?[Bb]\d{12,19}\^[^^\r\n]{0,26}\^?\d*\??")
# A run of digit groups, single spaces or dashes between them, not glued to other digits.
_DIGIT_RUN = re.compile(r"(?<!\d)\d+(?:[ -]\d+)*(?!\d)")
_GROUP = re.compile(r"\d+")

# Attributes every LogRecord has; anything else on a record came in as ``extra=…``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# uvicorn repeats its message with terminal colour codes for its own formatter.
_NOT_EXTRA = _STANDARD | {"color_message"}


def _redact_run(match: re.Match[str]) -> str:
    """Redact each span of whole digit groups holding 13–19 digits that pass Luhn (the longest
    from each start), as the PCI guard in ``domain.card_data`` tests them."""
    text = match.group(0)
    groups = list(_GROUP.finditer(text))
    pieces: list[str] = []
    copied = i = 0
    while i < len(groups):
        digits, last = "", None
        for j in range(i, len(groups)):
            digits += groups[j].group(0)
            if len(digits) > 19:
                break
            if len(digits) >= 13 and luhn_valid(digits):
                last = j
        if last is None:
            i += 1
            continue
        pieces += [text[copied:groups[i].start()], REDACTED]
        copied, i = groups[last].end(), last + 1
    return "".join(pieces) + text[copied:] if pieces else text


def redact(text: str) -> str:
    """``text`` with PANs and track data replaced by ``[redacted]``."""
    return _DIGIT_RUN.sub(_redact_run, _TRACK.sub(REDACTED, text))


class CardDataFilter(logging.Filter):
    """Redacts card data from the message (after its arguments are merged in), from string
    ``extra`` fields, and from the traceback text. Never drops a record."""

    _tracebacks = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: the handler reports it
            return True
        if (clean := redact(message)) != message:
            record.msg, record.args = clean, None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str) and (clean := redact(value)) != value:
                setattr(record, key, clean)
        if record.exc_info and not record.exc_text:
            record.exc_text = self._tracebacks.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring for its fields)."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        entry: dict[str, Any] = {
            "time": moment.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        for key, value in vars(record).items():
            if key not in _NOT_EXTRA and key not in entry:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Plain lines for a terminal, with the request id in brackets when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        current = request_id.get()
        return line if current is None else f"{line} [{current}]"


ACCESS_LOGGER = "till.access"


def logging_config(log_format: str, level: str, access_log: bool = True) -> dict[str, Any]:
    """``dictConfig`` for ``till serve``: the root logger and uvicorn's loggers write through one
    handler (card-data filter, JSON or text); uvicorn's own access log gives way to ``till.access``
    (api.request_id), which has the request id and no query string."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,  # module loggers made at import time keep working
        "filters": {"card_data": {"()": CardDataFilter}},
        "formatters": {"default": {"()": formatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                 "formatter": "default", "filters": ["card_data"]}},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            # Access lines are INFO: on, they follow --log-level like everything else.
            ACCESS_LOGGER: {} if access_log else {"level": "WARNING"},
        },
        "root": {"handlers": ["default"], "level": level.upper()},
    }
