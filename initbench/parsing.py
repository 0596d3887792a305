"""Parsers of a setting's raw value (from a config file or the command line): each returns
the value checked, or raises ValueError saying what it must be (its caller names where the
value came from). Shared by ``settings``, ``config`` and the settings that live beside what they set
(``executors.raysettings``), which config imports and which never import it."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
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


def int_list(value: Any) -> list[Any]:
    """Numbers as a list: [1, 2], (1, 2), "1,2" or 1 (each still to be checked)."""
    if isinstance(value, str):
        try:
            return [int(part) for part in value.split(",")]
        except ValueError:
            raise ValueError("must be whole numbers separated by commas") from None
    return list(value) if isinstance(value, (list, tuple)) else [value]


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


def path(value: Any) -> Path:
    """A path, ``~`` expanded (an empty one is refused rather than taken as the current folder)."""
    return Path(value if isinstance(value, Path) else text(value)).expanduser()


def choice(choices: Collection[str]) -> Callable[[Any], str]:
    """One of ``choices`` (a registry's: looked in when parsing, with what was registered since)."""
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value
    return parse
