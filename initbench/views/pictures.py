"""The pictures a run writes: loss curves, per-layer profiles, weight histograms.

A scheme has one colour and line in every picture of every run (``STYLES``), so
that a reader who has learnt that ``rule`` is red in one picture finds it red in
the next; within a picture each scheme also has a marker of its own, and no two
look alike (``styles``). Every scheme asked for is drawn: one far above the
others' loss, in a log panel above the linear one. Each plotting function saves
its picture (given a path) and returns the figure, for tests to read and
notebooks to show.

matplotlib is imported inside the plotting functions: it costs start-up time
that a run only pays once it has results to draw.
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from initbench import initializers
from initbench.errors import InitbenchError
from initbench.words import plural

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

    from initbench.tasks import Task

# Matplotlib's tab10, whose ten colours stay apart from each other (and for most colour-blind
# readers), and black for PyTorch's default, the usual reference.
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
         "#17becf")
BLUE, ORANGE, GREEN, RED, PURPLE, BROWN, PINK, GREY, OLIVE, CYAN = TAB10
BLACK = "#000000"
DASHES = ("-", "--", ":", "-.")
# Each scheme's colour and line, by base name (an alias takes its scheme's). Schemes drawn
# together differ in colour: the lesson's seven; rule, default, xavier_normal, kaiming_normal,
# lsuv and orthogonal; Keras's glorot, he and lecun schemes. A Keras scheme shares the colour
# of its PyTorch counterpart (he_normal kaiming_normal's), not its line; default is dashed, so
# that over a curve it follows closely (rule's) both stay visible.
STYLES = {
    "zeros": (BLUE, "-"), "ones": (ORANGE, "-"), "uniform": (GREEN, "-"), "rule": (RED, "-"),
    "normal": (PURPLE, "-"), "default": (BLACK, "--"), "centered": (GREY, "-"), "constant": (BROWN, ":"),
    "xavier_uniform": (PINK, "-"), "xavier_normal": (OLIVE, "-"), "glorot_normal": (OLIVE, "--"),
    "kaiming_uniform": (BROWN, "-"), "kaiming_normal": (CYAN, "-"), "he_uniform": (BROWN, "--"),
    "he_normal": (CYAN, "--"), "lecun_uniform": (BLUE, "--"), "lecun_normal": (PURPLE, "--"),
    "orthogonal": (GREY, "-."), "trunc_normal": (PURPLE, ":"), "sparse": (GREY, ":"), "lsuv": (ORANGE, "--"),
    "fixup": (RED, "--"), "skipinit": (GREEN, "--"), "pretrained": (BLUE, "-."),
}
COLOURS = {name: c for name, (c, _) in STYLES.items()}
PALETTE = (*TAB10, BLACK)  # a scheme not in the table takes one by its name's hash
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p")
DPI = 110


def _subplots(*shape: int, figsize: tuple[float, float], layout: str, **options: Any) -> tuple[Figure, Any]:
    """A figure and its axes, made without pyplot: no backend is chosen (a notebook keeps its
    own) and no figure stays open in pyplot's list."""
    fig = _picture_class()(figsize=figsize, layout=layout)
    return fig, fig.subplots(*shape, **options)


@functools.cache
def _picture_class() -> type[Figure]:
    from matplotlib.figure import Figure

    class Picture(Figure):
        """A figure that a notebook shows (as the PNG a run writes), whatever matplotlib's backend."""

        def _repr_png_(self) -> bytes:
            png = io.BytesIO()
            self.savefig(png, format="png", dpi=DPI)
            return png.getvalue()

    return Picture


def _save(fig: Figure, path: Path | None) -> Figure:
    """Figures are made with layout="constrained": the margins fit the labels and a legend outside the axes.
    Saved as a PNG where a path is given."""
    if path is not None:
        fig.savefig(path, format="png", dpi=DPI)
    return fig


def _base(scheme: str) -> str:
    """The registered scheme a name stands for, without parameters: HeNormal -> he_normal."""
    try:
        return initializers.get(scheme).name.partition(":")[0]
    except InitbenchError:  # not a scheme this version knows (an old run's CSV): its part before ":"
        return scheme.partition(":")[0]


def short(scheme: str) -> str:
    """A scheme as a picture names it: a file scheme by its file's name, not its whole path."""
    base, _, rest = scheme.partition(":")
    return f"{base}:{Path(rest).name}" if rest and ("/" in rest or "\\" in rest) else scheme


def colour(scheme: str) -> str:
    """The scheme's colour, whatever else a picture shows and in whatever order."""
    base = _base(scheme)
    if base in COLOURS:
        return COLOURS[base]
    # hashlib, not hash(): hash() of a string changes from one process to the next.
    return PALETTE[int.from_bytes(hashlib.sha256(base.encode()).digest()[:4], "big") % len(PALETTE)]


@dataclass(frozen=True)
class Style:
    """How one picture draws a scheme: its colour, its line and its marker."""

    color: str
    dash: str
    marker: str

    @property
    def zorder(self) -> float:
        """Broken lines over solid ones: a dashed curve over a solid one it follows shows both."""
        return 2.0 if self.dash == "-" else 2.2


