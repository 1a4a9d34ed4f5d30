"""JSON-line logging: one object per line, with the request's id and principal attached."""

from __future__ import annotations

import functools
import logging
import math
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from tradecast.kit.request_context import current

# Field names whose values are never written, whatever a caller passes in ``extra``.
_SECRET_FIELDS = re.compile(r"pass(word)?|secret|token|signature|authorization|api[_-]?key", re.I)
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


@functools.lru_cache(maxsize=1024)
def _is_secret(key: str) -> bool:
    # Field names repeat on every line: decided once per name, not searched each time.
    return _SECRET_FIELDS.search(key) is not None


def redact(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: "[redacted]" if _is_secret(key) else value for key, value in fields.items()}


@functools.lru_cache(maxsize=4)
def _second(whole: int) -> str:
    # Lines come many to a second: the date and time up to the second made once.
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _timestamp(created: float) -> str:
    """``created`` in ISO 8601 to the millisecond, UTC, as ``isoformat`` writes it."""
    fraction, whole = math.modf(created)
    micro = round(fraction * 1e6)  # rounded as ``datetime.fromtimestamp`` rounds
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    return f"{_second(int(whole))}.{micro // 1000:03d}+00:00"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        context = current()
        if context is not None:
            entry["request_id"] = context.request_id
            for key in ("user_id", "device_id", "producer_id"):
                value = getattr(context, key)
                if value is not None:
                    entry[key] = value
        for key, value in record.__dict__.items():
            if key not in _RESERVED:
                entry[key] = "[redacted]" if _is_secret(key) else value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    # Attributes no line of ours prints, each costly on every record (the logging
    # HOWTO's "Optimization" section): the caller's file and line (a stack walk),
    # thread and process names.
    logging._srcfile = None  # documented switch
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing.formatter, JsonFormatter):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own access log would duplicate ours, without request ids.
    logging.getLogger("uvicorn.access").disabled = True
