"""A sweep folder's views of its store: runs.csv, cells.csv, the heatmap and the lines
along each varied setting, report.html, and the table the command line prints; where the
grid varies lr, best_lr.csv (each cell's best rate, and how it drifts along the grid's
widths or depths: lr_drift.csv) and lr_curves.png."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from initbench import data, tasks
from initbench.analysis import rates
from initbench.analysis.cells import cells_frame
from initbench.settings import shown
from initbench.storage import runfolder, store
from initbench.views import htmlpage, listings, pictures, tables
from initbench.words import plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def write_views(folder: Path, frame: pd.DataFrame, info: dict[str, Any] | None = None,
                older: Sequence[store.Version] = ()) -> None:
    """runs.csv, cells.csv, the pictures and report.html of ``frame`` (store rows) in
    ``folder``, and (with ``info``) sweep.json; all renamed into place together. ``older``:
    the versions of schemes the store keeps beside ``frame``'s, which the page names."""
    cells, varied = cells_frame(frame, task_of(frame))
    rated = rate_frames(frame, varied)  # once: its bootstrap serves the files, the pictures and the page
    files: dict[str, Callable[[Path], object]] = {
        "runs.csv": runfolder.csv_writer(frame.drop(columns=["identity", "layer_stats"]).assign(
            **{k: [shown(k, v) for v in frame[k]] for k in ("hidden", "classes")})),
        "cells.csv": runfolder.csv_writer(cells),
        **pictures_of(cells, varied, task_of(frame), rated),
    }
    if rated is not None:
        files[rates.BEST_FILE] = runfolder.csv_writer(rated.best)
        if rated.drift is not None:
            files[DRIFT_FILE] = runfolder.csv_writer(rated.drift)
    if info is not None:
        files["sweep.json"] = runfolder.json_writer(info)
    runfolder.write_files(folder, htmlpage.with_page(files, page_part(folder, frame, cells, varied, rated, info, older)))


def page_part(folder: Path, frame: pd.DataFrame, cells: pd.DataFrame, varied: list[str], rated: RateViews | None,
              info: dict[str, Any] | None = None, older: Sequence[store.Version] = ()) -> htmlpage.Part:
    """A sweep folder's share of an HTML page: its cells' table and pictures, and ``info``
    (sweep.json; read from the folder when not given)."""
    return htmlpage.Part(folder, htmlpage.folder_name(folder), "sweep",
                           htmlpage.read_info(folder / "sweep.json") if info is None else info,
                           listings_of(frame, cells, varied, rated, older), pictures_of(cells, varied, task_of(frame), rated))


def task_of(frame: pd.DataFrame) -> tasks.Task:
    """The task of a sweep's jobs (one for every cell: ``config.resolve_sweep`` refuses a grid of several)."""
    return tasks.one((data.task(name) for name in frame["dataset"].unique()), "The sweep's store holds",
                     "One table cannot hold them.")


DRIFT_FILE = "lr_drift.csv"


@dataclass(frozen=True)
class RateViews:
    """What a grid over lr says (analysis.rates): each model's row, the best rate per group (the
    other varied settings and the scheme), and its drift along the widths or depths (or None)."""

    runs: pd.DataFrame
    best: pd.DataFrame
    groups: list[str]
    along: str | None
    drift: pd.DataFrame | None


def rate_frames(frame: pd.DataFrame, varied: list[str]) -> RateViews | None:
    """A sweep's rate views, where its grid varies lr (None otherwise)."""
    if "lr" not in varied:
        return None
    task = task_of(frame)
    runs, best, groups = rates.of_sweep(frame, varied, task)
    along = rates.along(runs, varied)
    drift = None
    if along is not None:
        drift = rates.drift(runs, task, along, [g for g in groups if g != "hidden"])
    return RateViews(runs, best, groups, along, drift)


def pictures_of(cells: pd.DataFrame, varied: list[str], task: tasks.Task,
                rated: RateViews | None) -> dict[str, Callable[[Path | None], Figure]]:
    """A sweep's pictures by file name: the heatmap, and the task's validation metric (its
    accuracy) along each varied setting; with a grid over lr (``rated``), the metric against
    the rate, a curve per width or depth (or per other varied setting)."""
    drawings: dict[str, Callable[[Path | None], Figure]] = {
        "heatmap.png": lambda p: pictures.plot_sweep_heatmap(cells, varied, p, task)}
    for setting in varied:
        drawings[f"accuracy_by_{setting}.png"] = (
            lambda p, setting=setting: pictures.plot_sweep_lines(cells, setting, varied, p, task))
    if rated is not None:
        curve = rated.along or next((g for g in rated.groups if g != "scheme"), "scheme")
        by = [g for g in rated.groups if g not in (curve, "hidden") and rated.runs[g].nunique() > 1]
        drawings["lr_curves.png"] = lambda p: pictures.plot_lr_curves(rated.runs, curve, by, p, task)
    return drawings


def listings_of(frame: pd.DataFrame, cells: pd.DataFrame, varied: list[str], rated: RateViews | None,
                older: Sequence[store.Version] = ()) -> list[tables.Listing]:
    """The cells' table; with a grid over lr (``rated``), the best rate's too."""
    found = [listing(frame, cells, varied, older)]
    if rated is not None:
        found.append(listings.best_rate_listing(rated.best, rated.groups, task_of(frame), rated.drift))
    return found


def listing(frame: pd.DataFrame, cells: pd.DataFrame, varied: list[str],
            older: Sequence[store.Version] = ()) -> tables.Listing:
    """The cells' table; its notes name the versions of schemes the store keeps beside those
    shown (``older``: rows of a user's earlier code, or of earlier random streams)."""
    seeds, task = int(cells["seeds"].max()), task_of(frame)
    epochs = sorted(frame["epochs"].unique())
    title = (f"{task.validation.title} after {' or '.join(plural(int(e), 'epoch') for e in epochs)}"
             + (f", mean ± std over {plural(seeds, 'seed')}" if seeds > 1 else "")
             + f" ({plural(len(frame), 'job')})")
    shown_listing = listings.sweep_listing(cells, varied, title, task)
    if older:
        shown_listing.notes.append(
            "Not shown: rows the store keeps of other versions of these schemes (the rows above are of one "
            "version of the random streams, the newest the store holds, and each scheme's of one code, as last "
            f"swept): {store.described(older, int(frame['streams'].max()))}. `initbench report FOLDER "
            "--all-versions` shows every version side by side.")
    return shown_listing
