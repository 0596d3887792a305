"""Tables: one ``Listing`` (its columns as text, its rows as data) shown in any of
``FORMATS``: a boxed table in a terminal (names and numbers never cut; when it is too wide,
the least important columns are left out and the table says which), Markdown when the
output is not a terminal (CI job summaries, logs), or JSON or CSV for scripts (the raw
numbers, as the CSV files hold them), and HTML in a notebook or a page.

An output format is a function ``(listing, console) -> None`` that prints a listing on
stdout (``console`` is the terminal's, for its width), registered in ``FORMATS`` by the
name ``--format`` takes; a format registered before the command line is imported (at
start-up) is one of its choices::

    def tsv(listing, console):
        print("\t".join(c.header.replace("\n", " ") for c in listing.columns))
        for row in zip(*(c.cells for c in listing.columns)):
            print("\t".join(row))

    tables.FORMATS["tsv"] = tsv
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from initbench.words import spreadsheet_safe


@dataclass
class Column:
    header: str  # may hold a line break, to keep a column narrow
    cells: list[str]
    drop: int = 0  # 0: always shown; when a table is too wide, the highest numbers are left out first
    wrap: bool = False  # long text that may wrap between words (never inside a name or a number)
    left: bool = False  # text is left-aligned; numbers are right-aligned
    path: bool = False  # paths, which may also wrap after a "/" (a name is never cut)


@dataclass
class Listing:
    title: str
    columns: list[Column]
    records: list[dict[str, Any]]  # the same rows as data, for json and csv
    notes: list[str] = field(default_factory=list)  # printed under the table
    rules_after: tuple[int, ...] = ()  # row numbers after which a line is drawn


def show(listing: Listing, fmt: str, console: Console) -> None:
    """Print ``listing`` in ``fmt`` (one of FORMATS) on ``console`` (stdout)."""
    FORMATS[fmt](listing, console)


def _json(listing: Listing, console: Console) -> None:
    print(json.dumps([_plain(r) for r in listing.records], indent=2))


def _csv(listing: Listing, console: Console) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=list(listing.records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: spreadsheet_safe(json.dumps(v) if isinstance(v, (list, dict)) else v)
                      for k, v in _plain(r).items()} for r in listing.records)


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """NaN is not JSON: it becomes null (and an empty CSV cell, as in the CSV files)."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}


def markdown(listing: Listing) -> str:
    """A GitHub-flavoured Markdown table, its title in bold above and its notes below."""
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", "<br>") for c in cells) + " |"

    lines = [f"**{listing.title}**", "", row([c.header.replace("\n", " ") for c in listing.columns]),
             "| " + " | ".join(":--" if c.left else "--:" for c in listing.columns) + " |"]
    lines += [row(list(cells)) for cells in zip(*(c.cells for c in listing.columns))]
    return "\n".join(lines + ([""] + listing.notes if listing.notes else []))


def html(listing: Listing) -> str:
    """An HTML table (as a notebook shows it), its title as the caption and its notes below."""
    def cells(tag: str, texts: Iterable[str]) -> str:
        return "".join(f'<{tag} style="text-align: {"left" if c.left else "right"}">'
                       f'{escape(text).replace(chr(10), "<br>")}</{tag}>' for c, text in zip(listing.columns, texts))

    rows = "".join(f"<tr>{cells('td', row)}</tr>" for row in zip(*(c.cells for c in listing.columns)))
    return (f"<table><caption>{escape(listing.title)}</caption><thead><tr>"
            f"{cells('th', (c.header for c in listing.columns))}</tr></thead><tbody>{rows}</tbody></table>"
            + "".join(f"<p>{escape(note)}</p>" for note in listing.notes))


COMFORT = 16  # a wrapped column is first laid out at least this wide (or as wide as its text), then narrower
RECORD_LABEL = 22  # a row shown as a block: its headers' width (a longer header goes above its value)
PER_COLUMN = 3  # a space either side of its cells and a border after them


def _pieces(text: str, wrap: bool, path: bool = False) -> list[str]:
    """What a line is never broken inside: each line whole, or with ``wrap`` each word, and
    with ``path`` each part of a path up to its "/"."""
    if not (wrap or path):
        return text.splitlines() or [""]
    return [piece for word in text.split() for piece in (_parts(word) if path else [word])] or [""]


def _parts(word: str) -> list[str]:
    """A path's parts, each with its "/": /tmp/run/a -> /, tmp/, run/, a."""
    return re.split(r"(?<=/)(?=.)", word)


def _bounds(column: Column, comfort: int) -> tuple[int, int]:
    """The narrowest a column can be (its longest name or number, and its header's longest
    word; wrapped text at least ``comfort`` wide where it is that long) and its natural width."""
    cells = [cell_len(piece) for cell in column.cells for piece in _pieces(cell, column.wrap, column.path)]
    header = [cell_len(piece) for piece in _pieces(column.header, True)]
    natural = max(cell_len(line) for text in [column.header, *column.cells] for line in text.splitlines() or [""])
    narrowest = max(cells + header)
    if column.wrap or column.path:
        narrowest = max(narrowest, min(natural, comfort))
    return narrowest, max(natural, narrowest)


