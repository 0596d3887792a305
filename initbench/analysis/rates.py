"""The best learning rate of a grid, and how it drifts with width or depth.

Per group (a scheme; a sweep's width and parametrization), the best rate is the one whose
validation metric, averaged over seeds, is best. How sure that is comes from a bootstrap
over seeds: the seeds are drawn again with replacement, the best rate found again, and the
95% interval is that of the rates found (on the grid's log scale, so the bounds are rates
of the grid). A diverged model counts as the worst a model can do (a text's NaN loss is
infinite), so a rate that blows some seeds up is not picked for the seeds that survived.

The drift is the slope of log2(best rate) against log2(width) (or depth): -1 means the
best rate halves per doubling (the standard parametrization's Adam, Tensor Programs V),
0 that it transfers. Its interval is the same bootstrap's: each resample's best rate at
every width, and the slope through them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from initbench.analysis.cells import scored
from initbench.analysis.stats import LEVEL
from initbench.tasks import Task

BEST_FILE = "best_lr.csv"  # a run's or sweep's best rates, where it trained a grid of them
RESAMPLES = 2_000  # of the seeds, per group
LOW, HIGH = (1 - LEVEL) / 2, (1 + LEVEL) / 2


def _scores(frame: pd.DataFrame, task: Task, rate: str) -> pd.DataFrame:
    """Seeds x rates of the validation metric, a diverged model's the worst possible (the
    grid's rates in increasing order); higher is better in what is returned."""
    metric = task.validation
    table = frame.pivot_table(index="seed", columns=rate, values=metric.key, aggfunc="first", dropna=False)
    table = table.reindex(columns=sorted(table.columns))
    signed = table if metric.higher else -table
    return signed.fillna(-math.inf)


def _resampled_best(scores: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """The index of the best rate in each of RESAMPLES resamples of the seeds."""
    values = scores.to_numpy()
    picks = rng.integers(0, len(values), size=(RESAMPLES, len(values)))
    return _nan_argmax(values[picks].mean(axis=1))


def _best(scores: pd.DataFrame) -> int:
    """The index of the rate of the best mean over all the seeds."""
    return int(_nan_argmax(scores.mean().to_numpy()[None])[0])


def _nan_argmax(means: np.ndarray) -> np.ndarray:
    """The best column of each row, -inf (a rate that diverged in the resample) never picked over a finite one."""
    means = np.where(np.isnan(means), -np.inf, means)
    return means.argmax(axis=-1)


def best_rates(frame: pd.DataFrame, task: Task, groups: Sequence[str], rate: str = "lr") -> pd.DataFrame:
    """One row per group of ``frame`` (one row per model: ``groups``, ``rate``, ``seed`` and the
    task's validation metric): the best rate, its 95% bootstrap interval over seeds (``low``,
    ``high``), the share of resamples that picked it, the metric's mean there, and whether it
    is an edge of the grid (``edge``: the best may lie beyond it)."""
    key = task.validation.key
    rng = np.random.default_rng(0)
    rows = []
    for name, group in frame.groupby(list(groups), sort=False):
        scores = _scores(group, task, rate)
        rates = [float(r) for r in scores.columns]
        best = _best(scores)
        found = _resampled_best(scores, rng)
        low, high = np.quantile(found, [LOW, HIGH], method="inverted_cdf")
        at_best = group[group[rate] == rates[best]][key]
        rows.append({**dict(zip(groups, name if isinstance(name, tuple) else (name,))),
                     "seeds": len(scores), "rates": len(rates), f"best_{rate}": rates[best],
                     "low": rates[int(low)], "high": rates[int(high)], "picked": float((found == best).mean()),
                     f"{key}_mean": float(at_best.mean()), f"{key}_std": float(at_best.std()),
                     "edge": best in (0, len(rates) - 1) and len(rates) > 1})
    return pd.DataFrame(rows)


def drift(frame: pd.DataFrame, task: Task, along: str, groups: Sequence[str] = (), rate: str = "lr") -> pd.DataFrame:
    """Per group: the slope of log2(best rate) against log2(``along``) (a width or a depth,
    one per row of ``frame``), with its 95% bootstrap interval over seeds: each resample
    draws every ``along`` value's seeds again and fits the slope through its best rates."""
    rng = np.random.default_rng(0)
    rows = []
    for name, group in (frame.groupby(list(groups), sort=False) if groups else [((), frame)]):
        sizes = sorted(group[along].unique())
        if len(sizes) < 2:
            continue
        x = np.log2(np.asarray(sizes, dtype=float))
        fits, best = [], []
        for size in sizes:
            scores = _scores(group[group[along] == size], task, rate)
            rates = np.log2(np.asarray(scores.columns, dtype=float))
            best.append(rates[_best(scores)])
            fits.append(rates[_resampled_best(scores, rng)])
        # Rounded: the rates are powers of a grid, and a fit's rounding (-1e-16) is no fall.
        slope = round(float(np.polyfit(x, best, 1)[0]), 9)
        drawn = np.stack(fits, axis=1)  # resamples x sizes
        slopes = np.round(np.polyfit(x, drawn.T, 1)[0], 9)
        low, high = np.quantile(slopes, [LOW, HIGH])
        rows.append({**dict(zip(groups, name if isinstance(name, tuple) else (name,))), "along": along,
                     "from": sizes[0], "to": sizes[-1], "slope": slope, "low": float(low), "high": float(high),
                     "verdict": verdict(float(low), float(high))})
    return pd.DataFrame(rows)


def verdict(low: float, high: float) -> str:
    """What a drift's interval says: the best rate falls, rises, or holds (the interval holds 0)."""
    if high < 0:
        return "falls"
    if low > 0:
        return "rises"
    return "holds"


def of_sweep(frame: pd.DataFrame, varied: Sequence[str], task: Task) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """A sweep whose grid varies lr (``frame``: its store rows): each model's row (the other
    varied settings as tables show them, ``width`` and ``depth`` of its hidden layers), the
    best rate per combination of the other varied settings and scheme, and those groups."""
    from initbench.settings import shown

    runs = scored(frame, task).assign(width=[h[0] for h in frame["hidden"]], depth=[len(h) for h in frame["hidden"]],
                                      **{k: [shown(k, v) for v in frame[k]] for k in varied if k != "lr"})
    groups = [*(k for k in varied if k != "lr"), "scheme"]
    return runs, best_rates(runs, task, groups), groups


def along(runs: pd.DataFrame, varied: Sequence[str]) -> str | None:
    """What a sweep's hidden sizes vary, where they vary one thing: "width" or "depth" (None otherwise)."""
    if "hidden" not in varied:
        return None
    widths, depths = runs["width"].nunique(), runs["depth"].nunique()
    return "width" if depths == 1 and widths > 1 else "depth" if widths == 1 and depths > 1 else None
