"""From job results to the frames a run's CSVs hold: one row per model (runs.csv), one
per scheme (accuracy.csv), one per trained batch (losses.csv), and the paired differences
to a baseline over seeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from initbench.analysis import stats
from initbench.jobs import Job, JobResult

if TYPE_CHECKING:
    pass



def runs_frame(results: Sequence[JobResult], names: Mapping[Job, str] | None = None) -> pd.DataFrame:
    """One row per (scheme, seed): accuracy after the last epoch, the training loss of the
    last batch and its mean over the last epoch (NaN/inf for a run that diverged: its loss
    is undefined), whether it diverged and at which batch. ``names``: what the scheme
    column calls each job (a transfer strategy), when not its scheme."""
    rows = []
    for r in results:
        last_epoch = r.losses[-1]
        rows.append({
            "scheme": _named(r.job, names),
            "seed": r.job.seed,
            "val_acc": r.val_acc[-1],
            "test_acc": r.test_acc,
            "last_batch_loss": float(last_epoch[-1]),
            "last_epoch_loss": float(last_epoch.mean()),
            "diverged": r.diverged_at is not None,
            "diverged_at_batch": r.diverged_at,
        })
    runs = pd.DataFrame(rows)
    runs["diverged_at_batch"] = runs["diverged_at_batch"].astype("Int64")
    return runs


def summary_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per scheme, best validation accuracy first: means and sample stds over seeds
    (std empty with one seed), and how many seeds diverged; a loss mean is NaN when any of
    its runs diverged."""
    def mean(s: pd.Series) -> float:
        return s.mean(skipna=False)

    summary = runs.groupby("scheme", sort=False).agg(
        seeds=("seed", "size"),
        val_acc_mean=("val_acc", "mean"),
        val_acc_std=("val_acc", "std"),
        test_acc_mean=("test_acc", "mean"),
        test_acc_std=("test_acc", "std"),
        last_batch_loss_mean=("last_batch_loss", mean),
        last_epoch_loss_mean=("last_epoch_loss", mean),
        diverged_seeds=("diverged", "sum"),
    )
    return summary.sort_values("val_acc_mean", ascending=False, kind="stable").reset_index()


def paired_frame(runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per scheme (or strategy): validation accuracy over seeds, and its paired difference to
    ``baseline`` on the same seeds (mean, 95% t-interval, verdict), best first."""
    val = runs.pivot(index="seed", columns="scheme", values="val_acc")
    rows = []
    for name in val.columns:
        diff = stats.paired((val[name] - val[baseline]).dropna().tolist())
        rows.append({"scheme": name, "seeds": int(val[name].notna().sum()), "val_acc_mean": val[name].mean(),
                     "val_acc_std": val[name].std(), "baseline": baseline, "diff_mean": diff.mean,
                     "diff_low": diff.low, "diff_high": diff.high,
                     "verdict": "the baseline" if name == baseline else diff.verdict})
    return pd.DataFrame(rows).sort_values("val_acc_mean", ascending=False, kind="stable").reset_index(drop=True)


def _named(job: Job, names: Mapping[Job, str] | None) -> str:
    return names[job] if names else job.scheme


def losses_frame(results: Sequence[JobResult], names: Mapping[Job, str] | None = None) -> pd.DataFrame:
    """Long format: one row per trained batch (epoch and batch numbered from 1)."""
    frames = []
    for r in results:
        n_batches = r.losses.shape[1]
        flat = r.losses.flatten().numpy()
        step = np.arange(r.diverged_at or len(flat))
        frames.append(pd.DataFrame({
            "scheme": _named(r.job, names),
            "seed": r.job.seed,
            "epoch": step // n_batches + 1,
            "batch": step % n_batches + 1,
            "loss": flat[step],
        }))
    return pd.concat(frames, ignore_index=True)
