"""Paired comparisons over seeds: within a seed every model sees the same batches, so the
difference between two of them is measured on equal terms, and its spread over seeds
says whether it is real."""

from __future__ import annotations

import math
from dataclasses import dataclass

LEVEL = 0.95  # of the confidence intervals
UNTESTED = "1 seed cannot be tested"  # a verdict's words where a difference has no interval


@dataclass(frozen=True)
class Paired:
    mean: float  # mean difference over seeds
    low: float  # its 95% confidence interval (t-interval over seeds); NaN with fewer than two seeds
    high: float
    seeds: int

    @property
    def verdict(self) -> str:
        """"better", "worse", or "indistinguishable at N seeds" (the interval holds 0); at one
        seed, where there is no interval, the point difference (of accuracies, in points)
        and that it cannot be tested."""
        if not self.seeds:
            return "no seed in common with the baseline"
        if self.seeds == 1:
            if not self.mean:
                return f"equal; {UNTESTED}"
            return f"{'higher' if self.mean > 0 else 'lower'} by {100 * abs(self.mean):.2f} points; {UNTESTED}"
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return f"indistinguishable at {self.seeds} seed{'s' * (self.seeds != 1)}"


def paired(differences: list[float]) -> Paired:
    """The mean of per-seed differences and its t-interval: mean +- t(0.975, n-1) * sd / sqrt(n)."""
    from scipy.stats import t

    n = len(differences)
    if n == 0:
        return Paired(math.nan, math.nan, math.nan, 0)
    mean = sum(differences) / n
    if n < 2:
        return Paired(mean, math.nan, math.nan, n)
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    half = float(t.ppf(0.5 + LEVEL / 2, n - 1)) * sd / math.sqrt(n)
    return Paired(mean, mean - half, mean + half, n)


BOOTSTRAP = 10_000  # resamples of a bootstrap interval


def bootstrap_mean(values: list[float], resamples: int = BOOTSTRAP) -> tuple[float, float]:
    """The 95% percentile bootstrap interval of the mean of ``values`` (one per seed): the
    seeds resampled with replacement, from a fixed generator (the same values, the same
    interval). For a measure whose spread is not a normal one's (an absolute slope)."""
    import numpy as np

    drawn = np.random.default_rng(0).choice(np.asarray(values, dtype=float), size=(resamples, len(values)))
    low, high = np.quantile(drawn.mean(axis=1), [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(low), float(high)
