"""Cloud Function entry point: method → authentication → options → run → JSON. Nothing else lives here."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import traceback
import uuid
from typing import TYPE_CHECKING, Any

import flask
import functions_framework

from lib.config import current_settings, logging_from_env, secret_from_env
from lib.deferred import IMPORT_LOCK
from lib.errors import ConfigError, DatabaseError, InvalidParameter
from lib.logs import configure_logging, log_event
from lib.options import parse_options, schedule_time

if TYPE_CHECKING:
    from lib.providers.http import HttpClient

log = logging.getLogger("main")
_http: HttpClient | None = None
ALLOWED_METHODS = ("GET", "POST")
INTERNAL_ERROR = "Internal error"


def load_request_path() -> HttpClient:
    """Import authentication and the run (requests, urllib3, pg8000, the providers) and build the shared
    HTTP client, once per process; returns the client.

    Not at `import main`, which stays cheap; the first request past the method and secret checks pays
    for them instead (a refused method or a missing secret never does), so the time until a first answer
    is no shorter: the bench's `first_request` figure counts them. Called in the request's own thread,
    under the deferred-import lock, before the run starts any thread, so no worker thread imports them.
    """
    global _http
    with IMPORT_LOCK:
        if _http is None:
            # Imported for the loading alone: _handle looks them up once they are in sys.modules.
            # netrc: requests imports it lazily at a session's first request (get_netrc_auth), which
            # would be on a refresh thread.
            import netrc  # noqa: F401

            import lib.auth
            import lib.run  # noqa: F401
            from lib.providers.http import HttpClient

            _http = HttpClient()
        return _http


def _json(body: dict[str, Any], status: int = 200) -> flask.Response:
    return flask.Response(json.dumps(body), status=status, mimetype="application/json")


@functions_framework.http
def availability_cron(request: flask.Request) -> flask.Response:
    """Refresh the availability caches; Cloud Scheduler calls this every minute."""
    # The run's budget counts from here: time spent verifying an ID token is part of it.
    arrived = time.monotonic()
    invocation_id = str(uuid.uuid4())
    try:
        return _handle(request, invocation_id, arrived)
    except Exception as exc:  # noqa: BLE001 - the last resort: every answer is JSON, even for our own bugs
        return _internal_error(exc, invocation_id)


def _handle(request: flask.Request, invocation_id: str, arrived: float) -> flask.Response:
    if request.method not in ALLOWED_METHODS:
        response = _json({"error": "Method not allowed", "allowed": list(ALLOWED_METHODS)}, 405)
        response.headers["Allow"] = ", ".join(ALLOWED_METHODS)
        return response
    configure_logging(*logging_from_env(os.environ))
    secret = secret_from_env(os.environ)
    if secret is None:
        log_event(log, logging.WARNING, "not_configured", detail="CRON_SECRET is not set; the endpoint is disabled")
        return _json({"error": "Not configured"}, 503)
    http = load_request_path()
    # Loaded by load_request_path: these two imports are lookups in sys.modules.
    from lib.auth import is_authorized
    from lib.run import run

    if not is_authorized(request, secret, os.environ):
        return _json({"error": "Unauthorized"}, 401)
    try:
        settings = current_settings()
    except ConfigError as exc:
        log_event(log, logging.WARNING, "not_configured", detail=str(exc))
        return _json({"error": "Not configured", "detail": str(exc)}, 503)
    configure_logging(settings.log_level, settings.log_format)
    try:
        options = parse_options(request.args, request.get_data(cache=False), request.content_type or "", settings)
    except InvalidParameter as exc:
        return _json({"error": "Invalid parameter", "param": exc.param, "detail": exc.detail}, 400)
    try:
        tick = schedule_time(request.headers.get("X-CloudScheduler-ScheduleTime"))
        result = run(settings, options, invocation_id=invocation_id, http=http, tick=tick, started=arrived)
    except DatabaseError as exc:
        log_event(log, logging.ERROR, "run_failed", invocationId=invocation_id, error=exc.kind, message=str(exc))
        return _json({"success": False, "error": exc.kind, "message": str(exc), "invocationId": invocation_id}, 500)
    log_event(log, logging.INFO, "run_finished", **result.body)
    return _json(result.body)


def _internal_error(exc: Exception, invocation_id: str) -> flask.Response:
    """500 JSON for an exception nothing else handled, logged with its class and where it was raised.

    Never its message or traceback text: either may quote a token, a URL with a password, a header.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else "unknown"
    with contextlib.suppress(Exception):  # the logging itself failed: the answer must still be JSON
        log_event(
            log,
            logging.ERROR,
            "run_failed",
            invocationId=invocation_id,
            error=INTERNAL_ERROR,
            exception=type(exc).__name__,
            where=where,
        )
    return _json({"success": False, "error": INTERNAL_ERROR, "invocationId": invocation_id}, 500)
