"""What a person reads in the terminal: the progress bar and the tables.

The pictures are drawn by ``initbench.pictures``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


@contextmanager
def progress(total: int, description: str, console: Console, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar over ``total`` batches; yields the function that advances it."""
    if not enabled:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _right_align(t: Table) -> Table:
    """Numbers right-aligned: every column but the first."""
    for column in t.columns[1:]:
        column.justify = "right"
    return t


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:.2f}%" + ("" if math.isnan(std) else f" ± {100 * std:.2f}")


def table(summary: pd.DataFrame, epochs: int, lesson_eval: bool = False) -> Table:
    """The lesson's "After 2 Epochs" table, best validation accuracy first."""
    seeds = int(summary["seeds"].max())
    title = (f"After {plural(epochs, 'epoch')}" + (f" (mean ± std over {seeds} seeds)" if seeds > 1 else "")
             + (", scored with dropout on (--lesson-eval)" if lesson_eval else ""))
    columns = ["Scheme", "Validation accuracy", "Test accuracy", "Training loss", "Mean loss, last epoch"]
    any_diverged = summary["diverged"].any()
    t = _right_align(Table(*columns, *(["Diverged"] if any_diverged else []), title=title))
    for row in summary.itertuples():
        t.add_row(row.scheme, _pct(row.val_acc_mean, row.val_acc_std), _pct(row.test_acc_mean, math.nan),
                  f"{row.final_batch_loss_mean:.3f}", f"{row.train_loss_mean:.3f}",
                  *([f"{row.diverged}/{row.seeds}"] if any_diverged else []))
    return t


def _range(low_high: tuple[float, float], fmt: str) -> str:
    return f"{fmt.format(low_high[0])}-{fmt.format(low_high[1])}"


def bench_table(numbers: dict) -> Table:
    """Seconds per model-epoch of each way of training, the spread over the repeats, and
    the ratios the targets use; labels short enough for 80 columns."""
    per, spread = numbers["seconds_per_model_epoch"], numbers["spread"]
    caption = f"Medians of {len(numbers['samples']['floor'])} interleaved repeats."
    if whole := numbers.get("whole_process"):
        caption += f" Whole process: {whole['model_epochs']} model-epochs, start-up and data loading included."
    t = _right_align(Table("Training", "s/model-epoch", "min-max", "x floor", "vs lesson",
                           title=f"Benchmark: one epoch, batch 100, {numbers['device_name']}", caption=caption))
    names = {"floor": "GEMM floor", "batched": f"batched, {numbers['models_in_batched_step']} models",
             "sequential": "sequential", "lesson": "lesson pipeline"}
    for key, label in names.items():
        if key in per:
            speedup = f"{per['lesson'] / per[key]:.1f}x" if "lesson" in per else ""
            t.add_row(label, f"{per[key]:.3f}", _range(spread[key], "{:.3f}"), f"{per[key] / per['floor']:.2f}",
                      speedup)
    if whole:
        t.add_section()
        for name, speedup in (("compare", f"{whole['speedup']:.1f}x"), ("lesson", "1.0x")):
            t.add_row(f"{name}, whole process", f"{whole[name + '_seconds']:.1f} s",
                      _range(whole["spread"][name], "{:.1f}"), "", speedup)
    return t


def schemes_table(rows: list[dict]) -> Table:
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
        names.append(lines)
        conventions.append(follows)
    t = Table(title="Initialization schemes (aliases indented)", show_lines=True, box=box.SIMPLE_HEAD)
    t.add_column("Name", no_wrap=True)
    t.add_column("Convention", no_wrap=True)
    t.add_column("Formula / reference", overflow="fold", ratio=1)
    for row, lines, follows in zip(rows, names, conventions):
        text = f"{escape(row['formula'])}\n[dim]{escape(row['reference'])}[/dim]"
        t.add_row("\n".join(lines), "\n".join(follows), text)
    return t


def inspect_table(scheme: str, rows: list[dict[str, float]], found: list[str]) -> Table:
    """One scheme's per-layer statistics at init, with what they mean in the caption."""
    t = Table("Layer", "Units", "W mean", "W std", "Out mean", "Out std", "Dead", "Grad norm", "Distinct",
              title=f"{scheme} at init",
              caption="\n".join(found) if found else "nothing wrong found", caption_justify="left")
    for r in rows:
        t.add_row(str(r["layer"]), str(r["units"]), f"{r['weight_mean']:.2g}", f"{r['weight_std']:.2g}",
                  f"{r['act_mean']:.2g}", f"{r['act_std']:.2g}", f"{100 * r['dead_fraction']:.0f}%",
                  f"{r['grad_norm']:.2g}", str(r["distinct_units"]))
    return t
