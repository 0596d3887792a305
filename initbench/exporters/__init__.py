"""Finished runs and sweeps in other tools' formats, one module per format behind one contract.

An exporter is a module registered by its name (``register(Exporter(name, module, ...))``)
and imported when used, so the command line checks what it was given before torch loads.
The command line gives each registered exporter an option ``--NAME DEST`` (``initbench
export DIR --tensorboard logs``) and the Python API a keyword (``ib.export(DIR,
tensorboard="logs")``). What is common is here: the folders given (``sources``), checked
before any work; the destination (``check_destination``), written whole or not at all; the
jobs read from each folder's store (``read``: one ``Job`` each). The module holds:

- ``TITLE``: what tables and messages call the format ("TensorBoard");
- ``check_installed() -> None``: refuse, before any work, where what it writes through is
  missing (a ``UsageError`` naming the command that installs it);
- ``held(folder) -> str | None``: what an earlier export left in a destination, in words;
- ``write(jobs, folder, activity) -> pandas.DataFrame``: every job written into ``folder``
  (a staging folder, renamed into place when whole), one row per job with at least its
  ``run`` (where it went), ``folder``, ``kind``, ``scheme``, ``seed``, ``steps``, ``epochs``;
- ``NOTE``: what each job became, for the export's table (``{dest}``: the destination;
  ``{val}`` and ``{test}``: the tags of the jobs' task's metrics).

A format of one's own, e.g. a CSV of every batch's loss per job::

    # lossfiles.py
    TITLE, NOTE = "loss CSV", "Each job is a file <scheme>-seed-<k>.csv of its losses, in {dest}."

    def check_installed(): pass
    def held(folder): return None
    def write(jobs, folder, activity):
        import pandas as pd
        for job in jobs:
            pd.Series(job.losses).to_csv(folder / f"{job.name}-seed-{job.seed}.csv")
        return pd.DataFrame([{"run": f"{job.name}-seed-{job.seed}", "folder": str(job.source.folder),
                              "kind": job.source.label, "scheme": job.label, "seed": job.seed,
                              "steps": len(job.losses), "epochs": len(job.val_acc)} for job in jobs])

    from initbench import exporters
    exporters.register(exporters.Exporter("lossfiles", "lossfiles", "Every job's losses as CSV files."))
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from initbench import data, paths, tasks
from initbench.choices import Registry, loaded
from initbench.errors import UsageError
from initbench.settings import ADDED
from initbench.storage import runfolder, store


@dataclass(frozen=True)
class Exporter:
    """A format: its name (the option ``--NAME``, the API's keyword), the module that writes
    it, and what the option's help says."""

    name: str
    module: str
    help: str
    metavar: str = "DEST"

    @property
    def code(self) -> ModuleType:
        return loaded(self.module)


EXPORTERS: Registry[Exporter] = Registry("export format")
register = EXPORTERS.register
register(Exporter("tensorboard", "initbench.exporters.tensorboard", "Write TensorBoard's logs into this new folder: "
                  "one TensorBoard run per job (needs pip install 'initbench[tensorboard]').", "LOGDIR"))


@dataclass(frozen=True)
class Source:
    """A folder to export: a finished compare (or transfer) run, or a sweep folder."""

    folder: Path
    kind: str  # "run" or "sweep"

    @property
    def label(self) -> str:
        """What it is, in words: a compare run, a transfer run or a sweep."""
        if self.kind == "sweep":
            return "sweep"
        return "transfer run" if os.path.lexists(self.folder / "transfer.csv") else "compare run"


def sources(given: Sequence[str | os.PathLike[str]]) -> list[Source]:
    """The run and sweep folders ``given`` (a folder given twice, once), each checked before any
    work: a folder with a store of finished jobs, a compare run's with its run.json."""
    if not given:
        raise UsageError("No folder was given. Give run folders written by initbench compare or transfer, or "
                         "sweep folders.")
    found: list[Source] = []
    seen: set[Path] = set()
    for name in given:
        if str(name) == "":
            raise UsageError("An empty DIR was given. Give run folders written by initbench compare or transfer, or "
                             "sweep folders.")
        folder = Path(name)
        why = paths.problem(folder, "folder")
        if why is None and not store.exists(folder):
            why = (f"is not a run or sweep folder: it has no {store.FILE}" if runfolder.not_a_run(folder) else
                   f"has no {store.FILE}, which holds what is exported: it was written by an earlier initbench")
        if why is not None:
            raise UsageError(f"{folder} {why}. Give run folders written by initbench compare or transfer, or sweep "
                             "folders.")
        kind = store.kind(folder)
        if kind == "run":
            runfolder.finished_run(folder)  # its files, as report reads them
        with store.open_store(folder, write=False) as st:
            empty = st.count() == 0
        if empty:
            raise UsageError(f"The store in {folder} holds no finished job yet: nothing to export. Run the sweep "
                             "first (it resumes).")
        if folder.resolve() not in seen:
            seen.add(folder.resolve())
            found.append(Source(folder, kind or "run"))
    return found


def check_destination(exporter: Exporter, given: str | os.PathLike[str], overwrite: bool,
                      found: Sequence[Source]) -> Path:
    """The folder ``given`` to export into, refused before any work where it cannot be made,
    holds files (unless ``overwrite``: the export then replaces it whole), or is or holds a
    folder exported."""
    title, option = exporter.code.TITLE, f"--{exporter.name}"
    if str(given) == "":
        raise UsageError(f"An empty {option} folder was given. Give the folder to write {title}'s logs in.")
    dest = Path(given)
    why = paths.problem(dest, "folder", missing_ok=True)
    if why is not None:
        raise UsageError(f"The {title} folder {dest} {why}. Give a new or empty folder with {option}.")
    target = dest.resolve()
    for source in found:
        if target == source.folder.resolve() or target in source.folder.resolve().parents:
            raise UsageError(f"The {title} folder {dest} is or holds {source.folder}, which is exported: "
                             f"--overwrite would delete it. Give the logs a folder of their own with {option}.")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        held = exporter.code.held(dest) or "files"
        raise UsageError(f"The {title} folder {dest} already holds {held}. Writing there again would show a "
                         f"run exported twice as two runs, its curves twice. Choose another folder with {option}, "
                         "or add --overwrite to replace it whole with this export (give every run and sweep to see "
                         "together to one export).")
    try:
        runfolder.check_destination(dest, overwrite)
    except UsageError as e:  # its words name --out, the option of the commands that train
        raise UsageError(str(e).replace("output folder", f"{title} folder").replace("--out", option)) from None
    return dest


@dataclass
class Job:
    """One stored job, as exported."""

    source: Source
    key: str
    name: str  # its scheme as given, or a transfer strategy
    seed: int
    settings: dict[str, Any]  # every setting, as stored (lists, None)
    losses: list[float]  # per trained batch, as losses.csv holds them (to the batch that diverged)
    batches: int  # per epoch
    val_acc: list[float]  # after each epoch
    test_acc: float
    last_epoch_loss: float | None
    finished: float  # when it was committed (seconds since the epoch)
    seconds: float  # its training time (its chunk's, shared among the chunk's models)
    run: str = ""  # its TensorBoard run: the path under the log folder
    version: str = ""  # what tells it from another version of its scheme in the store ("code 1a2b3c4d"), or ""

    @property
    def task(self) -> tasks.Task:
        """What it learned: its val_acc and test_acc are its task's validation and test metrics."""
        return data.task(self.settings["dataset"])

    @property
    def label(self) -> str:
        """Its scheme as tables name it, with its version where the store holds several."""
        return f"{self.name} ({self.version})" if self.version else self.name


def read(source: Source) -> list[Job]:
    """The jobs of ``source``'s store, in its order (rows edited by hand are refused)."""
    with store.open_store(source.folder, write=False) as st:
        frame = store.all_versions_of(st.frame(), st.current())  # a scheme's versions (its code before an edit)
        stored = st.results(list(frame["key"]))
    jobs = []
    for row, result in zip(frame.itertuples(index=False), stored):
        flat = result.losses.flatten()
        trained = result.diverged_at or len(flat)  # as losses.csv: the batch that diverged is the last
        last = row.last_epoch_loss
        jobs.append(Job(source, row.key, row.name, int(row.seed), ADDED | data.stored(result.job.settings),
                        flat[:trained].tolist(), int(result.losses.shape[1]), list(result.val_acc),
                        float(result.test_acc), None if last is None or math.isnan(last) else float(last),
                        datetime.fromisoformat(row.finished).timestamp(), float(row.train_seconds),
                        version=row.version))
    return jobs


