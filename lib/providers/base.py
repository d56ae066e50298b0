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
    if not isinstance(value, dict):
        raise ProviderResponseError(f"{what} has an unexpected shape (expected an object)")
    return value


def expect_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProviderResponseError(f"{what} has an unexpected shape (expected a list)")
    return value