def styles(names: Iterable[str]) -> dict[str, Style]:
    """Each scheme's style in one picture: its own colour and line (``STYLES``), and a marker
    of its own. A name the table does not know (a user's scheme, a transfer start) takes a
    colour no other scheme of the picture has, while there is one. Two schemes that would
    still look alike (xavier_normal:1 and xavier_normal:2) keep the colour and take another
    line. Decided on the sorted names, the table's schemes first, so that neither the order
    they were given in nor a name the table does not know changes a known scheme's look."""
    ordered = sorted(set(names))
    known = [name for name in ordered if _base(name) in STYLES]
    used = {STYLES[_base(name)][0] for name in known}
    own = {name: STYLES[_base(name)] for name in known}
    for name in ordered:
        if name not in own:
            start = PALETTE.index(colour(name))
            free = [c for c in PALETTE[start:] + PALETTE[:start] if c not in used]
            own[name] = (free[0] if free else colour(name), "-")
            used.add(own[name][0])
    taken: set[tuple[str, str]] = set()
    chosen: dict[str, tuple[str, str]] = {}
    for name in known + [n for n in ordered if n not in known]:  # each that can keep its own line
        if own[name] not in taken:
            chosen[name] = own[name]
            taken.add(own[name])
    for name in ordered:
        if name not in chosen:
            color, dash = own[name]
            start = DASHES.index(dash)
            free = [d for d in DASHES[start:] + DASHES[:start] if (color, d) not in taken]
            chosen[name] = (color, free[0] if free else dash)
            taken.add(chosen[name])
    return {name: Style(*chosen[name], MARKERS[i % len(MARKERS)]) for i, name in enumerate(ordered)}


def _plain_log_ticks(axis: Axis, low: float, high: float, linthresh: float | None = None) -> None:
    """Numbers rather than typeset powers of ten, in one format on the whole axis
    (``_log_ticks``); when the values (``low`` to ``high``) span few decades, ticks between
    the powers of ten are labelled too, or an axis from 0.3 to 0.9 would carry no label at
    all. ``linthresh``: of a symlog axis, whose own ticks crowd its 0 with ticks in the
    linear stretch (and has no minor ones): its ticks are 0 and from linthresh up."""
    from matplotlib.ticker import FixedLocator, LogLocator

    decades = math.log10(high / low)
    step = 0.5 if decades < 0.5 else 1.0  # 0.35, 0.4, 0.45 on an axis from 0.32 to 0.5
    subs = np.arange(1 + step, 10, step)
    # Fewer labels the more decades share the axis, so that they do not collide.
    labelled = set(subs) if decades < 0.7 else {2, 3, 5} if decades < 1.5 else {2, 5} if decades < 3 else set()
    if linthresh is None:
        axis.set_minor_locator(LogLocator(subs=subs))
    else:
        powers = [10.0 ** k for k in range(math.floor(math.log10(linthresh)), math.ceil(math.log10(high)) + 2)]
        axis.set_major_locator(FixedLocator([0.0] + [p for p in powers if p >= 0.999 * linthresh], nbins=12))
        axis.set_minor_locator(FixedLocator([m * p for p in powers for m in subs if m * p >= 0.999 * linthresh]))
    axis.set_major_formatter(_log_ticks(axis, linthresh))
    axis.set_minor_formatter(_log_ticks(axis, linthresh, labelled))
    axis.set_tick_params(which="minor", labelsize=8)


PLAIN = (1e-4, 1e6)  # an axis within these is labelled 0.001, 0.5, 1, 1,000, 100,000; others 1e-5, 1e0, 1e5


def _log_ticks(axis: Axis, linthresh: float | None, labelled: set[float] | None = None) -> Any:
    """Tick labels of a log axis in one format, chosen at drawing time from the whole axis
    shown: plain numbers (0.001, 1, 1,000, 100,000) where every tick lies within ``PLAIN``,
    otherwise powers of ten in one notation (1e-5, 1e0, 1e5) rather than a mix of 10000 and
    1e5. ``labelled``: of minor ticks, the mantissas that get a label (2 and 5: 20, 50)."""
    from matplotlib.ticker import FuncFormatter

    def text(v: float, _: Any) -> str:
        if v <= 0:
            return "0" if v == 0 and labelled is None else ""
        if labelled is not None:
            mantissa = round(v / 10 ** math.floor(math.log10(v) + 1e-9), 6)
            if mantissa not in labelled:
                return ""
        low, high = sorted(axis.get_view_interval())
        low = linthresh if linthresh is not None and low <= linthresh else low
        plain = PLAIN[0] * 0.999 <= max(low, 1e-300) and high <= PLAIN[1] * 1.001
        return _number(v, plain)

    return FuncFormatter(text)


def _number(v: float, plain: bool = True) -> str:
    """A tick of a log axis: 0.01, 0.5, 1, 1,000 (``plain``), or 1e-2, 5e-1, 1e0, 1e3."""
    if v == 0:
        return "0"
    if plain:
        return f"{round(v):,}" if v >= 1 and v == round(v) else f"{v:,.6g}"
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _log_scale(ax: Axes, values: np.ndarray) -> bool:
    """A log y axis fitted to ``values`` (finite, >= 0). A 0 cannot sit on a log axis:
    if there is one, a short linear stretch at the bottom holds it, ending a little
    below the smallest value above 0, so no decade is left empty. Returns whether
    a 0 is drawn."""
    positive = values[values > 0]
    low, high = (positive.min(), positive.max()) if len(positive) else (1.0, 10.0)
    if len(positive) == len(values):
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis, low, high)
        return False
    below = 0.8 * low  # a round number a little below the smallest value: 1, 2 or 5 times a power of ten
    power = 10 ** math.floor(math.log10(below))
    linthresh = max(m * power for m in (1, 2, 5) if m * power <= below)
    # The stretch from 0 to linthresh as tall as half a decade, or more on an axis of many
    # decades, where half a decade would crowd the 0 against the next label.
    ax.set_yscale("symlog", linthresh=linthresh, linscale=max(0.5, math.log10(high / linthresh) / 6))
    _plain_log_ticks(ax.yaxis, linthresh, high, linthresh)
    ax.set_ylim(-0.1 * linthresh, None)  # 0 a little above the frame, its markers whole
    return True


