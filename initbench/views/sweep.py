"""A sweep folder's views of its store: runs.csv, cells.csv, the heatmap and the lines
along each varied setting, report.html, and the table the command line prints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from initbench import data, tasks
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
    files: dict[str, Callable[[Path], object]] = {
        "runs.csv": runfolder.csv_writer(frame.drop(columns=["identity", "layer_stats"]).assign(
            **{k: [shown(k, v) for v in frame[k]] for k in ("hidden", "classes")})),
        "cells.csv": runfolder.csv_writer(cells),
        **pictures_of(cells, varied, task_of(frame)),
    }
    if info is not None:
        files["sweep.json"] = runfolder.json_writer(info)
    runfolder.write_files(folder, htmlpage.with_page(files, page_part(folder, frame, cells, varied, info, older)))


def page_part(folder: Path, frame: pd.DataFrame, cells: pd.DataFrame, varied: list[str],
              info: dict[str, Any] | None = None, older: Sequence[store.Version] = ()) -> htmlpage.Part:
    """A sweep folder's share of an HTML page: its cells' table and pictures, and ``info``
    (sweep.json; read from the folder when not given)."""
    return htmlpage.Part(folder, htmlpage.folder_name(folder), "sweep",
                           htmlpage.read_info(folder / "sweep.json") if info is None else info,
                           [listing(frame, cells, varied, older)], pictures_of(cells, varied, task_of(frame)))


def task_of(frame: pd.DataFrame) -> tasks.Task:
    """The task of a sweep's jobs (one for every cell: ``config.resolve_sweep`` refuses a grid of several)."""
    return tasks.one((data.task(name) for name in frame["dataset"].unique()), "The sweep's store holds",
                     "One table cannot hold them.")


def pictures_of(cells: pd.DataFrame, varied: list[str], task: tasks.Task) -> dict[str, Callable[[Path | None], Figure]]:
    """A sweep's pictures by file name: the heatmap, and the task's validation metric (its
    accuracy) along each varied setting."""
    drawings: dict[str, Callable[[Path | None], Figure]] = {
        "heatmap.png": lambda p: pictures.plot_sweep_heatmap(cells, varied, p, task)}
    for setting in varied:
        drawings[f"accuracy_by_{setting}.png"] = (
            lambda p, setting=setting: pictures.plot_sweep_lines(cells, setting, varied, p, task))
    return drawings


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
