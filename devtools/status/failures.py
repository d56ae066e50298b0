"""Failure messages grouped: a `lastError` with its variable parts (URLs, hosts, ids, numbers)
replaced by placeholders, so that one cause across many workspaces is one line."""

from __future__ import annotations

import re

# Order matters: a URL holds a host, ids and numbers; an id may hold digits.
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,;:)\]]", re.IGNORECASE)
_QUOTED = re.compile(r"'[^'\n]{1,200}'")
_IP_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|\[[0-9a-f:]+\](?::\d+)?", re.IGNORECASE)
_HOST = re.compile(r"\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\b(?::\d+)?", re.IGNORECASE)
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
# A token of 8+ letters, digits, '-' or '_' holding at least one digit and one letter (calendar ids, slugs).
_ID = re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[a-z])[\w-]{8,}\b", re.IGNORECASE)
# HTTP status codes stay: "answered HTTP 404" and "answered HTTP 503" are different causes.
_NUMBER = re.compile(r"(?<!HTTP )(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\d)")
_SPACES = re.compile(r"\s+")

URL = "<url>"
HOST = "<host>"
ID = "<id>"
NUMBER = "<n>"


def normalize_error(message: str) -> str:
    """The shape of a failure message, for grouping; e.g. 'HubSpot answered HTTP 500 for <url>'."""
    text = _URL.sub(URL, message)
    text = _QUOTED.sub(f"'{ID}'", text)
    text = _IP_ADDRESS.sub(HOST, text)
    text = _UUID.sub(ID, text)
    text = _HOST.sub(HOST, text)
    text = _ID.sub(ID, text)
    text = _NUMBER.sub(NUMBER, text)
    return _SPACES.sub(" ", text).strip()