def plot_weight_histograms(weights: dict[str, list], path: Path | None) -> Figure:
    """The initial weights of each layer (columns) for each scheme (rows). A column
    shares its x range, so that the schemes' scales can be compared: the lesson's point."""
    import torch  # the weights are tensors: only inspect draws them (report reads CSVs, without torch)
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    n_layers = max(len(w) for w in weights.values())
    # float64: a float32 range can overflow; non-finite values are left out (and counted).
    finite = {scheme: [w.flatten()[torch.isfinite(w.flatten())].double().numpy() for w in layers]
              for scheme, layers in weights.items()}
    limits = [_shared_range([f[i] for f in finite.values() if i < len(f)]) for i in range(n_layers)]
    fig, axes = _subplots(len(weights), n_layers, figsize=(2.8 * n_layers + 0.4, 1.9 * len(weights) + 1.0),
                             squeeze=False, layout="constrained")
    for row, (scheme, layers) in zip(axes, weights.items()):
        for i, (ax, w) in enumerate(zip(row, layers)):
            values = finite[scheme][i]
            narrow = _histogram(ax, values, limits[i], colour(scheme))
            left_out = w.numel() - len(values)
            note = (f"\n({left_out} non-finite left out)" if left_out else "") + (
                "\n(too narrow to see at this scale)" if narrow else "")
            ax.set_title(f"{short(scheme)}, layer {i + 1}: {_spread(values)}{note}", fontsize=8)
            ax.set_xlim(limits[i])
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
            ax.yaxis.set_major_locator(MaxNLocator(3, integer=True))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"))
            ax.tick_params(labelsize=7)
        for ax in row[len(layers):]:
            ax.axis("off")
    fig.suptitle("Initial weights per layer\n"
                 "x: weight value, one range per layer (column), so widths can be compared; y: weights per bin",
                 fontsize=10)
    return _save(fig, path)


def _shared_range(columns: list[np.ndarray]) -> tuple[float, float]:
    """One layer's x range over every scheme, with a margin; some width when it is one value."""
    values = [v for v in columns if len(v)]
    if not values:
        return -1.0, 1.0
    low, high = min(v.min() for v in values), max(v.max() for v in values)
    pad = 0.03 * (high - low) if high > low else max(0.5, abs(low) / 100)
    return low - pad, high + pad


def _histogram(ax: Axes, values: np.ndarray, limits: tuple[float, float], color: str) -> bool:
    """Bins a hundredth of the shared range wide, so that a column's counts compare; one
    value, or values too close together to be seen at the shared scale (rule beside
    normal:1e38), get one bar that wide. Returns whether the values were too close
    together (but not all the same) to draw their shape."""
    if not len(values):
        return False
    low, high = values.min(), values.max()
    bar = (limits[1] - limits[0]) / 100
    if high - low >= bar:
        ax.hist(values, bins=round((high - low) / bar), range=(low, high), color=color)
        return False
    middle = (low + high) / 2
    ax.hist(values, bins=1, range=(middle - bar / 2, middle + bar / 2), color=color)
    return high > low


def _spread(values: np.ndarray) -> str:
    """What a panel's width means in numbers: "std 0.029", or "all 1" for one value."""
    if not len(values):
        return "nothing finite"
    if values.min() == values.max():
        return f"all {values[0]:.3g}"
    return f"std {values.std():.2g}"


# column: what layer_profile draws of it (the first two unless told otherwise)
PROFILE = {"act_std": "Output std", "grad_norm": "Weight-gradient norm", "backprop_std": "Back-propagated gradient std",
           "residual_std": "Residual stream std", "grad_std": "Its gradient's std (backward)"}


def plot_signal(signal: pd.DataFrame, path: Path | None) -> Figure:
    """A gpt's residual stream at init, block by block: its std forward and its gradient's backward."""
    return plot_layer_profile(signal.rename(columns={"block": "layer"}), path,
                              "A gpt's residual stream at init, after each block", ("residual_std", "grad_std"),
                              along="Block")


