"""What a person reads: the progress display on stderr, and the tables on stdout.

A table is built once as a ``Listing`` (its columns as text, its rows as data)
and shown in any of ``FORMATS``: a boxed table in a terminal (names and numbers
are never cut; when it is too wide, the least important columns are left out
and the table says which), Markdown when the output is not a terminal (CI job
summaries, logs), or JSON or CSV for scripts (the raw numbers, as the CSV files
hold them). The pictures are drawn by ``initbench.pictures``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn
from rich.table import Column as RichColumn, Table
from rich.text import Text

from initbench.runfolder import spreadsheet_safe

if TYPE_CHECKING:
    import pandas as pd

    from initbench.jobs import Tick

FORMATS = ("table", "markdown", "json", "csv")


def plural(n: int, word: str, words: str = "") -> str:
    """"1 epoch", "2 epochs"; "1 batch", "100 batches" with ``words`` given."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


# --- tables


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
    if fmt == "json":
        print(json.dumps([_plain(r) for r in listing.records], indent=2))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(listing.records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: spreadsheet_safe(json.dumps(v) if isinstance(v, (list, dict)) else v)
                          for k, v in _plain(r).items()} for r in listing.records)
    elif fmt == "markdown":
        print(markdown(listing))
    else:
        console.print(fitted(listing, console.width))


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


def _pct(mean: float, std: float = math.nan) -> str:
    return f"{100 * mean:.2f}%" + ("" if math.isnan(std) else f" ± {100 * std:.2f}")


def _loss(value: float) -> str:
    return "diverged" if not math.isfinite(value) else f"{value:,.3f}"


def accuracy_listing(summary: pd.DataFrame, epochs: int, lesson_eval: bool = False) -> Listing:
    """The lesson's "After 2 Epochs" table, best validation accuracy first; with a ``run``
    column (``initbench report`` of several runs), a column naming each row's run."""
    seeds = int(summary["seeds"].max())
    title = (f"After {plural(epochs, 'epoch')}" + (f", mean ± std over {seeds} seeds" if seeds > 1 else "")
             + (", scored with dropout on (--lesson-eval)" if lesson_eval else ""))
    rows = list(summary.itertuples())
    names = run_names(str(r.run) for r in rows) if "run" in summary else {}
    columns = [Column("Run", [names[str(r.run)] for r in rows], left=True, path=True)] if names else []
    columns += [
        Column("Scheme", [r.scheme for r in rows], left=True),
        Column("Validation\naccuracy", [_pct(r.val_acc_mean, r.val_acc_std) for r in rows]),
        Column("Test\naccuracy", [_pct(r.test_acc_mean, r.test_acc_std) for r in rows], drop=3),
        Column("Last batch\nloss", [_loss(r.last_batch_loss_mean) for r in rows], drop=2),
        Column("Last epoch\nloss", [_loss(r.last_epoch_loss_mean) for r in rows], drop=4),
    ]
    if summary["diverged_seeds"].any():
        columns.append(Column("Diverged\nseeds", [f"{r.diverged_seeds}/{r.seeds}" for r in rows], drop=1))
    notes = ["Loss: training cross-entropy on the last batch (the lesson's \"training loss\"), "
             "and its mean over the last epoch."]
    if names:
        notes.append("Run: the run's folder (its whole path with --format json or csv).")
    ends = tuple(i for i in range(len(rows) - 1) if names and rows[i].run != rows[i + 1].run)
    return Listing(title, columns, summary.to_dict("records"), notes, ends)


def run_names(paths: Iterable[str]) -> dict[str, str]:
    """Each run folder's short name: its own name, with as many of its parents as tell it
    apart from another run's (results/a/lesson and results/b/lesson: a/lesson, b/lesson)."""
    parts = {path: PurePath(path).parts or (path,) for path in dict.fromkeys(paths)}
    depth = dict.fromkeys(parts, 1)
    while True:
        names = {path: str(PurePath(*p[-depth[path]:])) for path, p in parts.items()}
        taken = Counter(names.values())
        longer = [path for path, name in names.items() if taken[name] > 1 and depth[path] < len(parts[path])]
        if not longer:
            return names
        for path in longer:
            depth[path] += 1


