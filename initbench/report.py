"""What a person sees: the progress bar, the table, the loss-curve pictures.

matplotlib is imported inside the plotting functions: it costs start-up time
that a run only pays once it has results to draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, tight: bool = True) -> None:
    """``tight``: fit the margins to the labels (an extra drawing pass: a tenth of a second)."""
    if tight:
        fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    _pyplot().close(fig)


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


def plot_weight_histograms(weights: dict[str, list], path: Path) -> None:
    """The initial weights of each layer (columns) for each scheme (rows)."""
    plt = _pyplot()
    n_layers = max(len(w) for w in weights.values())
    fig, axes = plt.subplots(len(weights), n_layers, figsize=(2.6 * n_layers + 1, 2.0 * len(weights) + 0.6),
                             squeeze=False)
    for row, (scheme, layers) in zip(axes, weights.items()):
        for i, (ax, w) in enumerate(zip(row, layers)):
            values = w.flatten()
            finite = values[torch.isfinite(values)].double().numpy()  # float64: a float32 range can overflow
            if len(finite):
                low, high = finite.min(), finite.max()
                pad = 0 if high > low else max(0.5, abs(low) / 100)  # one value: a bar of some width
                ax.hist(finite, bins=50, range=(low - pad, high + pad), color="tab:blue")
            left_out = "" if len(finite) == len(values) else f" ({len(values) - len(finite)} non-finite left out)"
            ax.set_yticks([])
            ax.tick_params(labelsize=7)
            ax.set_title(f"{scheme}, layer {i + 1}{left_out}", fontsize=8)
    fig.suptitle("Initial weights per layer")
    _save(fig, path)


def plot_layer_profile(stats: pd.DataFrame, path: Path, title: str) -> None:
    """Output std and weight-gradient norm per layer, one line per scheme (mean over seeds);
    with an ``epoch`` column, dashed at init and solid after the last epoch."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    epochs = sorted(stats["epoch"].unique()) if "epoch" in stats else [None]
    shown = [epochs[0], epochs[-1]] if len(epochs) > 1 else epochs
    for column, ax, label in zip(("act_std", "grad_norm"), axes, ("Output std", "Weight-gradient norm")):
        for k, (scheme, s) in enumerate(stats.groupby("scheme", sort=False)):
            for epoch in shown:
                part = s if epoch is None else s[s["epoch"] == epoch]
                mean = part.groupby("layer")[column].mean()
                mean = mean[np.isfinite(mean.values)]  # an overflowed layer is flagged, not drawn
                style = "--" if epoch == 0 and len(shown) > 1 else "-"
                name = scheme if epoch is None else f"{scheme}, {'init' if epoch == 0 else f'epoch {epoch}'}"
                ax.plot(mean.index, mean.values, style, marker="o", markersize=3, color=f"C{k}", label=name)
        ax.set_yscale("symlog", linthresh=1e-6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="Layer", ylabel=label + " (symlog: 0 is drawn at 0)", title=label)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle(title)
    _save(fig, path)


def _curves(losses: pd.DataFrame, n_batches: int) -> pd.DataFrame:
    """Per scheme and global batch number: mean, min and max of the loss over seeds."""
    steps = losses.assign(step=(losses["epoch"] - 1) * n_batches + losses["batch"])
    return steps.groupby(["scheme", "step"], sort=False)["loss"].agg(["mean", "min", "max"]).reset_index()


OFF_SCALE = 10.0  # a curve peaking this many times above the lowest peak is left off the linear scale


def plot_losses(losses: pd.DataFrame, path: Path, n_batches: int, first: int | None, title: str) -> None:
    """One line per scheme (mean over seeds, band from min to max when seeds > 1).

    ``first`` batches on a linear axis, as in the lesson; a scheme whose loss is
    far above the others' (``ones`` reaches the thousands) would flatten every
    other curve, so the axis is fitted to the rest and the legend gives its peak.
    With ``first=None``, the whole run on a log axis with epoch boundaries marked.
    """
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    curves = _curves(losses, n_batches)
    if first is not None:
        curves = curves[curves["step"] <= first]
    several_seeds = losses.groupby("scheme")["seed"].nunique().max() > 1
    peaks = curves.groupby("scheme", sort=False)["mean"].max()
    off_scale = (peaks > OFF_SCALE * peaks.min()) & (first is not None)  # only the linear plot fits its axis
    # Fixed margins (the labels' sizes are known), so that saving draws the figure only once.
    fig, ax = plt.subplots(figsize=(10, 6), gridspec_kw=dict(left=0.085, right=0.98, top=0.94, bottom=0.085))
    for scheme, c in curves.groupby("scheme", sort=False):
        label = f"{scheme} (off scale, peak {peaks[scheme]:,.0f})" if off_scale[scheme] else scheme
        (line,) = ax.plot(c["step"], c["mean"], label=label, linewidth=1.2 if first else 0.8)
        if several_seeds:
            ax.fill_between(c["step"], c["min"], c["max"], color=line.get_color(), alpha=0.2, linewidth=0)
    if first is None:
        ax.set_yscale("log")
        # Plain numbers (0.1, 1, 10) rather than typeset powers of ten: clearer, and cheaper to draw.
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        for epoch_end in range(n_batches, int(curves["step"].max()), n_batches):
            ax.axvline(epoch_end + 0.5, color="grey", linestyle=":", linewidth=1)
    elif off_scale.any():
        on_scale = curves[curves["scheme"].isin(peaks.index[~off_scale])]
        ax.set_ylim(0, 1.05 * on_scale["max"].max())
    ax.set(title=title, xlabel="Batch", ylabel="Training loss (cross-entropy)")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path, tight=False)