def plot_layer_profile(stats: pd.DataFrame, path: Path | None, title: str,
                       columns: tuple[str, str] = ("act_std", "grad_norm"), along: str = "Layer") -> Figure:
    """Two statistics per layer (of PROFILE: by default output std and weight-gradient norm),
    one line per scheme (mean over seeds); with an ``epoch`` column, dashed at init and solid
    after the last epoch. ``along``: what the rows are (a gpt's blocks)."""
    from matplotlib.lines import Line2D

    epochs = sorted(stats["epoch"].unique()) if "epoch" in stats else [None]
    shown = [epochs[0], epochs[-1]] if len(epochs) > 1 else epochs
    style = styles(stats["scheme"])
    fig, axes = _subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    for column, ax in zip(columns, axes):
        _profile_panel(ax, stats, column, shown, style, along)
    # An overflowed layer is flagged by inspect's table, and named here rather than drawn.
    overflowed = stats[~np.isfinite(stats[list(columns)]).all(axis=1)].groupby("scheme")["layer"].unique()
    handles = [Line2D([], [], color=style[s].color, marker=style[s].marker, markersize=4,
                      label=short(s) if s not in overflowed else
                      f"{short(s)} (non-finite, not drawn: layer{'s' * (len(overflowed[s]) > 1)} "
                      f"{', '.join(map(str, overflowed[s]))})")
               for s in stats["scheme"].unique()]
    if len(shown) > 1:
        handles += [Line2D([], [], color="black", linestyle="--", label="at init"),
                    Line2D([], [], color="black", label=f"after epoch {shown[-1]}")]
    seeds = stats["seed"].nunique() if "seed" in stats else 1
    fig.legend(handles=handles, loc="outside right upper", fontsize=8,
               title=f"lines: means over {seeds} seeds" if seeds > 1 else None, title_fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def _profile_panel(ax: Axes, stats: pd.DataFrame, column: str, shown: list[int | None],
                   style: dict[str, Style], along: str = "Layer") -> None:
    """One statistic per layer, a line per scheme and shown epoch, on a log axis."""
    label = PROFILE[column]
    drawn = []
    groups = list(stats.groupby("scheme", sort=False))
    for i, (scheme, s) in enumerate(groups):
        under = 1 - i / max(len(groups) - 1, 1)  # 1 for the first drawn (underneath), 0 for the last (on top)
        for epoch in shown:
            part = s if epoch is None else s[s["epoch"] == epoch]
            mean = part.groupby("layer")[column].mean()
            mean = mean[np.isfinite(mean.values)]
            # A curve drawn earlier is wider, so that one drawn over it exactly (rule and default
            # at init) leaves it showing on both sides.
            ax.plot(mean.index, mean.values, "--" if epoch == 0 and len(shown) > 1 else "-",
                    marker=style[scheme].marker, markersize=4 + 2.5 * under, linewidth=1.2 + 1.3 * under,
                    color=style[scheme].color)
            drawn.append(mean.values)
    zero_drawn = _log_scale(ax, np.concatenate(drawn))
    layers = sorted(stats["layer"].unique())
    ax.set_xticks(layers, [f"{n}\n(logits)" if n == layers[-1] and along == "Layer" else str(n) for n in layers])
    ax.set(xlabel=along, title=label,
           ylabel=label + (" (log scale; exactly 0 at the bottom)" if zero_drawn else " (log scale)"))
    ax.grid(alpha=0.3)


OFF_SCALE = 10.0  # a curve peaking this many times above the lowest peak is left off the linear scale
MARKS = 8  # markers along a curve: where curves overlap, each one's markers still show it


def plot_losses(losses: pd.DataFrame, path: Path | None, first: int | None, n_batches: int | None, outputs: int,
                task: Task) -> Figure:
    """One line per scheme (mean over seeds, band from min to max when seeds > 1),
    and the loss of a uniform guess (chance), where a model that learns nothing sits.

    ``first`` batches on a linear axis, as in the lesson; a scheme whose loss is
    far above the others' (``ones`` reaches the thousands) would flatten every
    other curve, so the axis is fitted to the rest, and those schemes are drawn
    in a panel above it on a log axis (the legend gives their peak): every scheme
    is drawn. With ``first=None``, the whole run on a log axis with epoch
    boundaries marked. ``n_batches``: batches per epoch (by default the largest
    batch number drawn, which falls short only when every model diverged in the
    first epoch). ``outputs``: how many classes the models tell apart (the task's
    ``chance_loss`` of that is where a model that learns nothing sits).

    Each scheme has its colour, line and markers (``styles``), so that curves that
    overlap (rule and default) stay visible; broken lines are drawn over solid ones.
    """
    from matplotlib.ticker import MaxNLocator

    n_batches = n_batches or int(losses["batch"].max())
    epochs = int(losses["epoch"].max())
    curves = _curves(losses, n_batches)
    if first is not None:
        curves = curves[curves["step"] <= first]
    drawn = int(curves["step"].max())
    diverged = _diverged(losses, n_batches)
    if first is None:
        title = f"Training loss over {plural(epochs, 'epoch')} ({plural(drawn, 'batch', 'batches')}, log scale)"
    elif drawn < first and not diverged:  # the whole run, shorter than the batches asked for
        title = f"Training loss over all {plural(drawn, 'batch', 'batches')} ({plural(epochs, 'epoch')})"
    else:
        title = f"Training loss over the first {plural(drawn, 'batch', 'batches')}"
    seeds = losses["seed"].nunique()
    peaks = curves.groupby("scheme", sort=False)["mean"].max()
    off_scale = (peaks > OFF_SCALE * peaks.min()) & (first is not None)  # only the linear plot fits its axis
    style = styles(peaks.index)
    fig = _picture_class()(figsize=(10, 6.6 if off_scale.any() else 6), layout="constrained")
    if off_scale.any():  # the linear panel first (fig.axes[0]), the log one above it
        grid = fig.add_gridspec(2, 1, height_ratios=(1, 2.4))
        ax = fig.add_subplot(grid[1])
        above = fig.add_subplot(grid[0], sharex=ax)
    else:
        ax, above = fig.subplots(), None
    spacing = max(drawn // MARKS, len(peaks), 1)  # each curve's markers at other batches than the others
    handles = []
    for i, (scheme, c) in enumerate(curves.groupby("scheme", sort=False)):
        notes = [f"peak {peaks[scheme]:,.0f}, above"] if off_scale[scheme] else []
        notes += [diverged[scheme]] if scheme in diverged else []
        look = style[scheme]
        few = c["mean"].notna().sum() < 5  # a point or two: seen
        # A curve drawn earlier is wider: one drawn over it exactly (two starts that differ only later)
        # leaves it showing on both sides.
        under = 1 - i / max(len(peaks) - 1, 1)
        line_options = dict(color=look.color, linestyle=look.dash, linewidth=(1.2 if first else 0.8) * (1 + under),
                            marker=look.marker, markersize=3 if few else 4.5, zorder=look.zorder,
                            markevery=None if few else (i * spacing // len(peaks), spacing),
                            label=f"{short(scheme)} ({'; '.join(notes)})" if notes else short(scheme))
        handles.append(ax.plot(c["step"], c["mean"], **line_options)[0])
        if seeds > 1 and not off_scale[scheme]:  # an off-scale band would only poke in at the edge
            ax.fill_between(c["step"], c["min"], c["max"], color=look.color, alpha=0.2, linewidth=0)
        if above is not None and off_scale[scheme]:
            above.plot(c["step"], c["mean"], **line_options)
            if seeds > 1:
                above.fill_between(c["step"], c["min"], c["max"], color=look.color, alpha=0.2, linewidth=0)
    _chance_line(ax, outputs, task)
    if first is None:
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis, *ax.get_ylim())
        for epoch_end in range(n_batches, drawn, n_batches):
            ax.axvline(epoch_end + 0.5, color="grey", linestyle=":", linewidth=1)
    elif above is not None:
        on_scale = curves[curves["scheme"].isin(peaks.index[~off_scale])]
        top = 1.05 * max(on_scale["max"].max(), task.chance_loss(outputs))
        ax.set_ylim(0, top)
        _off_scale_panel(above, curves[curves["scheme"].isin(peaks.index[off_scale])], top)
    ax.set(xlabel="Batch", ylabel=f"Training loss ({task.loss})", xlim=(0, drawn + 1))
    (above or ax).set_title(title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # whole batches
    ax.grid(alpha=0.3)
    band = f"line: mean over {seeds} seeds\nband: min to max" if seeds > 1 else None
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, fontsize=9, title=band,
              title_fontsize=9, alignment="left")
    return _save(fig, path)


def _off_scale_panel(ax: Axes, curves: pd.DataFrame, bottom: float) -> None:
    """The schemes too high for the linear panel below, on a log axis that starts where the
    panel below ends (a curve that dips lower goes on there)."""
    high = float(np.nanmax(curves["max"].to_numpy()))
    ax.set_yscale("log")
    ax.set_ylim(bottom, high * 1.6)
    _plain_log_ticks(ax.yaxis, bottom, high * 1.6)
    ax.set_ylabel("Higher: log scale")
    ax.tick_params(labelbottom=False)
    ax.grid(alpha=0.3)


def _curves(losses: pd.DataFrame, n_batches: int) -> pd.DataFrame:
    """Per scheme and global batch number: mean, min and max of the loss over seeds."""
    steps = losses.assign(step=(losses["epoch"] - 1) * n_batches + losses["batch"])
    return steps.groupby(["scheme", "step"], sort=False)["loss"].agg(["mean", "min", "max"]).reset_index()


def _diverged(losses: pd.DataFrame, n_batches: int) -> dict[str, str]:
    """Per scheme whose loss became NaN or inf (where its training stopped): when, in words."""
    notes = {}
    for scheme, bad in losses[~np.isfinite(losses["loss"])].groupby("scheme", sort=False):
        seeds = losses.loc[losses["scheme"] == scheme, "seed"].nunique()
        step = int(((bad["epoch"] - 1) * n_batches + bad["batch"]).min())
        notes[scheme] = (f"diverged at batch {step}" if seeds == 1
                         else f"{bad['seed'].nunique()} of {seeds} seeds diverged, from batch {step}")
    return notes


def _chance_line(ax: Axes, outputs: int, task: Task) -> None:
    """Where a model that learnt nothing sits (``zeros`` does, exactly): behind the curves."""
    chance = task.chance_loss(outputs)
    ax.axhline(chance, color="0.3", linestyle=(0, (6, 3)), linewidth=0.9, zorder=1)
    ax.annotate(f"chance: ln {outputs} = {chance:.3f}", (1, chance), xycoords=("axes fraction", "data"),
                xytext=(-4, -3), textcoords="offset points", ha="right", va="top", fontsize=8, color="0.3")


def plot_transfer(runs: pd.DataFrame, comparison: pd.DataFrame, path: Path | None, title: str,
                  task: Task) -> Figure:
    """Left: each start's validation metric (accuracy), a dot per seed and a bar at the mean;
    right: its paired difference to the best scratch scheme, mean and 95% confidence interval."""
    val = task.validation
    order = list(comparison["scheme"])[::-1]  # best at the top
    style = styles(order)
    fig, (left, right) = _subplots(1, 2, figsize=(11, 0.55 * len(order) + 1.8), sharey=True,
                                      layout="constrained", width_ratios=(3, 2))
    for y, name in enumerate(order):
        acc = 100 * runs.loc[runs["scheme"] == name, val.key].to_numpy()
        jitter = np.linspace(-0.18, 0.18, len(acc)) if len(acc) > 1 else np.zeros(1)
        left.scatter(acc, y + jitter, s=16, color=style[name].color, marker=style[name].marker, alpha=0.75,
                     linewidths=0)
        left.plot([acc.mean()] * 2, [y - 0.3, y + 0.3], color="black", linewidth=1.6)
        row = comparison[comparison["scheme"] == name].iloc[0]
        if row["scheme"] != row["baseline"]:
            mean, low, high = (100 * row[k] for k in ("diff_mean", "diff_low", "diff_high"))
            right.errorbar(mean, y, xerr=[[mean - low], [high - mean]] if np.isfinite(low) else None,
                           marker=style[name].marker, linestyle="none", color=style[name].color, capsize=3)
    baseline = comparison["baseline"].iloc[0]
    right.axvline(0, color="0.3", linewidth=0.9, linestyle=(0, (6, 3)))
    left.set(yticks=range(len(order)), yticklabels=order,
             xlabel=f"{val.axis}:\na dot per seed, a bar at the mean")
    right.set(xlabel=f"Difference to {baseline} (points) on the same seeds:\nmean and 95% confidence interval")
    for ax in (left, right):
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(title.replace("; ", "\n"), fontsize=10)
    return _save(fig, path)


def _cell_label(row: pd.Series, settings: list[str]) -> str:
    return ", ".join(f"{k} {row[k]}" for k in settings) or "all jobs"


def _numeric(values: Iterable[str]) -> bool:
    """Whether a setting's values (as tables show them) are numbers, which lie on a line;
    activations or hidden sizes are categories, nothing lies between them."""
    try:
        [float(v) for v in values]
    except ValueError:
        return False
    return True


def plot_sweep_lines(cells: pd.DataFrame, setting: str, varied: list[str], path: Path | None,
                     task: Task) -> Figure:
    """The task's validation metric (accuracy) against one varied ``setting`` (its values in the sweep's order),
    each scheme at its mean over seeds with ± one std; a panel for each combination of the
    other varied settings; chance marked. A numeric setting (lr, dropout) joins a scheme's
    points with a line; categories (activation, hidden sizes) get points side by side in each
    category, with no line, since nothing lies between them."""
    others = [k for k in varied if k != setting]
    key, scale = task.validation.key, task.validation.scale
    panels = list(cells.groupby(others, sort=False)) if others else [((), cells)]
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    fig, axes = _subplots(rows, columns, figsize=(4.6 * columns + 2.2, 3.6 * rows + 0.6), squeeze=False,
                          sharey=True, layout="constrained")
    order = list(dict.fromkeys(cells[setting]))
    seeds = int(cells["seeds"].max())
    numeric = _numeric(order)
    names = list(dict.fromkeys(cells["scheme"]))
    style = styles(names)
    dodge = 0.0 if numeric else min(0.7 / max(len(names), 1), 0.18)  # side by side within a category
    for ax, (_, panel) in zip(axes.flat, panels):
        for scheme, line in panel.groupby("scheme", sort=False):
            look, at = style[scheme], names.index(scheme) - (len(names) - 1) / 2
            x = np.array([order.index(v) for v in line[setting]]) + dodge * at
            mean, std = (scale * line[f"{key}_mean"].to_numpy(), scale * line[f"{key}_std"].fillna(0).to_numpy())
            if numeric:
                ax.plot(x, mean, color=look.color, linestyle=look.dash, marker=look.marker, label=short(scheme),
                        markersize=5, linewidth=1.4, zorder=look.zorder)
                if seeds > 1:
                    ax.fill_between(x, mean - std, mean + std, color=look.color, alpha=0.15, linewidth=0)
            else:
                ax.errorbar(x, mean, yerr=std if seeds > 1 else None, color=look.color, marker=look.marker,
                            linestyle="none", markersize=6, capsize=3, elinewidth=1.2, label=short(scheme))
        chance = panel["chance"].unique()
        if len(chance) == 1:
            ax.axhline(scale * chance[0], color="0.3", linestyle=(0, (6, 3)), linewidth=0.9, zorder=1)
            ax.annotate(f"chance {_chance(chance[0], task)}", (0, scale * chance[0]), xycoords=("axes fraction", "data"),
                        xytext=(4, 3), textcoords="offset points", ha="left", va="bottom", fontsize=8,
                        color="0.3")
        ax.set_xticks(range(len(order)), order)
        ax.set(xlabel=setting.replace("_", " "), xlim=(-0.5, len(order) - 0.5))
        if numeric:
            ax.grid(alpha=0.3)
        else:  # categories apart, rather than a grid line through each
            ax.grid(alpha=0.3, axis="y")
            for boundary in range(1, len(order)):
                ax.axvline(boundary - 0.5, color="0.85", linewidth=0.8, zorder=0)
        if others:
            ax.set_title(_cell_label(panel.iloc[0], others), fontsize=10)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(task.validation.axis)
    spread = "line: mean over {} seeds\nband: ± one std" if numeric else "point: mean over {} seeds\nbar: ± one std"
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=9,
               title=spread.format(seeds) if seeds > 1 else None, title_fontsize=9, alignment="left")
    fig.suptitle(f"{task.validation.title} by {setting.replace('_', ' ')}", fontsize=11)
    return _save(fig, path)


def plot_lr_curves(runs: pd.DataFrame, curve: str, panels_by: list[str], path: Path | None, task: Task) -> Figure:
    """The task's validation metric against the learning rate (log scale), one curve per value
    of ``curve`` (a width or depth: darker is larger), each point a mean over seeds and each
    curve's best circled; a panel for each combination of ``panels_by`` (a parametrization,
    a scheme), sharing the axes, as Tensor Programs V's figure 1 draws μP against SP."""
    import matplotlib as mpl

    key, scale = task.validation.key, task.validation.scale
    panels = list(runs.groupby(panels_by, sort=False)) if panels_by else [((), runs)]
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    fig, axes = _subplots(rows, columns, figsize=(4.4 * columns + 1.8, 3.6 * rows + 0.7), squeeze=False,
                          sharey=True, sharex=True, layout="constrained")
    values = sorted(runs[curve].unique())
    colors = mpl.colormaps["viridis"](np.linspace(0.85, 0.05, len(values)))
    seeds = int(runs.groupby([*panels_by, curve, "lr"])["seed"].nunique().max())
    for ax, (name, panel) in zip(axes.flat, panels):
        for value, color in zip(values, colors):
            line = panel[panel[curve] == value].groupby("lr")[key].mean().sort_index()
            if line.empty:
                continue
            ax.plot(line.index, scale * line.to_numpy(), color=color, marker="o", markersize=3.5, linewidth=1.4,
                    label=f"{curve} {value}")
            finite = line.dropna()
            if not finite.empty:
                best = finite.idxmax() if task.validation.higher else finite.idxmin()
                ax.plot([best], [scale * finite[best]], marker="o", markersize=10, markerfacecolor="none",
                        markeredgecolor=color, markeredgewidth=1.6)
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.set(xlabel="learning rate")
        if panels_by:
            ax.set_title(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in
                                   zip(panels_by, name if isinstance(name, tuple) else (name,))), fontsize=10)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(task.validation.axis)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=9, title_fontsize=9, alignment="left",
               title=f"mean over {plural(seeds, 'seed')}\ncircled: each {curve}'s best")
    fig.suptitle(f"{task.validation.title} against the learning rate, per {curve}", fontsize=11)
    return _save(fig, path)