def provenance(sources: list[str]) -> list[str]:
    """Where each layer's weights came from, runs of equal layers joined: "Layers 1-2: loaded from FILE"."""
    lines, start = [], 0
    for i in range(1, len(sources) + 1):
        if i == len(sources) or sources[i] != sources[start]:
            layers = f"Layer {start + 1}" if i - start == 1 else f"Layers {start + 1}-{i}"
            lines.append(f"{layers}: {sources[start]}")
            start = i
    return lines


def inspect_listing(scheme: str, rows: list[dict[str, Any]], found: list[str]) -> Listing:
    """One scheme's per-layer statistics at init (each row's ``source`` says where its
    weights came from), with what was found under it."""
    def g(key: str) -> list[str]:
        return [f"{r[key]:.3g}" for r in rows]

    n = len(rows)
    columns = [
        Column("Layer", [f"{r['layer']}" + (" (logits)" if r["layer"] == n else "") for r in rows], left=True),
        Column("Units", [str(r["units"]) for r in rows], drop=5),
        Column("Weight\nmean", g("weight_mean"), drop=1),  # ones' 1, beside its std of 0
        Column("Weight\nstd", g("weight_std")),
        Column("Output\nmean", g("act_mean"), drop=4),
        Column("Output\nstd", g("act_std")),
        Column("Dead\nunits", [f"{100 * r['dead_fraction']:.0f}%" for r in rows], drop=3),
        Column("Gradient\nnorm", g("grad_norm")),
        Column("Distinct\nunits", [str(r["distinct_units"]) for r in rows], drop=2),
    ]
    return Listing(f"{scheme} at init", columns, [{"scheme": scheme, **r} for r in rows],
                   provenance([r["source"] for r in rows]) + (found or ["nothing wrong found"]))


def evaluate_listing(rows: list[dict[str, Any]]) -> Listing:
    """Each weights file's accuracies now and as recorded in training, and the verdict."""
    def pct(key: str) -> list[str]:
        return ["" if r[key] is None else f"{100 * r[key]:.2f}%" for r in rows]

    folders = {str(PurePath(r["file"]).parent) for r in rows}
    shared = next(iter(folders)) if len(folders) == 1 else None  # then the files by name, and the folder in a note
    columns = [
        Column("File", [PurePath(r["file"]).name if shared else r["file"] for r in rows], left=True, path=True),
        Column("Scheme", [r["scheme"] for r in rows], left=True, drop=2),
        Column("Seed", ["" if r["seed"] is None else str(r["seed"]) for r in rows], drop=3),
        Column("Classes", [r["classes"] for r in rows], left=True, wrap=True, drop=4),
        Column("Val\nacc", pct("val_acc")),
        Column("Test\nacc", pct("test_acc"), drop=1),
        # What Check says already: the first columns left out.
        Column("Recorded\nval acc", pct("recorded_val_acc"), drop=5),
        Column("Recorded\ntest acc", pct("recorded_test_acc"), drop=6),
        Column("Check", [r["check"] for r in rows], left=True, wrap=True),
    ]
    integrity = {r["integrity"] for r in rows}
    if len(integrity) > 1:
        columns.append(Column("File checked against", [r["integrity"] for r in rows], left=True, wrap=True))
    reproduced = sum(r["check"] == "reproduced" for r in rows)
    notes = [f"{reproduced} of {plural(len(rows), 'file')} scored exactly what was recorded in training."
             if reproduced else "No file had a recorded accuracy to check."]
    if shared not in (None, "."):
        notes.insert(0, f"Files in {shared}")
    if len(integrity) == 1:
        notes.append(f"Every file: {next(iter(integrity))}.")
    return Listing("Weights scored on the validation and test images of their split", columns, rows, notes)


