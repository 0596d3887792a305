"""How words and counts are written, at every layer: in messages, tables and progress lines,
and in the text cells of CSV files."""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs such a cell (OWASP: CSV injection)


def plural(n: int, word: str, words: str = "") -> str:
    """"1 epoch", "2 epochs"; "1 batch", "100 batches" with ``words`` given."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (one starting with = + - @, a tab
    or a carriage return: a scheme name from an edited runs.csv, a file's name), behind a
    single quote, as OWASP advises against CSV injection; anything else as it is. Reading
    the cell back gives the quoted text: a name that was escaped stays visibly escaped."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value
