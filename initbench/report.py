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
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
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
    wrap: bool = False  # long text that may wrap (never names or numbers)
    left: bool = False  # text is left-aligned; numbers are right-aligned


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
        console.print(_fitted(listing, console))


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


def _width(column: Column) -> int:
    """The narrowest a column can be: its longest line, or for wrapped text, its longest word."""
    text = [column.header, *column.cells]
    parts = [word for t in text for word in (t.split() if column.wrap else t.splitlines())]
    return max(len(part) for part in parts)


def _table(listing: Listing, columns: list[Column], notes: list[str]) -> Table:
    t = Table(title=listing.title, caption="\n".join(notes) or None, caption_justify="left",
              box=box.SIMPLE_HEAD if any(c.wrap for c in columns) else box.HEAVY_HEAD,
              show_lines=any(c.wrap for c in columns))
    for c in columns:
        t.add_column(c.header, justify="left" if c.left else "right", no_wrap=not c.wrap,
                     min_width=None if c.wrap else _width(c), ratio=1 if c.wrap else None)
    for i, cells in enumerate(zip(*(c.cells for c in columns))):
        t.add_row(*(Text(cell) for cell in cells), end_section=i in listing.rules_after)
    return t


def _fitted(listing: Listing, console: Console) -> Table:
    """The table with every column that fits the console's width; names and numbers are
    never cut, so lesser columns are left out instead, and a note says which."""
    columns, left_out = list(listing.columns), []
    while True:
        notes = listing.notes + ([f"Left out at this width: {', '.join(left_out)} "
                                  "(wider terminal, --format markdown, or the CSV files)."] if left_out else [])
        droppable = [c for c in columns if c.drop]
        needed = sum(_width(c) + 3 for c in columns) + 1  # a space either side and a border per column
        if needed <= console.width or not droppable:
            return _table(listing, columns, notes)
        dropped = max(droppable, key=lambda c: c.drop)
        columns.remove(dropped)
        left_out.insert(0, dropped.header.replace("\n", " "))


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
    columns = [Column("Run", [r.run for r in rows], left=True)] if "run" in summary else []
    columns += [
        Column("Scheme", [r.scheme for r in rows], left=True),
        Column("Validation\naccuracy", [_pct(r.val_acc_mean, r.val_acc_std) for r in rows]),
        Column("Test\naccuracy", [_pct(r.test_acc_mean, r.test_acc_std) for r in rows], drop=2),
        Column("Last batch\nloss", [_loss(r.last_batch_loss_mean) for r in rows], drop=1),
        Column("Last epoch\nloss", [_loss(r.last_epoch_loss_mean) for r in rows], drop=3),
    ]
    if summary["diverged_seeds"].any():
        columns.append(Column("Diverged\nseeds", [f"{r.diverged_seeds}/{r.seeds}" for r in rows]))
    notes = ["Loss: training cross-entropy on the last batch (the lesson's \"training loss\"), "
             "and its mean over the last epoch."]
    return Listing(title, columns, summary.to_dict("records"), notes)


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

    columns = [
        Column("File", [r["file"] for r in rows], left=True),
        Column("Scheme", [r["scheme"] for r in rows], left=True, drop=3),
        Column("Seed", ["" if r["seed"] is None else str(r["seed"]) for r in rows], drop=2),
        Column("Classes", [r["classes"] for r in rows], left=True, wrap=True, drop=4),
        Column("Val\nacc", pct("val_acc")),
        Column("Test\nacc", pct("test_acc")),
        Column("Recorded\nval acc", pct("recorded_val_acc"), drop=1),
        Column("Recorded\ntest acc", pct("recorded_test_acc"), drop=1),
        Column("Check", [r["check"] for r in rows], left=True, wrap=True),
        Column("File checked against", [r["integrity"] for r in rows], left=True, wrap=True),
    ]
    reproduced = sum(r["check"] == "reproduced" for r in rows)
    notes = [f"{reproduced} of {plural(len(rows), 'file')} scored exactly what was recorded in training."
             if reproduced else "No file had a recorded accuracy to check."]
    return Listing("Weights scored on the validation and test images of their split", columns, rows, notes)