def transfer_listing(comparison: pd.DataFrame, title: str) -> Listing:
    """Each start's validation accuracy and its paired difference to the best scratch scheme."""
    rows = comparison.to_dict("records")
    baseline = rows[0]["baseline"]
    columns = [
        Column("Start", [r["scheme"] for r in rows], left=True, wrap=True),  # "pretrained, frozen 2 epochs"
        Column("Validation\naccuracy", [_pct(r["val_acc_mean"], r["val_acc_std"]) for r in rows]),
        Column("Difference to\nbest scratch [95% CI]", [_difference(r) for r in rows], drop=2),
        Column("Verdict", [r["verdict"] for r in rows], left=True, wrap=True, drop=1),
    ]
    seeds = int(comparison["seeds"].max())
    notes = [f"Mean ± std over {plural(seeds, 'seed')}; differences in percentage points against {baseline} on the "
             "same seeds (same batches), with a t-interval over seeds."]
    return Listing(title, columns, rows, notes)


def _difference(r: dict[str, Any]) -> str:
    """A paired difference in points, with its 95% interval when there is one."""
    if r["scheme"] == r["baseline"]:
        return ""
    interval = "" if math.isnan(r["diff_low"]) else f" [{100 * r['diff_low']:+.2f}, {100 * r['diff_high']:+.2f}]"
    return f"{100 * r['diff_mean']:+.2f}{interval}"


def sweep_listing(cells: pd.DataFrame, varied: list[str], title: str) -> Listing:
    """Per grid cell (its varied settings) and scheme: validation accuracy, and the paired
    difference to the cell's best scheme with its verdict; a line between cells."""
    rows = cells.to_dict("records")
    columns = [Column(k.replace("_", " ").capitalize(), [str(r[k]) for r in rows], left=True) for k in varied]
    columns += [
        Column("Scheme", [r["scheme"] for r in rows], left=True),
        Column("Validation\naccuracy", [_pct(r["val_acc_mean"], r["val_acc_std"]) for r in rows]),
        Column("Test\naccuracy", [_pct(r["test_acc_mean"]) for r in rows], drop=3),
        Column("Difference to the\ncell's best [95% CI]", [_difference(r) for r in rows], drop=2),
        Column("Verdict", [r["verdict"] for r in rows], left=True, wrap=True, drop=1),
    ]
    ends = [i for i in range(len(rows) - 1) if any(rows[i][k] != rows[i + 1][k] for k in varied)]
    notes = ["Differences in percentage points against the best scheme of the same cell, paired by seed "
             "(the same batches), with a t-interval over seeds; \"better\" or \"worse\" when the interval "
             "excludes 0." if int(cells["seeds"].max()) > 1 else
             "Differences in percentage points against the best scheme of the same cell, at one seed: point "
             "values with no interval, so whether a difference is real cannot be tested. Train two or more "
             "seeds (--set seeds=3) to test it."]
    return Listing(title, columns, rows, notes, tuple(ends))


def jobs_listing(rows: list[dict[str, Any]]) -> Listing:
    """A sweep's jobs (``--dry-run``): varied settings, scheme, seed, key, and whether the
    store already holds it."""
    headers = [k for k in rows[0] if k not in ("scheme", "seed", "key", "status")] if rows else []
    columns = [Column(k.replace("_", " ").capitalize(), [str(r[k]) for r in rows], left=True) for k in headers]
    columns += [Column("Scheme", [r["scheme"] for r in rows], left=True),
                Column("Seed", [str(r["seed"]) for r in rows]),
                Column("Key", [r["key"][:16] for r in rows], left=True, drop=1),
                Column("Status", [r["status"] for r in rows], left=True)]
    todo = sum(r["status"] == "to train" for r in rows)
    return Listing(f"{plural(len(rows), 'job')}, {todo:,} to train", columns, rows,
                   ["Key: the first 16 hex digits of the job's SHA-256 key (all 64 with --format json or csv)."])


def _range(low_high: tuple[float, float], fmt: str) -> str:
    return f"{fmt.format(low_high[0])}-{fmt.format(low_high[1])}"


