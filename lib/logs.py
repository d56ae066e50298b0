"""Logging: structured JSON for Cloud Logging on Google Cloud, readable text elsewhere.

Every entry is an `event` name plus fields (`log_event`); no caller ever passes a secret.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

from lib.config import running_on_google_cloud
from lib.deferred import IMPORT_LOCK

ROOT_LOGGER = "lib"
_configured: tuple[str, str, str | None] | None = None
# One configuration at a time: the first requests of a worker arrive on several threads together.
_configuring = threading.Lock()

# Keys Cloud Logging's structured handler owns: it drops these from the payload (and overwrites
# `message` with the log message), so a field of that name is renamed rather than lost.
RESERVED_FIELDS = frozenset(
    {
        "message",
        "severity",
        "httpRequest",
        "time",
        "timestamp",
        "timestampSeconds",
        "timestampNanos",
        "logging.googleapis.com/insertId",
        "logging.googleapis.com/labels",
        "logging.googleapis.com/operation",
        "logging.googleapis.com/sourceLocation",
        "logging.googleapis.com/spanId",
        "logging.googleapis.com/trace",
        "logging.googleapis.com/trace_sampled",
    }
)
PROJECT_VARIABLES = ("GOOGLE_CLOUD_PROJECT", "GCP_PROJECT", "GCLOUD_PROJECT")
METADATA_HOST = "metadata.google.internal"
METADATA_PROJECT_PATH = "/computeMetadata/v1/project/project-id"
METADATA_TIMEOUT_S = 1.0


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """One log entry: `event` is its stable name; the fields become the JSON payload on Cloud Logging.

    A field named like one Cloud Logging reserves (`message`, `timestamp`, …) gets a trailing `_`.
    """
    payload = {f"{key}_" if key in RESERVED_FIELDS else key: value for key, value in fields.items()}
    logger.log(level, event, extra={"json_fields": {"event": event, **payload}})


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


class _LenientEncoder(json.JSONEncoder):
    """A field JSON cannot encode (a datetime, an enum) is written as text instead of losing the line."""

    def default(self, o: Any) -> Any:
        return str(o)


def configure_logging(level: str, log_format: str) -> None:
    """Attach one handler to the product's loggers (idempotent; reconfigures when settings change).

    Thread-safe: a request's thread may call it while another's is still importing the JSON handler."""
    global _configured
    project = cloud_project(os.environ) if log_format == "json" else None
    if _configured == (level, log_format, project):
        return
    with _configuring:
        if _configured == (level, log_format, project):
            return  # another thread did it while this one waited
        handler = _structured_handler(project) if log_format == "json" else _text_handler()
        for name in (ROOT_LOGGER, "main"):
            logger = logging.getLogger(name)
            logger.handlers = [handler]
            logger.setLevel(level)
            logger.propagate = False
        _configured = (level, log_format, project)


def _text_handler() -> logging.Handler:
    handler = logging.StreamHandler(_CurrentStream("stderr"))
    handler.setFormatter(TextFormatter())
    return handler


def _structured_handler(project: str | None) -> logging.Handler:
    """Cloud Logging's structured handler, its package imported whole first.

    Imported here: google-cloud-logging is heavy and only needed on Google Cloud. The package
    `google.cloud.logging_v2` is imported explicitly, not only its `handlers` submodule: the package's
    `__init__` imports `handlers` first and then runs for tens of milliseconds more (the API clients),
    and the handler's `emit` reads `google.cloud.logging_v2._instrumentation_emitted`, which exists only
    once that `__init__` has finished. A thread importing just `handlers` while another thread is in the
    middle of the package gets the finished submodule at once, and its first log line raises
    "cannot access submodule 'logging_v2' of module 'google.cloud'" out of `emit`. Importing the package
    waits on Python's lock for that module until the other thread's import is complete.
    """
    with IMPORT_LOCK:  # lib/deferred.py: one thread at a time imports what was deferred
        import google.cloud.logging_v2  # noqa: PLC0415, F401  # see the docstring
        from google.cloud.logging_v2.handlers import StructuredLogHandler  # noqa: PLC0415

    # The project turns X-Cloud-Trace-Context into `projects/{project}/traces/{id}`, the form Cloud
    # Logging links to the request. The library ships no type hints for this constructor.
    handler: logging.Handler = StructuredLogHandler(  # type: ignore[no-untyped-call]
        stream=_CurrentStream("stdout"), project_id=project, json_encoder_cls=_LenientEncoder
    )
    return handler


def cloud_project(env: Mapping[str, str]) -> str | None:
    """The Google Cloud project: from the environment, else (on Google Cloud) the metadata server.

    Cloud Functions gen2 does not set GOOGLE_CLOUD_PROJECT, so without the metadata server the trace
    of every entry would lack the project and Cloud Logging would not link it to its request.
    """
    for name in PROJECT_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return value
    if not running_on_google_cloud(env):
        return None
    return _metadata_project(env.get("GCE_METADATA_HOST", "").strip() or METADATA_HOST)


@functools.lru_cache(maxsize=4)
def _metadata_project(host: str) -> str | None:
    # Cached, failures included: one lookup per process, never one per request.
    with IMPORT_LOCK:
        import requests  # noqa: PLC0415

    try:
        response = requests.get(
            f"http://{host}{METADATA_PROJECT_PATH}", headers={"Metadata-Flavor": "Google"}, timeout=METADATA_TIMEOUT_S
        )
    except requests.RequestException:
        return None
    project = response.text.strip()
    return project if response.status_code == 200 and project and project.isprintable() else None


def _compact(value: Any) -> str:
    if isinstance(value, str):
        # Quoted when it has spaces or control characters, so a value can never forge a log line.
        return value if value.isprintable() and value and " " not in value else json.dumps(value)
    return json.dumps(value, separators=(",", ":"), default=str)
