"""The request/answer vocabulary shared by the provider handlers.

A `Route` is what routing decided (which provider, which calendar key, how to render);
a `Reply` is the bytes to send. Error bodies are shaped like each provider's own, so
clients are tested against realistic failures.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from http import HTTPStatus

from sandbox.records import Fault

Query = dict[str, list[str]]
Headers = tuple[tuple[str, str], ...]


class Provider(Enum):
    CALENDLY = "calendly"
    HUBSPOT = "hubspot"
    GHL = "ghl"
    PAGE = "page"
    NONE = "none"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Headers = ()


@dataclass(frozen=True)
class Route:
    """A routed request: `key` is counted and matched against faults before `render` runs."""

    provider: Provider
    key: str | None
    render: Callable[[], Reply]
    # Only availability calls take part in the random `failure_rate` 503s.
    availability: bool = False


def first(query: Query, name: str) -> str | None:
    """The first value of a query parameter, as the providers read repeated ones."""
    values = query.get(name)
    return values[0] if values else None


def json_reply(status: int, body: object, headers: Headers = ()) -> Reply:
    return Reply(status, json.dumps(body, separators=(",", ":")).encode(), headers=headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


_CALENDLY_TITLES = {400: "Invalid Argument", 401: "Unauthenticated", 403: "Permission Denied"}


def error(provider: Provider, status: int, message: str | None = None) -> Reply:
    """A provider-shaped error body for `status`."""
    text = message or _phrase(status)
    if provider is Provider.CALENDLY:
        if status == 404:
            return json_reply(404, {"message": "not found"})
        headers = (("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "60"))
        title = _CALENDLY_TITLES.get(status, _phrase(status))
        return json_reply(status, {"title": title, "message": text}, headers if status == 429 else ())
    if provider is Provider.HUBSPOT:
        return json_reply(status, *_hubspot_error(status, message))
    if provider is Provider.GHL:
        ghl: dict[str, object] = {"statusCode": status, "message": text}
        if status == 401:
            ghl["error"] = "Unauthorized"
        return json_reply(status, ghl)
    if provider is Provider.PAGE:
        html = f"<!DOCTYPE html><html><body><h1>{status} {_phrase(status)}</h1></body></html>\n"
        return Reply(status, html.encode(), "text/html; charset=utf-8")
    return json_reply(status, {"message": text})


def _hubspot_error(status: int, message: str | None) -> tuple[dict[str, object], Headers]:
    body: dict[str, object] = {"status": "error"}
    headers: Headers = ()
    if status == 404:
        body["message"] = message or "slug does not exist"
        body["category"] = "OBJECT_NOT_FOUND"
    elif status == 429:
        body["message"] = message or "You have reached your ten_secondly_rolling limit."
        body["errorType"] = "RATE_LIMIT"
        body["policyName"] = "TEN_SECONDLY_ROLLING"
        body["requestId"] = str(uuid.uuid4())
        headers = (
            ("X-HubSpot-RateLimit-Max", "100"),
            ("X-HubSpot-RateLimit-Remaining", "0"),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
        )
    else:
        server_side = status >= 500
        body["message"] = message or ("Internal Error" if server_side else _phrase(status))
        body["category"] = "UNKNOWN" if server_side else "VALIDATION_ERROR"
    body["correlationId"] = str(uuid.uuid4())
    return body, headers


def with_headers(reply: Reply, headers: Headers) -> Reply:
    """`reply` with `headers` added, each replacing any header of the same name."""
    if not headers:
        return reply
    names = {name.lower() for name, _ in headers}
    kept = tuple((n, v) for n, v in reply.headers if n.lower() not in names)
    return Reply(reply.status, reply.body, reply.content_type, kept + headers)


def fault_reply(provider: Provider, fault: Fault) -> Reply:
    """The answer a fault with a `status` or `body` sends instead of the real one."""
    status = fault.status if fault.status is not None else 200
    if fault.body is None:
        reply = error(provider, status)
    else:
        raw = fault.body.encode() if isinstance(fault.body, str) else fault.body
        reply = Reply(status, raw, fault.content_type)
    return with_headers(reply, fault.headers)