def bench_listing(numbers: dict) -> Listing:
    """Seconds per model-epoch of each way of training, the spread over the repeats, and
    the ratios the targets use."""
    per, spread = numbers["seconds_per_model_epoch"], numbers["spread"]
    notes = [f"Medians of {len(numbers['samples']['floor'])} interleaved repeats."]
    models = numbers["models_in_batched_step"]
    names = {"floor": "GEMM floor", "batched": f"batched, {models} models",
             "batched_frozen": f"batched, {models} models, hidden layers frozen", "sequential": "sequential",
             "vmap": f"torch.func vmap recipe, {models} models", "module_loop": f"loop over {models} nn.Modules",
             "lesson": "lesson pipeline"}
    rows = []
    for key, label in names.items():
        if key in per:
            rows.append({"training": label, "seconds": f"{per[key]:.3f}", "min_max": _range(spread[key], "{:.3f}"),
                         "x_floor": f"{per[key] / per['floor']:.2f}",
                         "vs_lesson": f"{per['lesson'] / per[key]:.1f}x" if "lesson" in per else ""})
    rules = (len(rows) - 1,)
    if whole := numbers.get("whole_process"):
        notes.append(f"Whole process: {whole['model_epochs']} model-epochs, start-up and data loading included.")
        for name, speedup in (("compare", f"{whole['speedup']:.1f}x"), ("lesson", "1.0x")):
            rows.append({"training": f"{name}, whole process", "seconds": f"{whole[name + '_seconds']:.1f} s",
                         "min_max": _range(whole["spread"][name], "{:.1f}"), "x_floor": "", "vs_lesson": speedup})
    headers = {"training": "Training", "seconds": "s/model-\nepoch", "min_max": "min-max", "x_floor": "x floor",
               "vs_lesson": "vs\nlesson"}
    drops = {"min_max": 2, "x_floor": 1}  # the spread, then the ratio to the floor, before the speed-up
    columns = [Column(h, [r[k] for r in rows], drop=drops.get(k, 0), wrap=k == "training", left=k == "training")
               for k, h in headers.items()]
    return Listing(f"Benchmark: one epoch, batch 100, {numbers['device_name']}", columns, rows, notes, rules)


def breakdown_listing(numbers: dict) -> Listing:
    """One batched model-epoch part by part (``initbench bench --breakdown``): each part's
    seconds under the profiler, its share, its floor and how far above it."""
    total = numbers["profiled_seconds"]
    rows = [{"part": p["name"], "seconds": f"{p['seconds']:.3f}", "share": f"{p['seconds'] / total:.0%}",
             "floor": "" if p["floor"] is None else f"{p['floor']:.3f}",
             "x_floor": "" if not p["floor"] else f"{p['seconds'] / p['floor']:.1f}",
             "what": p["what"]} for p in numbers["breakdown"]]
    floors = sum(p["floor"] or 0.0 for p in numbers["breakdown"])
    rows.append({"part": "total", "seconds": f"{total:.3f}", "share": "100%", "floor": f"{floors:.3f}",
                 "x_floor": f"{total / floors:.1f}", "what": "under the profiler"})
    headers = {"part": "Part", "seconds": "s/model-\nepoch", "share": "share", "floor": "floor",
               "x_floor": "x floor", "what": "What it is"}
    drops = {"what": 2, "share": 1}
    columns = [Column(h, [r[k] for r in rows], drop=drops.get(k, 0), wrap=k == "what", left=k in ("part", "what"))
               for k, h in headers.items()]
    notes = [f"One epoch of {numbers['models']} models in one batched group on {numbers['train_images']:,} images, "
             f"profiled with torch.profiler: {total:.3f} s per model-epoch under the profiler, "
             f"{numbers['unprofiled_seconds']:.3f} s without it (median of {numbers['repeats']}).",
             "Floor: the part's work for all models in one call per step, no Python between (products and "
             "evaluation: the GEMM floor's); medians."]
    return Listing(f"Where a batched model-epoch goes, {numbers['device_name']}", columns, rows, notes,
                   (len(rows) - 2,))