def plot_sweep_heatmap(cells: pd.DataFrame, varied: list[str], path: Path | None, task: Task) -> Figure:
    """Scheme (rows, best on average first) x grid cell (columns): the mean validation metric (accuracy),
    written in each square, starred (and bold) where the scheme is the cell's best or
    indistinguishable from it. A sweep of one cell has no grid to colour: each scheme's
    mean and spread as a point on an axis instead (``_accuracy_dots``)."""
    labels = list(dict.fromkeys(_cell_label(row, varied).replace(", ", "\n") for _, row in cells.iterrows()))
    if len(labels) < 2:
        return _accuracy_dots(cells, path, task)
    val = task.validation
    means = cells.groupby("scheme")[f"{val.key}_mean"].mean()
    schemes_shown = list(means.sort_values(ascending=not val.higher).index)
    grid = np.full((len(schemes_shown), len(labels)), np.nan)
    top = np.zeros_like(grid, dtype=bool)
    for _, row in cells.iterrows():
        i, j = schemes_shown.index(row["scheme"]), labels.index(_cell_label(row, varied).replace(", ", "\n"))
        grid[i, j] = val.scale * row[f"{val.key}_mean"]
        top[i, j] = _at_the_top(row["verdict"])
    fig, ax = _subplots(figsize=(max(1.15 * len(labels) + 3.2, 5.5), 0.48 * len(schemes_shown) + 2.1),
                        layout="constrained")
    finite = grid[np.isfinite(grid)]
    low, high = (0, 100) if val.unit == "%" else (float(finite.min()), float(finite.max())) if len(finite) else (0, 1)
    # Brighter is better: a loss's colours run the other way.
    image = ax.imshow(grid, cmap="viridis" if val.higher else "viridis_r", vmin=low, vmax=high, aspect="auto")
    digits = 1 if val.unit == "%" else 3
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            bright = (value - low) / ((high - low) or 1) > 0.6 if val.higher else (high - value) / ((high - low) or 1) > 0.6
            ax.text(j, i, f"{value:.{digits}f}" + ("*" if top[i, j] else ""), ha="center", va="center", fontsize=9,
                    color="black" if bright else "white", fontweight="bold" if top[i, j] else "normal")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_yticks(range(len(schemes_shown)), [short(s) for s in schemes_shown])
    fig.colorbar(image, ax=ax, label=task.validation.axis, shrink=0.9)
    fig.suptitle(f"Mean {task.validation.name} ({task.validation.unit})\n* the cell's best, or indistinguishable "
                 "from it", fontsize=10)
    return _save(fig, path)


