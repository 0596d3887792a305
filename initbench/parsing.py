"""Parsers of a setting's raw value (from a config file or the command line): each returns
the value checked, or raises ValueError saying what it must be (its caller names where the
value came from). Shared by ``config`` and the settings that live beside what they set
(``executors.raysettings``), which config imports and which never import it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_WHOLE = 2**63 - 1  # the largest seed a torch.Generator takes, and a bound on every count


def whole(minimum: int, maximum: int = MAX_WHOLE) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        if value > maximum:
            raise ValueError(f"must be at most {maximum}" + (" (2**63 - 1)" if maximum == MAX_WHOLE else ""))
        return value
    return parse


def number(low: float, high: float, describe: str) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
            raise ValueError(f"must be a number {describe}")
        return float(value)
    return parse


def optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else parse(value)