def scaling_listing(numbers: dict) -> Listing:
    """The batched step at each model count: seconds, model-epochs per second, memory."""
    rows = [{"models": f"{r['models']:,}", "step": f"{r['seconds_per_step'] * 1000:,.1f}",
             "min_max": _range([s * 1000 for s in r["spread"]], "{:,.1f}"),
             "rate": f"{r['model_epochs_per_second']:,.2f}", "memory": f"{r['memory_bytes'] / 2**20:,.0f}",
             "per_model": f"{r['bytes_per_model'] / 2**20:.1f}"} for r in numbers["scaling"]]
    headers = {"models": "Models", "step": "ms/step", "min_max": "min-max", "rate": "model-\nepochs/s",
               "memory": "MiB", "per_model": "MiB/\nmodel"}
    drops = {"min_max": 3, "per_model": 2, "memory": 1}
    columns = [Column(h, [r[k] for r in rows], drop=drops.get(k, 0)) for k, h in headers.items()]
    notes = [f"Medians of {numbers['repeats']} interleaved repeats of one training step of the lesson's network "
             f"(batch 100); model-epochs/s = models / (step x {numbers['batches_per_epoch']} steps), evaluation "
             "not included. Memory: the models, gradients, Adam's moments and a step's buffers "
             + ("(CUDA's peak allocation)." if numbers["device"].startswith("cuda")
                else "(growth of resident memory).")]
    return Listing(f"Batched step by models per step, {numbers['device_name']}", columns, rows, notes)


def schemes_listing(rows: list[dict]) -> Listing:
    """One row per scheme: its name and, indented below it, its aliases (followed by "= what
    they equal" where that is more than the scheme itself), each name's convention beside it,
    and the formula over the reference. Names never wrap; the formulas take the width left."""
    names, conventions = [], []
    for row in rows:
        lines, follows = [row["usage"]], [row["convention"]]
        aliases = row["aliases"]
        for i, alias in enumerate(aliases):
            lines.append(f"  {alias['name']}")
            follows.append(alias["convention"])
            last_of_group = i + 1 == len(aliases) or aliases[i + 1]["equals"] != alias["equals"]
            if alias["equals"] != row["name"] and last_of_group:
                lines.append(f"    = {alias['equals']}")
                follows.append("")
        names.append("\n".join(lines))
        conventions.append("\n".join(follows))
    columns = [Column("Name", names, left=True), Column("Convention", conventions, left=True),
               Column("Formula / reference", [_described(r) for r in rows], wrap=True, left=True)]
    return Listing("Initialization schemes (aliases indented)", columns, rows)


def _described(row: dict) -> str:
    """The formula over the reference; a user's scheme (schemes.user) also says where it comes
    from, after its summary where its docstring has no Formula:/Reference: lines."""
    if row["origin"] == "initbench":
        return f"{row['formula']}\n{row['reference']}"
    return "\n".join([*([text for text in (row["formula"], row["reference"]) if text] or [row["summary"]]),
                      f"from {row['origin']}"])


# --- progress


BAR_WIDTH = 10  # so that, at 80 columns, a training line keeps its batch and its loss
COUNTED_WIDTH = len("42% eta 4:12")  # room kept for a counted stage's share and time left, at least


def shortened(text: str, width: int, kept: str = "") -> str:
    """``text``, and ``kept`` after it, in at most ``width`` characters. Parts go first, last
    first: those of ``text`` after ", " (the batch), then those in parentheses (which group
    of models), then ``kept`` (a training line's current loss, which the line promises),
    then those after ": " (the epoch); what is still too long is cut with "…"."""
    parts = _parts_of(text)
    for kind in (",", "(", None, ":"):  # None: ``kept``
        if kind is None:
            kept = kept if cell_len("".join(parts) + kept) <= width else ""
            continue
        for i in reversed(range(1, len(parts))):
            if cell_len("".join(parts) + kept) <= width:
                break
            if parts[i].lstrip().startswith(kind) or kind == ":" and parts[i].startswith(";"):
                del parts[i]
    text = "".join(parts) + kept
    return text if cell_len(text) <= width else text[:max(width - 1, 0)] + "…"


