"""``initbench export``: finished runs and sweeps written in another tool's format (an
exporter of ``initbench.exporters``: TensorBoard's, or one registered). Nothing is trained:
every job is read from its folder's store."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from initbench import exporters, tasks
from initbench.storage import runfolder
from initbench.views import finished, progress, tables
from initbench.words import plural


@dataclass(eq=False)
class Export(finished.Shown):
    """An export: ``logdir`` (where it went: ``tensorboard --logdir`` it), ``runs`` one row
    per job written (where it went under ``logdir``, the folder and job it is, its steps and
    final accuracies), ``table`` one row per folder exported; ``exporter``, its format."""

    logdir: Path
    runs: pd.DataFrame = field(repr=False)
    exporter: exporters.Exporter
    task: tasks.Task  # what the jobs learned (one task an export)
    placed: runfolder.RunFolder | None = field(default=None, repr=False)

    @property
    def table(self) -> pd.DataFrame:
        grouped = self.runs.groupby("folder", sort=False)
        return pd.DataFrame({
            "kind": grouped["kind"].first(),
            "jobs": grouped.size(),
            "runs": grouped["run"].first().str.split("/").str[0] + "/...",
            "steps": grouped["steps"].max(),
            "epochs": grouped["epochs"].max(),
        }).reset_index()

    def listings(self) -> list[tables.Listing]:
        rows, title = self.table.to_dict("records"), self.exporter.code.TITLE
        columns = [tables.Column("Folder", [r["folder"] for r in rows], left=True),
                   tables.Column("Kind", [r["kind"] for r in rows], left=True, drop=2),
                   tables.Column("Jobs", [f"{r['jobs']:,}" for r in rows]),
                   tables.Column(f"{title} runs", [r["runs"] for r in rows], left=True),
                   tables.Column("Steps\nper job", [f"{r['steps']:,}" for r in rows], drop=1)]
        notes = [self.exporter.code.NOTE.format(dest=shlex.quote(str(self.logdir)), val=self.task.validation.tag,
                                                test=self.task.test.tag)]
        return [tables.Listing(f"{plural(len(self.runs), 'job')} exported to {title} in {self.logdir}", columns, rows,
                               notes)]


def export(exporter: exporters.Exporter, found: Sequence[exporters.Source], logdir: Path, overwrite: bool,
           activity: progress.Activity) -> Export:
    """Every job of ``found`` (checked: ``exporters.sources``) written by ``exporter`` into
    ``logdir``, which is written whole or not at all."""
    with runfolder.run_folder(logdir, overwrite, activity.note) as folder, activity.running():
        activity.stage("Reading the stores")
        jobs = [job for source in found for job in exporters.read(source)]
        task = tasks.one((job.task for job in jobs), "The folders hold", "Export each task's apart.")
        runs = exporter.code.write(jobs, folder.staging, activity)
    return Export(folder.path, runs, exporter, task, folder)
