"""``initbench report``: finished runs' table, and their pictures drawn again. Nothing is
trained: each run is read as ``views.Run`` reads it (a sweep folder as ``views.Sweep``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from initbench import report, runfolder, sweep, views


def report_runs(chosen: runfolder.Reported, redraw: bool, note: Callable[[str], None]) -> report.Listing:
    """The table of finished compare runs (one table; a column names each row's run when
    there are several) and, with ``redraw``, their pictures drawn again in their folders
    (``note`` is told of each). A sweep folder is reported alone, from its store. ``chosen``
    is checked before torch loads (``runfolder.reported``)."""
    if chosen.sweep is not None:
        return _report_sweep(chosen.sweep, redraw, note)
    runs = [views.Run(run.folder) for run in chosen.runs]
    summaries = [run.summary for run in runs]  # every run read before any is drawn
    if len(runs) > 1:
        summaries = [summary.assign(run=str(run.folder))[["run", *summary.columns]]
                     for run, summary in zip(runs, summaries)]
    epochs = {run.config["epochs"] for run in runs}
    listing = report.accuracy_listing(pd.concat(summaries, ignore_index=True), max(epochs),
                                      all(run.eval_dropout for run in runs))
    if len(epochs) > 1:
        listing.title = "Runs trained for different numbers of epochs"
    if redraw:
        for run in runs:
            files = run.drawings()
            runfolder.write_files(run.folder, files)
            note(f"Pictures redrawn in {run.folder}: {', '.join(files)}")
    return listing


def _report_sweep(folder: Path, redraw: bool, note: Callable[[str], None]) -> report.Listing:
    """A sweep folder's report: every job its store holds (the union of every grid swept
    into it), its views written again with ``redraw``."""
    found = views.Sweep(folder)
    if redraw:
        sweep.write_views(folder, found.runs)
        note(f"Views rewritten in {folder}: runs.csv, cells.csv and the pictures.")
    return found.listings()[0]
