"""Small numeric helpers shared by settings and request options."""

from __future__ import annotations

import re

_BASE10_INT = re.compile(r"[+-]?[0-9]+")
# Python refuses to convert strings of more than 4300 digits; such a value is clamped anyway.
_MAX_DIGITS = 4000
_HUGE = int("1" + "0" * _MAX_DIGITS)


def parse_base10_int(text: str) -> int | None:
    """The integer spelled by `text` (surrounding blanks allowed), or None when it is not one."""
    stripped = text.strip()
    if not _BASE10_INT.fullmatch(stripped):
        return None
    if len(stripped) > _MAX_DIGITS:
        return -_HUGE if stripped.startswith("-") else _HUGE
    return int(stripped)


def clamp(value: int, low: int, high: int) -> int:
    """`value` brought into [low, high]."""
    return max(low, min(high, value))
