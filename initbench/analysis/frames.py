"""From job results to the frames a run's CSVs hold: one row per model (runs.csv), one
per scheme (accuracy.csv), one per trained batch (losses.csv), and the paired differences
to a baseline over seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from initbench.analysis import stats
from initbench.jobs import Job, JobResult
from initbench.tasks import CLASSIFICATION, NEXT_TOKEN, Task

if TYPE_CHECKING:
    pass



def runs_frame(results: Sequence[JobResult], names: Mapping[Job, str] | None = None,
               task: Task = CLASSIFICATION) -> pd.DataFrame:
    """One row per (scheme, seed): the task's validation and test metrics after the last
    epoch (under its keys: val_acc and test_acc, or a text's val_loss and test_loss), the
    training loss of the last batch and its mean over the last epoch (NaN/inf for a run that
    diverged: its loss is undefined), whether it diverged and at which batch. ``names``: what
    the scheme column calls each job (a transfer strategy), when not its scheme."""
    rows = []
    for r in results:
        last_epoch = r.losses[-1]
        # A loss of a diverged model is no measurement (the engine records a stand-in): left out, as NaN.
        unscored = not task.validation.higher and r.diverged_at is not None
        rows.append({
            "scheme": _named(r.job, names),
            "seed": r.job.seed,
            task.validation.key: math.nan if unscored else r.val_acc[-1],
            task.test.key: math.nan if unscored else r.test_acc,
            "last_batch_loss": float(last_epoch[-1]),
            "last_epoch_loss": float(last_epoch.mean()),
            "diverged": r.diverged_at is not None,
            "diverged_at_batch": r.diverged_at,
            **({"first_loss": float(r.losses[0, 0]), "spikes": len(spikes(r.losses.flatten().tolist()))}
               if task is NEXT_TOKEN else {}),
        })
    runs = pd.DataFrame(rows)
    runs["diverged_at_batch"] = runs["diverged_at_batch"].astype("Int64")
    return runs


SPIKE = 2.0  # a step's loss over this many times the median of the steps before it is a spike


def spikes(losses: Sequence[float]) -> list[int]:
    """The steps (0-based) whose training loss exceeded SPIKE times the median of the steps
    before them (from the third on; a diverged run's NaN steps are none)."""
    found, seen = [], []
    for step, loss in enumerate(losses):
        if step >= 2 and math.isfinite(loss) and loss > SPIKE * statistics.median(seen):
            found.append(step)
        if math.isfinite(loss):
            seen.append(loss)
    return found


def summary_frame(runs: pd.DataFrame, task: Task = CLASSIFICATION) -> pd.DataFrame:
    """One row per scheme, best on the task's validation metric first: means and sample stds
    over seeds (std empty with one seed), and how many seeds diverged; a loss mean is NaN
    when any of its runs diverged. With several seeds, each scheme's paired difference to the
    best on the same seeds (``diff_mean``, its 95% t-interval ``diff_low``/``diff_high``, and
    ``verdict``): schemes of a seed differ by their start alone."""
    def mean(s: pd.Series) -> float:
        return s.mean(skipna=False)

    val, test = task.validation.key, task.test.key
    summary = runs.groupby("scheme", sort=False).agg(**{
        "seeds": ("seed", "size"),
        f"{val}_mean": (val, "mean"),
        f"{val}_std": (val, "std"),
        f"{test}_mean": (test, "mean"),
        f"{test}_std": (test, "std"),
        "last_batch_loss_mean": ("last_batch_loss", mean),
        "last_epoch_loss_mean": ("last_epoch_loss", mean),
        "diverged_seeds": ("diverged", "sum"),
        **({"first_loss_mean": ("first_loss", "mean"), "spikes_mean": ("spikes", "mean")}
           if "first_loss" in runs else {}),
    })
    summary = _best_first(summary, task).reset_index()
    if runs["seed"].nunique() > 1 and summary[f"{val}_mean"].notna().any():
        paired = paired_frame(runs, str(summary["scheme"].iloc[0]), task).set_index("scheme")
        summary = summary.join(paired[["diff_mean", "diff_low", "diff_high", "verdict"]], on="scheme")
    return summary


def _best_first(frame: pd.DataFrame, task: Task) -> pd.DataFrame:
    """Rows best first on the task's validation metric (the highest, or the lowest loss; NaN last)."""
    return frame.sort_values(f"{task.validation.key}_mean", ascending=not task.validation.higher, kind="stable",
                             na_position="last")


def paired_frame(runs: pd.DataFrame, baseline: str, task: Task = CLASSIFICATION) -> pd.DataFrame:
    """Per scheme (or strategy): the task's validation metric over seeds, and its paired
    difference to ``baseline`` on the same seeds (mean, 95% t-interval, verdict; a loss's
    "better" is lower), best first."""
    key = task.validation.key
    val = runs.pivot(index="seed", columns="scheme", values=key)
    rows = []
    for name in val.columns:
        diff = stats.paired((val[name] - val[baseline]).dropna().tolist())
        verdict = diff.verdict if task.validation.higher else _reversed(diff.verdict)
        rows.append({"scheme": name, "seeds": int(val[name].notna().sum()), f"{key}_mean": val[name].mean(),
                     f"{key}_std": val[name].std(), "baseline": baseline, "diff_mean": diff.mean,
                     "diff_low": diff.low, "diff_high": diff.high,
                     "verdict": "the baseline" if name == baseline else verdict})
    return _best_first(pd.DataFrame(rows), task).reset_index(drop=True)


def _reversed(verdict: str) -> str:
    """A verdict on a difference of losses: a higher loss is worse."""
    return {"better": "worse", "worse": "better"}.get(verdict, verdict)


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