def _chance(value: float, task: Task) -> str:
    """Chance as a picture marks it: "10%" of an accuracy, "4.431" of a loss (ln V)."""
    return f"{100 * value:.0f}%" if task.validation.unit == "%" else f"{value:.3f}"


def _at_the_top(verdict: str) -> bool:
    """Whether a cell's row is its best scheme or indistinguishable from it: never a scheme
    whose difference could not be tested (one seed, or no seed in common with the best)."""
    return verdict == "the baseline" or verdict.startswith("indistinguishable")


def _accuracy_dots(cells: pd.DataFrame, path: Path | None, task: Task) -> Figure:
    """The schemes of a sweep's one cell, best at the top: the mean validation metric with ± one
    std, filled (and starred) where the scheme is the best or indistinguishable from it."""
    val = task.validation
    rows = cells.sort_values(f"{val.key}_mean", ascending=val.higher, kind="stable").reset_index(drop=True)  # best last: at the top
    seeds = int(rows["seeds"].max())
    style = styles(rows["scheme"])
    fig, ax = _subplots(figsize=(8, 0.45 * len(rows) + 1.9), layout="constrained")
    for y, row in rows.iterrows():
        look, mean = style[row["scheme"]], val.scale * row[f"{val.key}_mean"]
        spread = row[f"{val.key}_std"]
        std = val.scale * spread if seeds > 1 and np.isfinite(spread) else None
        best = _at_the_top(row["verdict"])
        ax.errorbar(mean, y, xerr=std, color=look.color, marker=look.marker, markersize=8, capsize=3,
                    markerfacecolor=look.color if best else "white", linestyle="none")
        ax.annotate(f"{mean:.{1 if val.unit == '%' else 3}f}" + ("*" if best else ""), (mean, y), xytext=(0, 7),
                    textcoords="offset points", ha="center", va="bottom", fontsize=9,
                    fontweight="bold" if best else "normal")
    chance = rows["chance"].unique()
    if len(chance) == 1:
        ax.axvline(val.scale * chance[0], color="0.3", linestyle=(0, (6, 3)), linewidth=0.9, zorder=1)
        ax.annotate(f"chance {_chance(chance[0], task)}", (val.scale * chance[0], 0), xycoords=("data", "axes fraction"),
                    xytext=(4, 4), textcoords="offset points", fontsize=8, color="0.3")
    ax.set_yticks(range(len(rows)), [short(s) for s in rows["scheme"]])
    ax.set_ylim(-0.6, len(rows) - 0.2)
    ax.set_xlabel(task.validation.axis + (f": mean over {seeds} seeds, bar ± one std" if seeds > 1 else ""))
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(f"Mean {task.validation.name} ({task.validation.unit})\n* (filled) the best, or indistinguishable "
                 "from it", fontsize=10)
    return _save(fig, path)


