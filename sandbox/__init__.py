"""Local stand-ins for the calendar providers, for tests and benchmarks (never deployed).

`sandbox.providers.ProviderSandbox` serves fake Calendly, HubSpot and GoHighLevel
availability APIs on 127.0.0.1; `sandbox.slots.weekday_slots` builds free slots.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.providers import Fault, ProviderSandbox
    from sandbox.slots import weekday_slots

__all__ = ["Fault", "ProviderSandbox", "weekday_slots"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m sandbox.providers` does not import the module twice.
    if name in __all__:
        return getattr(importlib.import_module("sandbox.providers"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
