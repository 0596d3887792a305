"""A sweep's store rows by grid cell: the settings that vary among them, each cell's
schemes with paired differences to its best (``cells_frame``: cells.csv), and expectations
judged in every cell."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from initbench import tasks
from initbench.analysis import expect, frames
from initbench.settings import FLAT, shown


def by_cell(frame: pd.DataFrame) -> tuple[list[str], list[tuple[dict[str, str], pd.DataFrame]]]:
    """The settings that vary among ``frame``'s rows (store rows), and each cell (their values,
    as tables show them) with its rows, in the rows' order."""
    shown_frame = frame.assign(**{k: [shown(k, v) for v in frame[k]] for k in FLAT})
    varied = [k for k in FLAT if shown_frame[k].nunique() > 1]
    groups = shown_frame.groupby(varied, sort=False) if varied else [((), shown_frame)]
    return varied, [(dict(zip(varied, cell if isinstance(cell, tuple) else (cell,))), rows) for cell, rows in groups]


def scored(rows: pd.DataFrame, task: tasks.Task) -> pd.DataFrame:
    """Store rows as the frames read them: ``scheme`` the name tables give each job, the task's
    validation metric under its key, and a diverged model's loss (a stand-in, no measurement)
    left out, as NaN."""
    val = task.validation.key
    runs = rows.drop(columns=["scheme"]).rename(columns={"name": "scheme", "val_acc": val})
    if not task.validation.higher:
        runs[val] = runs[val].where(rows["diverged_at"].isna().to_numpy())
    return runs


def expectations(frame: pd.DataFrame, conditions: Sequence[str], task: tasks.Task) -> list[expect.Outcome]:
    """Each condition judged, on the task's validation metric, in every cell of ``frame``
    (store rows) that trains the schemes it names, condition by condition (a grid of one
    cell: without a cell's name)."""
    judged = [(cell or None, expect.scores(rows, task.validation, "name")) for cell, rows in by_cell(frame)[1]]
    return [outcome for condition in conditions for cell, found in judged
            for outcome in expect.evaluate([condition], found, cell)]


def cells_frame(frame: pd.DataFrame, task: tasks.Task = tasks.CLASSIFICATION) -> tuple[pd.DataFrame, list[str]]:
    """Per cell (a combination of the settings that vary among the rows) and scheme: seeds,
    mean and std of the task's validation metric (accuracy; a text's loss), and the paired
    difference to the best scheme of the cell (mean, 95% t-interval over seeds, verdict),
    ``chance`` (the metric of an even guess). And the varied settings. The store's val_acc and
    test_acc columns hold the task's metrics, named here by its keys."""
    varied, groups = by_cell(frame)
    val, test = task.validation.key, task.test.key
    parts = []
    for cell, rows in groups:
        runs = scored(rows, task)[["scheme", "seed", val]]
        means = runs.groupby("scheme", sort=False)[val].mean()
        best = means.idxmax() if task.validation.higher else means.idxmin()
        paired = frames.paired_frame(runs, best, task)
        for k, v in cell.items():
            paired.insert(varied.index(k), k, v)
        paired.insert(len(varied) + 1, f"{test}_mean", paired["scheme"].map(
            rows.groupby("name")["test_acc"].mean()))
        paired["diverged_seeds"] = paired["scheme"].map(rows.groupby("name")["diverged_at"].count())
        paired["chance"] = task.chance(len(frame.loc[rows.index[0], "classes"]))
        parts.append(paired)
    return pd.concat(parts, ignore_index=True), varied