def transfer_listing(comparison: pd.DataFrame, title: str) -> Listing:
    """Each start's validation accuracy and its paired difference to the best scratch scheme."""
    rows = comparison.to_dict("records")
    baseline = rows[0]["baseline"]
    columns = [
        Column("Start", [r["scheme"] for r in rows], left=True),
        Column("Validation accuracy", [_pct(r["val_acc_mean"], r["val_acc_std"]) for r in rows]),
        Column("Difference to\nbest scratch [95% CI]", [_difference(r) for r in rows]),
        Column("Verdict", [r["verdict"] for r in rows], left=True, wrap=True),
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
        Column("Test\naccuracy", [_pct(r["test_acc_mean"]) for r in rows], drop=1),
        Column("Difference to the\ncell's best [95% CI]", [_difference(r) for r in rows]),
        Column("Verdict", [r["verdict"] for r in rows], left=True, wrap=True),
    ]
    ends = [i for i in range(len(rows) - 1) if any(rows[i][k] != rows[i + 1][k] for k in varied)]
    notes = ["Differences in percentage points against the best scheme of the same cell, paired by seed "
             "(the same batches), with a t-interval over seeds; \"better\" or \"worse\" when the interval "
             "excludes 0."]
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
    columns = [Column(h, [r[k] for r in rows], left=k == "training") for k, h in headers.items()]
    return Listing(f"Benchmark: one epoch, batch 100, {numbers['device_name']}", columns, rows, notes, rules)


def scaling_listing(numbers: dict) -> Listing:
    """The batched step at each model count: seconds, model-epochs per second, memory."""
    rows = [{"models": f"{r['models']:,}", "step": f"{r['seconds_per_step'] * 1000:,.1f}",
             "min_max": _range([s * 1000 for s in r["spread"]], "{:,.1f}"),
             "rate": f"{r['model_epochs_per_second']:,.2f}", "memory": f"{r['memory_bytes'] / 2**20:,.0f}",
             "per_model": f"{r['bytes_per_model'] / 2**20:.1f}"} for r in numbers["scaling"]]
    headers = {"models": "Models", "step": "ms/step", "min_max": "min-max", "rate": "model-\nepochs/s",
               "memory": "MiB", "per_model": "MiB/\nmodel"}
    columns = [Column(h, [r[k] for r in rows]) for k, h in headers.items()]
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


class Activity:
    """What a command is doing, on stderr: in a terminal, one line that updates (stage,
    models, epoch, batch, current loss, a bar and an ETA) and disappears when done;
    otherwise (logs, CI) one line per stage. ``quiet``: nothing."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console, self.quiet, self.live = console, quiet, console.is_terminal and not quiet
        self.bar: Progress | None = None
        self.last_line, self.loss_shown_at, self.loss = "", 0.0, ""

    @contextmanager
    def running(self) -> Iterator[Activity]:
        if not self.live:
            yield self
            return
        columns = (SpinnerColumn(), TextColumn("{task.description}", table_column=RichColumn(ratio=1, no_wrap=True)),
                   BarColumn(bar_width=12), TaskProgressColumn(), TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=True) as self.bar:
            self.task = self.bar.add_task("", total=None)
            yield self
        self.bar = None

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
        if self.bar is not None:
            self.bar.reset(self.task, total=total, description=text)
        elif total is None and text != self.last_line:  # a counted stage is told by its steps
            self.note(text)
        self.last_line = text

    def advance(self, steps: int = 1, text: str | None = None) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=steps, description=text)
        elif text is not None and not self.quiet:
            self.stage(text)

    def tick(self, tick: Tick) -> None:
        """An engine's report: steps trained (model-batches), or a stage of its own."""
        where = f"Training {tick.models}: epoch {tick.epoch}/{tick.epochs}"
        if tick.stage == "training":
            now = time.monotonic()
            if tick.losses is not None and now - self.loss_shown_at > 0.5:  # reading a loss may wait on a GPU
                finite = tick.losses[tick.losses.isfinite()]
                self.loss = f", loss {finite.mean():.3f}" if len(finite) else ", diverged"
                self.loss_shown_at = now
            live = f"{where}, batch {tick.batch}/{tick.batches}{self.loss}"
            self.advance(tick.steps, live if self.live else where)
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
        self.total: int | None = None
        self.done, self.started, self.shown_at = 0, 0.0, 0.0
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

    def advance(self, steps: int = 1, text: str | None = None) -> None:
        self.done += steps
        self.last_line = text or self.last_line
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
            bar, counted = "", ""
            if self.total:
                left = (time.monotonic() - self.started) * (self.total - self.done) / max(self.done, 1)
                counted = f" {self.done / self.total:.0%}, eta {int(left) // 60}:{int(left) % 60:02d}"
                bar = f'<progress value="{self.done}" max="{self.total}"></progress> '
            text.append(self.last_line + counted)
            shown.append(bar + escape(self.last_line + counted))
        return {"text/plain": "\n".join(text), "text/html": "<br>".join(shown)}
