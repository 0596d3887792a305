"""``initbench export``: finished runs and sweeps written in another tool's format, for now
TensorBoard's (``initbench.tensorboard``). Nothing is trained: every job is read from its
folder's store."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from initbench import report, runfolder, tensorboard, views


@dataclass(eq=False)
class Export(views.Shown):
    """An export: ``logdir`` (where the logs are: ``tensorboard --logdir`` it), ``runs`` one row
    per TensorBoard run written (its path under ``logdir``, the folder and job it is, its steps
    and final accuracies), ``table`` one row per folder exported."""

    logdir: Path
    runs: pd.DataFrame = field(repr=False)
    placed: runfolder.RunFolder | None = field(default=None, repr=False)

    @property
    def table(self) -> pd.DataFrame:
        grouped = self.runs.groupby("folder", sort=False)
        return pd.DataFrame({
            "kind": grouped["kind"].first(),
            "jobs": grouped.size(),
            "tensorboard_runs": grouped["run"].first().str.split("/").str[0] + "/...",
            "steps": grouped["steps"].max(),
            "epochs": grouped["epochs"].max(),
        }).reset_index()

    def listings(self) -> list[report.Listing]:
        rows = self.table.to_dict("records")
        columns = [report.Column("Folder", [r["folder"] for r in rows], left=True),
                   report.Column("Kind", [r["kind"] for r in rows], left=True, drop=2),
                   report.Column("Jobs", [f"{r['jobs']:,}" for r in rows]),
                   report.Column("TensorBoard runs", [r["tensorboard_runs"] for r in rows], left=True),
                   report.Column("Steps\nper job", [f"{r['steps']:,}" for r in rows], drop=1)]
        notes = [f"Each job is a TensorBoard run, <folder>[/<cell>]/<scheme>/seed-<k>, with the scalars "
                 f"{tensorboard.LOSS} (every batch), {tensorboard.VAL} (every epoch), {tensorboard.TEST} and "
                 f"{tensorboard.LAST_EPOCH} (at the last step), and its settings as HParams. See them with: "
                 f"tensorboard --logdir {shlex.quote(str(self.logdir))}"]
        title = f"{report.plural(len(self.runs), 'job')} exported to TensorBoard in {self.logdir}"
        return [report.Listing(title, columns, rows, notes)]


def export(found: Sequence[tensorboard.Source], logdir: Path, overwrite: bool, activity: report.Activity) -> Export:
    """Every job of ``found`` (checked: ``tensorboard.sources``) as a TensorBoard run in
    ``logdir``, which is written whole or not at all."""
    with runfolder.run_folder(logdir, overwrite, activity.note) as folder, activity.running():
        runs = tensorboard.write(found, folder.staging, activity)
    return Export(folder.path, runs, folder)