def _parts_of(text: str) -> list[str]:
    """``text`` cut before each ", ", ": ", "; " and " (" outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if depth == 0 and i > start and (text[i:i + 2] in (", ", ": ", "; ") or text[i:i + 2] == " ("):
            parts.append(text[start:i])
            start = i
        depth += (char == "(") - (char == ")")
    return parts + [text[start:]]


def counted(done: float, total: int, elapsed: float | None) -> str:
    """A counted stage's share done and the time left at its pace so far: "42% eta 4:12".
    The pace of the whole stage (evaluations and chunks' building included), not of the
    last seconds: an engine's steps come between pauses to evaluate."""
    share = f"{min(done / total, 1.0):.0%}" if total else "100%"
    if not done or not elapsed or done >= total:
        return share
    left = round(elapsed * (total - done) / done)
    hours, rest = divmod(left, 3600)
    return f"{share} eta " + (f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}")


class _Counted(ProgressColumn):
    """"42% eta 4:12" of a counted stage."""

    def render(self, task: Task) -> RenderableType:
        return Text("" if task.total is None else counted(task.completed, int(task.total), task.elapsed),
                    style="progress.remaining")


class Activity:
    """What a command is doing, on stderr: in a terminal, one line that updates (stage,
    models, epoch, batch, current loss, a bar and an ETA) and disappears when done;
    otherwise (logs, CI) one line per stage, and in training one per epoch with the share
    of the stage done and its ETA. ``quiet``: nothing."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console, self.quiet, self.live = console, quiet, console.is_terminal and not quiet
        self.bar: Progress | None = None
        self.total: int | None = None  # of the stage shown
        self.done, self.started = 0, 0.0  # its steps so far, and when it began (a log's ETA)
        self.last_line, self.loss_shown_at, self.loss = "", 0.0, ""

    @contextmanager
    def running(self) -> Iterator[Activity]:
        if not self.live:
            yield self
            return
        with Progress(*self._columns(), console=self.console, transient=True, expand=True) as self.bar:
            self.task = self.bar.add_task("", total=None)
            yield self
        self.bar = None

    def _columns(self) -> tuple[ProgressColumn, ...]:
        """The live line, as wide as the terminal: a spinner and what is being done, and for a
        counted stage a bar and "42% eta 4:12". Every column but the description has a fixed
        width, so that only the description gives way (rich would otherwise shrink every
        column, the time left too, when a line is too long)."""
        described = (SpinnerColumn(table_column=RichColumn(width=1, no_wrap=True)),
                     TextColumn("{task.description}", table_column=RichColumn(ratio=1, no_wrap=True,
                                                                             overflow="ellipsis")))
        if self.total is None:
            return described
        return (*described, BarColumn(bar_width=BAR_WIDTH, table_column=RichColumn(width=BAR_WIDTH, no_wrap=True)),
                _Counted(table_column=RichColumn(no_wrap=True)))

    def _line(self, text: str, kept: str = "") -> str:
        """``text`` as the live line has room for it: shortened by its last parts first, and
        ``kept`` (the current loss) after it (``shortened``)."""
        fixed = 2  # the spinner, and a space after it
        if self.bar is not None and self.total is not None:
            task = self.bar.tasks[0]
            now = counted(task.completed, self.total, task.elapsed)
            fixed += BAR_WIDTH + 1 + max(len(now) + 1, COUNTED_WIDTH) + 1  # room for the time left to grow a little
        return shortened(text, self.console.width - fixed, kept)

    def note(self, text: str) -> None:
        """A line that stays (above the progress line, in a terminal)."""
        if not self.quiet:
            self.console.print(text, style="dim", soft_wrap=True)

    def say(self, text: str) -> None:
        """A message that stays, as it is (a sweep's plan)."""
        if not self.quiet:
            self.console.print(text)

    def stage(self, text: str, total: int | None = None) -> None:
        """A new stage (``total``: its steps, for a bar and an ETA; None: a spinner)."""
        self.total, self.done, self.started = total, 0, time.monotonic()
        if self.bar is not None:
            self.bar.columns = self._columns()
            self.bar.reset(self.task, total=total)
            self.bar.update(self.task, description=self._line(text))
        elif total is None and text != self.last_line:  # a counted stage is told by its steps
            self.note(text)
        self.last_line = text

    def advance(self, steps: int = 1, text: str | None = None, kept: str = "") -> None:
        """``steps`` more of the stage done, and what is being done now: ``text`` (in a
        terminal, shortened to fit; in a log, a line where it changed, with the share done
        and the ETA), ``kept`` after it (the current loss: in a terminal only)."""
        if self.bar is not None:
            self.bar.update(self.task, advance=steps)
            if text is not None:
                self.bar.update(self.task, description=self._line(text, kept))
        elif text is not None and text != self.last_line:  # counted before ``steps``: where an epoch begins
            self.note(text if not self.done or not self.total else
                      f"{text} ({counted(self.done, self.total, time.monotonic() - self.started)})")
            self.last_line = text
        self.done += steps

    def tick(self, tick: Tick) -> None:
        """An engine's report: steps trained (model-batches), or a stage of its own."""
        where = f"Training {tick.models}: epoch {tick.epoch}/{tick.epochs}"
        if tick.stage == "training":
            now = time.monotonic()
            if tick.losses is not None and now - self.loss_shown_at > 0.5:  # reading a loss may wait on a GPU
                finite = tick.losses[tick.losses.isfinite()]
                self.loss = f", loss {finite.mean():.3f}" if len(finite) else ", diverged"
                self.loss_shown_at = now
            self.advance(tick.steps, f"{where}, batch {tick.batch}/{tick.batches}" if self.live else where, self.loss)
        else:
            self.advance(0, f"{tick.stage.capitalize()} {tick.models}"
                         + (f" after epoch {tick.epoch}/{tick.epochs}" if tick.epoch else ""))


class NotebookActivity(Activity):
    """Progress in a Jupyter notebook: one output updated in place (at most five times a
    second): the notes, and the current stage with a bar and an ETA, which goes when done."""

    def __init__(self) -> None:
        super().__init__(Console(file=io.StringIO()))  # never printed to: shown through IPython's display
        self.live = True  # an engine's ticks then say the batch and the loss
        self.lines: list[str] = []
        self.shown_at = 0.0
        self.handle: Any = None

    @contextmanager
    def running(self) -> Iterator[Activity]:
        from IPython.display import display

        self.handle = display(self._bundle(), raw=True, display_id=True)
        try:
            yield self
        finally:
            self.last_line = ""
            self._show(force=True)
            self.handle, self.lines = None, []  # the notes stay in this output, not in the next

    def note(self, text: str) -> None:
        self.lines.append(text)
        self._show(force=True)

    def say(self, text: str) -> None:
        self.note(text)

    def stage(self, text: str, total: int | None = None) -> None:
        self.last_line, self.total, self.done, self.started = text, total, 0, time.monotonic()
        self._show(force=True)

    def advance(self, steps: int = 1, text: str | None = None, kept: str = "") -> None:
        self.done += steps
        self.last_line = text + kept if text else self.last_line
        self._show()

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.handle is not None and (force or now - self.shown_at > 0.2):
            self.shown_at = now
            self.handle.update(self._bundle(), raw=True)

    def _bundle(self) -> dict[str, str]:
        """What the output shows, as text and as HTML (a <progress> bar)."""
        text, shown = list(self.lines), [escape(line) for line in self.lines]
        if self.last_line:
            bar, count = "", ""
            if self.total:
                count = " " + counted(self.done, self.total, time.monotonic() - self.started)
                bar = f'<progress value="{self.done}" max="{self.total}"></progress> '
            text.append(self.last_line + count)
            shown.append(bar + escape(self.last_line + count))
        return {"text/plain": "\n".join(text), "text/html": "<br>".join(shown)}
