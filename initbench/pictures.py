"""The pictures a run writes: loss curves, per-layer profiles, weight histograms.

matplotlib is imported inside the plotting functions: it costs start-up time
that a run only pays once it has results to draw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch


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


def plot_losses(losses: pd.DataFrame, path: Path, first: int | None) -> None:
    """One line per scheme (mean over seeds, band from min to max when seeds > 1).

    ``first`` batches on a linear axis, as in the lesson; a scheme whose loss is
    far above the others' (``ones`` reaches the thousands) would flatten every
    other curve, so the axis is fitted to the rest and the legend gives its peak.
    With ``first=None``, the whole run on a log axis with epoch boundaries marked.
    """
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    n_batches = int(losses["batch"].max())  # per epoch: epoch 1 is whole unless every model diverged in it
    curves = _curves(losses, n_batches)
    if first is not None:
        curves = curves[curves["step"] <= first]
        title = f"Training loss over the first {first} batches"
    else:
        epochs = int(losses["epoch"].max())
        title = f"Training loss over {epochs} epochs (log scale)"
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