def plot_strip(groups: dict[str, list[float]], ylabel: str, title: str, path: Path | None = None,
               line: float | None = None) -> Figure:
    """One column per group (a scheme), each seed a dot, the mean ± one std a bar beside them;
    ``line``: a reference drawn across (0, ln V...)."""
    style = styles(groups)
    fig, ax = _subplots(figsize=(1.6 * len(groups) + 3.0, 4.2), layout="constrained")
    for x, (name, values) in enumerate(groups.items()):
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        look = style[name]
        ax.plot(np.full(len(v), x - 0.08), v, ".", color=look.color, alpha=0.5, markersize=6)
        if len(v):
            ax.errorbar(x + 0.08, v.mean(), yerr=v.std(ddof=1) if len(v) > 1 else None, color=look.color,
                        marker=look.marker, markersize=7, capsize=4, linestyle="none")
    if line is not None:
        ax.axhline(line, color="0.3", linestyle=(0, (6, 3)), linewidth=0.9, zorder=1)
    ax.set_xticks(range(len(groups)), [short(name) for name in groups])
    ax.set_xlim(-0.6, len(groups) - 0.4)
    seeds = max((len(v) for v in groups.values()), default=0)
    ax.set(ylabel=ylabel, title=title + (f"\n(dots: {seeds} seeds; bar: mean ± one std)" if seeds > 1 else ""))
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_coords(coords: pd.DataFrame, parametrization: str, path: Path | None) -> Figure:
    """A coordinate check under one parametrization, as the ``mup`` package draws it: a panel
    per step, each layer's output size (mean absolute value) against width, log-log, a line per
    layer (mean over seeds); a network of blocks (a gpt), a line per role, its blocks' mean."""
    rows = coords[coords["parametrization"] == parametrization]
    if "block" in rows and rows["block"].notna().any():
        per_role = rows.groupby(["step", "role", "seed", "width"], sort=False)["coord"].mean().reset_index()
        panels = {f"step {step}": {str(role): {float(w): g["coord"].tolist() for w, g in per.groupby("width")}
                                   for role, per in part.groupby("role", sort=False)}
                  for step, part in per_role.groupby("step")}
    else:
        last = int(rows["layer"].max())
        panels = {f"step {step}": {
            f"layer {layer}" + (" (input)" if layer == 1 else " (output)" if layer == last else ""):
                {float(w): g["coord"].tolist() for w, g in per_layer.groupby("width")}
            for layer, per_layer in part.groupby("layer")} for step, part in rows.groupby("step")}
    return plot_lines(panels, xlabel="Width (every hidden layer)", ylabel="Output size (mean |x|)",
                      title=f"Coordinate check, {parametrization}: each layer's output against width, step by step",
                      path=path, logx=True, logy=True)