def _widths(columns: list[Column], width: int, comfort: int) -> list[int] | None:
    """Each column's width in a table ``width`` wide (borders and padding included), or None
    if even at their narrowest they do not fit. Room left over goes to the columns that
    want it (wrapped text first), in proportion to what they lack."""
    room = width - PER_COLUMN * len(columns) - 1
    bounds = [_bounds(c, comfort) for c in columns]
    widths = [low for low, _ in bounds]
    if sum(widths) > room:
        return None
    for grows in ([c.wrap or c.path for c in columns], [True] * len(columns)):
        while (spare := room - sum(widths)) > 0:
            lacking = [high - w if grow else 0 for (_, high), w, grow in zip(bounds, widths, grows)]
            if not any(lacking):
                break
            total = sum(lacking)
            given = [min(need, spare * need // total) for need in lacking]
            if not any(given):  # less room than columns that lack it: a character each, widest need first
                i = lacking.index(max(lacking))
                given = [int(j == i) for j in range(len(lacking))]
            widths = [w + g for w, g in zip(widths, given)]
    return widths


def _wrapped(text: str, width: int, wrap: bool, path: bool = False) -> str:
    """``text`` in lines at most ``width`` wide, broken only between words (``wrap``) or
    after a path's "/" (``path``); a line that fits is kept as it is."""
    lines = []
    for line in text.splitlines() or [""]:
        if cell_len(line) <= width or not (wrap or path):
            lines.append(line)
            continue
        current = ""
        for word in line.split():
            for i, piece in enumerate(_parts(word) if path else [word]):
                joined = current + ("" if not current or i else " ") + piece
                if current and cell_len(joined) > width:
                    lines.append(current)
                    current = piece
                else:
                    current = joined
        lines.append(current)
    return "\n".join(lines)


def _table(listing: Listing, columns: list[Column], widths: list[int]) -> Table:
    """The table as laid out: every column as wide as ``widths`` says, its cells broken into
    lines beforehand (rich neither wraps nor shrinks anything)."""
    cells = [[_wrapped(cell, w, c.wrap, c.path) for cell in c.cells] for c, w in zip(columns, widths)]
    tall = any("\n" in cell for column in cells for cell in column)
    t = Table(title=listing.title, box=box.HEAVY_HEAD, show_lines=tall)
    for c, w in zip(columns, widths):
        t.add_column(_wrapped(c.header, w, True), justify="left" if c.left else "right", no_wrap=True, width=w)
    for i, row in enumerate(zip(*cells)):
        t.add_row(*(Text(cell) for cell in row), end_section=i in listing.rules_after)
    return t


def _records(listing: Listing, width: int) -> list[Text]:
    """The listing as one block per row ("Header  value" lines): what a terminal too narrow
    for even its necessary columns gets; values wrap between words, under their header."""
    headers = [" ".join(c.header.split()) for c in listing.columns]
    label = min(max(cell_len(h) for h in headers) + 2, RECORD_LABEL, width // 2)
    blocks = [Text(listing.title, style="bold")]
    for row in zip(*(c.cells for c in listing.columns)):
        lines = []
        for header, column, cell in zip(headers, listing.columns, row):
            if not cell:
                continue
            beside = width - label
            if cell_len(header) + 2 <= label and all(cell_len(p) <= beside for p in _pieces(cell, True, column.path)):
                for j, line in enumerate(_wrapped(cell, beside, True, column.path).splitlines()):
                    lines.append((header if j == 0 else "").ljust(label) + line)
            else:  # under its header, indented
                lines.append(header)
                lines += ["  " + line for line in _wrapped(cell, width - 2, True, column.path).splitlines()]
        blocks.append(Text("─" * min(width, 40) + "\n" + "\n".join(lines)))
    return blocks


def fitted(listing: Listing, width: int) -> RenderableType:
    """The listing as a boxed table ``width`` characters wide at most, never cutting a cell.
    Text columns wrap between words; when that is not enough, the least important columns
    (highest ``drop``) are left out, those left out put back where they fit again, and a note
    names them; a table whose necessary columns cannot fit is shown as one block per row."""
    for comfort in (COMFORT, 0):
        shown = list(listing.columns)
        widths = _widths(shown, width, comfort)
        while widths is None and any(c.drop for c in shown):
            least = max((c for c in shown if c.drop), key=lambda c: c.drop)
            shown = [c for c in shown if c is not least]
            widths = _widths(shown, width, comfort)
        if widths is None:
            continue
        for back in sorted((c for c in listing.columns if all(c is not s for s in shown)), key=lambda c: c.drop):
            trial = [c for c in listing.columns if c is back or any(c is s for s in shown)]
            if (tried := _widths(trial, width, comfort)) is not None:
                shown, widths = trial, tried
        left_out = [" ".join(c.header.split()) for c in listing.columns if all(c is not s for s in shown)]
        notes = listing.notes + ([f"Left out at this width: {', '.join(left_out)} "
                                  "(wider terminal, --format markdown, or the CSV files)."] if left_out else [])
        return Group(_table(listing, shown, widths), *(Text(note) for note in notes))
    return Group(*_records(listing, width), *(Text(note) for note in listing.notes))


# The output formats by the name --format takes, each a function (listing, console) -> None.
FORMATS: dict[str, Callable[[Listing, Console], None]] = {
    "table": lambda listing, console: console.print(fitted(listing, console.width)),
    "markdown": lambda listing, console: print(markdown(listing)),
    "json": _json,
    "csv": _csv,
}
