"""``initbench report``: finished runs' table, and their pictures and report.html written
again; with ``--html FILE``, one page of them all. Nothing is trained: each run is read as
``views.finished.open`` reads it (a sweep folder as ``views.finished.Sweep``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from initbench import tasks
from initbench.storage import runfolder
from initbench.views import finished, htmlpage, listings, sweep, tables


def report_runs(chosen: runfolder.Reported, redraw: bool, note: Callable[[str], None],
                html: Path | None = None, all_versions: bool = False) -> list[tables.Listing]:
    """The table of finished compare runs (one table; a column names each row's run when
    there are several; of one run with an lr grid, its best rates' table after it) and, with
    ``redraw``, their pictures and report.html written again in their folders (``note`` is
    told of each); with ``html``, one page of them at that
    path (of one run: its report.html; of several: the one table, then each run's
    pictures, settings and provenance). A sweep folder is reported alone, from its store
    (each scheme's current version, or with ``all_versions`` every version side by side).
    ``chosen`` is checked before torch loads (``runfolder.reported``)."""
    if chosen.sweep is not None:
        return _report_sweep(chosen.sweep, redraw, note, html, all_versions)
    runs = [_run(run.folder) for run in chosen.runs]
    summaries = [run.summary for run in runs]  # every run read before any is drawn
    if len(runs) > 1:
        summaries = [summary.assign(run=str(run.folder))[["run", *summary.columns]]
                     for run, summary in zip(runs, summaries)]
    epochs = {run.config["epochs"] for run in runs}
    task = tasks.one((run.task for run in runs), "These runs hold",
                     "One table cannot hold them: report the runs of each task apart.")
    steps = {run.steps for run in runs}
    listing = listings.accuracy_listing(pd.concat(summaries, ignore_index=True), max(epochs), task,
                                        all(run.eval_dropout for run in runs), max(steps) if None not in steps else None)
    if len(epochs) > 1:
        listing.title = "Runs trained for different numbers of epochs"
    by_streams: dict[int, list[str]] = {}
    for run in runs:
        by_streams.setdefault(run.info.get("random_streams", 1), []).append(run.folder.name)
    if len(by_streams) > 1:  # not mixed unknowingly: their seeds' random numbers were drawn another way
        listing.notes.append("These runs were trained under different random streams, so their numbers are not "
                             "comparable seed by seed: " + "; ".join(
                                 f"version {v}: {', '.join(names)}" for v, names in sorted(by_streams.items()))
                             + " (version 1: each scheme drew its own initial weights and dropout masks).")
    if redraw:
        for run in runs:
            files = htmlpage.with_page(run.drawings(), run.page_part())
            runfolder.write_files(run.folder, files)
            note(f"Pictures and page written again in {run.folder}: {', '.join(files)}")
    if html is not None:
        htmlpage.write_page(html, [run.page_part() for run in runs], [listing] if len(runs) > 1 else None)
        note(f"Page written: {html}")
    return [listing] if len(runs) > 1 else [listing, *runs[0].listings()[1:]]


def _run(folder: Path) -> finished.Run:
    """A compare run's view (a transfer run's, with its table and transfer.png, where it is one)."""
    found = finished.open(folder)
    return found if isinstance(found, finished.Run) else finished.Run(folder)


def _report_sweep(folder: Path, redraw: bool, note: Callable[[str], None], html: Path | None,
                  all_versions: bool) -> list[tables.Listing]:
    """A sweep folder's report: every job its store holds (the union of every grid swept
    into it; of each scheme, its current version, or every version with ``all_versions``),
    its views written again with ``redraw``, its page at ``html``."""
    found = finished.Sweep(folder, all_versions=all_versions)
    if redraw:  # the folder's own views stay of the current versions
        current = finished.Sweep(folder) if all_versions else found
        sweep.write_views(folder, current.runs, older=current.older)
        note(f"Views rewritten in {folder}: runs.csv, cells.csv, the pictures and {htmlpage.PAGE}.")
    if html is not None:
        htmlpage.write_page(html, [found.page_part()])
        note(f"Page written: {html}")
    return found.listings()
