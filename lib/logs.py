"""Logging: structured JSON for Cloud Logging on Google Cloud, readable text elsewhere.

Every entry is an `event` name plus fields (`log_event`); no caller ever passes a secret.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

ROOT_LOGGER = "lib"
_configured: tuple[str, str] | None = None


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """One log entry: `event` is its stable name; the fields become the JSON payload on Cloud Logging."""
    logger.log(level, event, extra={"json_fields": {"event": event, **fields}})


class TextFormatter(logging.Formatter):
    """`time LEVEL event key=value …`, for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "json_fields", None) or {}
        rest = " ".join(f"{key}={_compact(value)}" for key, value in fields.items() if key != "event")
        line = f"{self.formatTime(record)} {record.levelname} {record.getMessage()}"
        line = f"{line} {rest}" if rest else line
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class _CurrentStream:
    """Writes to whatever sys.stdout/sys.stderr is at the time (test runners swap them)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def write(self, text: str) -> int:
        written: int = getattr(sys, self._name).write(text)
        return written

    def flush(self) -> None:
        getattr(sys, self._name).flush()


def configure_logging(level: str, log_format: str) -> None:
    """Attach one handler to the product's loggers (idempotent; reconfigures when settings change)."""
    global _configured
    if _configured == (level, log_format):
        return
    handler: logging.Handler
    if log_format == "json":
        # Imported here: google-cloud-logging is heavy and only needed on Google Cloud.
        from google.cloud.logging_v2.handlers import StructuredLogHandler  # noqa: PLC0415

        # The library ships no type hints for this constructor; it takes a stream like StreamHandler.
        handler = StructuredLogHandler(stream=_CurrentStream("stdout"))  # type: ignore[no-untyped-call]
    else:
        handler = logging.StreamHandler(_CurrentStream("stderr"))
        handler.setFormatter(TextFormatter())
    for name in (ROOT_LOGGER, "main"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
    _configured = (level, log_format)


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value)
    return json.dumps(value, separators=(",", ":"), default=str)
