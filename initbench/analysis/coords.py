"""What a coordinate check says (``training.coordcheck`` measures it): per parametrization,
step and layer, the slope of a coordinate against width on log-log axes, seed by seed, and its
95% t-interval over seeds; a layer whose change grows with width is named.

A slope is log2 of the coordinate's growth per width doubling: 0 when it keeps its size, 1
when it doubles with the width (the standard parametrization's Adam step on a hidden layer).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from initbench.analysis import stats

GROWS = 0.2  # a slope whose whole 95% interval lies above this grows with width (2^0.2: 15% per doubling)


def slopes(coords: pd.DataFrame) -> pd.DataFrame:
    """Per parametrization, step and layer, for the output's size (``coord``) and its change
    since step 0 (``change``; from step 1): the mean slope over seeds, its 95% t-interval
    (``*_low``, ``*_high``) and a verdict on the change: grows, shrinks, keeps (the interval
    within ±GROWS) or inconclusive."""
    rows = []
    named = [key for key in ("role", "block") if key in coords]  # what the layer is, where the check recorded it
    for (p, step, layer), part in coords.groupby(["parametrization", "step", "layer"], sort=False):
        row: dict[str, object] = {"parametrization": p, "step": step, "layer": layer,
                                  **{key: part[key].iloc[0] for key in named}}
        for measure in ("coord", "change"):
            per_seed = [_slope(s["width"], s[measure]) for _, s in part.groupby("seed")]
            d = stats.paired([v for v in per_seed if math.isfinite(v)])
            row |= {f"{measure}_slope": d.mean, f"{measure}_low": d.low, f"{measure}_high": d.high}
        row["seeds"] = part["seed"].nunique()
        row["verdict"] = verdict(row["change_low"], row["change_high"]) if step else "the start"  # type: ignore[arg-type]
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(low: float, high: float) -> str:
    if math.isnan(low):
        return "inconclusive (1 seed)"
    if low > GROWS:
        return "grows with width"
    if high < -GROWS:
        return "shrinks with width"
    return "keeps its size" if -GROWS < low and high < GROWS else "inconclusive"


def _slope(widths: pd.Series, values: pd.Series) -> float:
    """The least-squares slope of log2(values) against log2(widths) (NaN where a value is 0)."""
    v = values.to_numpy(dtype=float)
    if not (v > 0).all() or not np.isfinite(v).all():
        return math.nan
    return float(np.polyfit(np.log2(widths.to_numpy(dtype=float)), np.log2(v), 1)[0])


def growing(slopes_frame: pd.DataFrame) -> dict[str, list[int]]:
    """Per parametrization, the layers whose change grows with width at the last step."""
    last = slopes_frame[slopes_frame["step"] == slopes_frame["step"].max()]
    return {str(p): [int(layer) for layer in part.loc[part["verdict"] == "grows with width", "layer"]]
            for p, part in last.groupby("parametrization", sort=False)}