def plot_lines(panels: dict[str, dict[str, dict[float, list[float]]]], xlabel: str, ylabel: str, title: str,
               path: Path | None = None, logx: bool = False, logy: bool = False, top: float | None = None) -> Figure:
    """Panels (titled by their keys) of lines (labelled by theirs): each line x -> the values
    of its seeds, drawn at their mean with a band of ± one std and each seed a faint dot;
    a line named by a scheme takes its colour. Non-finite values are left out (an x with
    none is not drawn). ``top``: the y axis ends there (what lies above is cut off, and the
    title says so), where a few values in the billions would flatten the rest."""
    fig, axes = _subplots(1, len(panels), figsize=(5.2 * len(panels) + 2.2, 4.2), squeeze=False, sharey=True,
                          layout="constrained")
    palette = itertools.cycle(PALETTE)  # more lines than colours (a deep network's layers) share them
    colours: dict[str, str] = {}
    seeds = 1
    for ax, (panel, lines) in zip(axes.flat, panels.items()):
        for label, points in lines.items():
            if label not in colours:
                colours[label] = colour(label) if _base(label) in COLOURS else next(palette)
            xs = sorted(x for x, v in points.items() if np.isfinite(v).any())
            kept = [np.asarray(points[x], dtype=float) for x in xs]
            kept = [v[np.isfinite(v)] for v in kept]
            seeds = max([seeds, *(len(v) for v in kept)])
            mean = np.array([v.mean() for v in kept])
            std = np.array([v.std(ddof=1) if len(v) > 1 else 0.0 for v in kept])
            ax.plot(xs, mean, "-o", color=colours[label], label=label, markersize=4, linewidth=1.4)
            ax.fill_between(xs, mean - std, mean + std, color=colours[label], alpha=0.15, linewidth=0)
            for x, v in zip(xs, kept):
                ax.plot([x] * len(v), v, ".", color=colours[label], alpha=0.35, markersize=3)
        if logx:
            xs = [x for points in lines.values() for x in points]
            ax.set_xscale("log")
            _plain_log_ticks(ax.xaxis, min(xs), max(xs))
        ax.set(xlabel=xlabel, title=panel)
        ax.grid(alpha=0.3)
    values = np.array([v for lines in panels.values() for points in lines.values() for vs in points.values()
                       for v in vs], dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    cut = top is not None and len(values) and values.max() > top
    if cut:
        values = values[values <= top]
    if logy and len(values):  # once, for the shared axis: each panel's own range would relabel it
        axes[0, 0].set_yscale("log")
        _plain_log_ticks(axes[0, 0].yaxis, values.min(), values.max())
    if cut:  # the bands of the values cut off would reach below the rest: the axis holds the values kept
        axes[0, 0].set_ylim(values.min() / 1.25 if logy else None, top)
        title += f" (the axis ends at {top:g})"
    axes[0, 0].set_ylabel(ylabel)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    band = f"line: mean over {seeds} seeds\nband: ± one std; dots: seeds" if seeds > 1 else None
    fig.legend(handles, labels, loc="outside right upper", fontsize=9, title=band, title_fontsize=9,
               alignment="left")
    if len(panels) > 1:
        fig.suptitle(title, fontsize=11)
    else:  # over its axes, clear of the legend beside them
        axes[0, 0].set_title(title, fontsize=11)
    return _save(fig, path)
