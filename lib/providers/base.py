"""What every provider module receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lib.deadline import Deadline
from lib.errors import ProviderResponseError
from lib.providers.http import HttpClient
from lib.slots import Window


@dataclass(frozen=True)
class FetchContext:
    """The shared means of one refresh: the HTTP client, the slot window and the run's deadline."""

    http: HttpClient
    window: Window
    deadline: Deadline
    base_url: str
    allow_private: bool = False  # tenant URLs may point at private addresses (local runs and tests only)


@dataclass(frozen=True)
class ProviderResult:
    """The provider answered: its free instants (epoch ms, unfiltered) and the ids worth caching."""

    instants_ms: list[int]
    meta: dict[str, Any] = field(default_factory=dict)


def expect_dict(value: Any, what: str) -> dict[str, Any]:
    """`value` when it is a JSON object; otherwise a ProviderResponseError naming what was wrong."""
    if not isinstance(value, dict):
        raise ProviderResponseError(_shape_error(what, "an object", value))
    return value


def expect_list(value: Any, what: str) -> list[Any]:
    """`value` when it is a JSON array; otherwise a ProviderResponseError naming what was wrong."""
    if not isinstance(value, list):
        raise ProviderResponseError(_shape_error(what, "a list", value))
    return value


_JSON_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def _shape_error(what: str, expected: str, value: Any) -> str:
    # The provider changed its answer (or sent an error body with a 200): say what came instead.
    if value is None:
        return f"{what} is missing or null (expected {expected}); the provider's answer has changed shape"
    found = _JSON_NAMES.get(type(value), type(value).__name__)
    return f"{what} has an unexpected shape (expected {expected}, got {found})"
