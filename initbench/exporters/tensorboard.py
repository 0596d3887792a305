"""Finished runs and sweeps as TensorBoard's event files (``initbench export --tensorboard``).

Every job a run or sweep folder's store holds becomes one TensorBoard run, a folder of
its own under the log folder, named ``<folder>/<cell>/<scheme>/seed-<k>`` (the cell, the
grid's settings that vary among a sweep's jobs, only for a sweep that varies any), with:

- ``loss/train``: the training loss of every batch, as the store holds it (float32), at
  step = the batch's number over the whole training, from 1 (what losses.csv holds);
- ``accuracy/val``: the validation accuracy after each epoch, at the step that ends it
  (the store keeps one per epoch; runs.csv only the last);
- ``accuracy/test``: the test accuracy, at the last step (only the final one is kept);
- ``loss/last_epoch``: the mean training loss of the last epoch, at the last step (none
  for a model that diverged);
- its settings as TensorBoard's HParams (scheme, seed, the settings that matter and those
  that vary among the jobs exported), with the four scalars declared as its metrics, so
  the HParams dashboard's table has one row per job. Every run carries the same
  experiment description (the hparams' types and, for text ones, every value they take
  in the export), so the parallel-coordinates view sees them all.

Accuracies are fractions, as the CSV files hold them. Wall times are the store's: each
job's scalars spread over its training time (its chunk's time shared among its models)
up to when it was committed. The log folder is written whole or not at all: staged beside
itself and renamed into place (``runfolder.run_folder``); a log folder that holds files
is refused unless ``--overwrite`` replaces it whole, so a run exported twice never shows
its curves twice. ``tensorboard`` is an optional dependency (``initbench[tensorboard]``);
this module imports neither it nor torch at module level: the command line checks
everything it was given before either loads.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench import tasks
from initbench.errors import InitbenchError, require
from initbench.exporters import Job
from initbench.initializers import stem
from initbench.settings import FLAT

if TYPE_CHECKING:
    import pandas as pd

    from initbench.views.progress import Activity

INSTALL = "pip install 'initbench[tensorboard]'"
TITLE = "TensorBoard"  # what the export's table and messages call the format
LOSS, LAST_EPOCH = "loss/train", "loss/last_epoch"
NOTE = (f"Each job is a TensorBoard run, <folder>[/<cell>]/<scheme>/seed-<k>, with the scalars {LOSS} (every "
        "batch), {val} (every epoch), {test} and " f"{LAST_EPOCH} (at the last step), and its settings as HParams. "
        "See them with: tensorboard --logdir {dest}")


def metrics(task: tasks.Task) -> dict[str, tuple[str, str, str]]:
    """What the HParams dashboard is told of each scalar (each run's last value): by tag, its
    name, description and what data it is of; the task's metrics named as the task names them."""
    def after(metric: tasks.Metric) -> str:
        return "after the last epoch, " + ("0 to 1" if metric.unit == "%" else f"in {metric.unit}")

    val, test = task.validation, task.test
    return {val.tag: (val.name, after(val), "DATASET_VALIDATION"),
            test.tag: (test.name, after(test), "DATASET_UNKNOWN"),
            LOSS: ("last batch loss", f"training {task.loss} of the last batch", "DATASET_TRAINING"),
            LAST_EPOCH: ("last epoch loss", "mean training loss of the last epoch", "DATASET_TRAINING")}


# The settings every export shows as hparams (in this order, after the scheme and the seed); any other
# setting is shown where it varies among the jobs exported, or where it is used (momentum under SGD, μP's base).
SETTINGS = ("dataset", "network", "hidden", "activation", "dropout", "optimizer", "lr", "momentum", "batch_size",
            "epochs", "train_samples")
NAME_CHARS = 100  # of one part of a run's path, at most (file systems allow 255 bytes)


def check_installed() -> None:
    """Refuse, before any work, an export without TensorBoard installed."""
    require("tensorboard", "--tensorboard needs TensorBoard, which is not installed here: initbench writes its event "
            "files through torch.utils.tensorboard, which needs the tensorboard package. Install it "
            f"with {INSTALL} (or pip install tensorboard), then run the same command again.")


def held(folder: Path) -> str | None:
    """What an earlier export left in ``folder``, in words (None: no event file)."""
    events = sum(1 for _ in _event_files(folder))
    return f"the event files of {events:,} TensorBoard run{'s' if events != 1 else ''} (an earlier export?)" \
        if events else None


def _event_files(folder: Path) -> Iterable[Path]:
    for root, _, files in os.walk(folder):
        yield from (Path(root) / f for f in files if f.startswith("events.out.tfevents."))


# --- writing: after the checks, torch and tensorboard imported here


def _safe(text: str, also: str = "") -> str:
    """``text`` as one folder name on any file system: characters other than letters, digits,
    ``._+-`` and ``also`` as ``_``, no leading dot, at most NAME_CHARS (a longer one cut, with its hash)."""
    name = re.sub(rf"[^A-Za-z0-9._+{re.escape(also)}-]+", "_", text).lstrip(".") or "_"
    if len(name) > NAME_CHARS:
        name = name[:NAME_CHARS - 9] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return name


def name_runs(jobs: Sequence[Job]) -> None:
    """Each job's TensorBoard run, ``<folder>/<cell>/<scheme>/seed-<k>``, distinct (``-2``... where
    two would meet): the folder's own name, the sweep's varied settings (``lr=0.01,hidden=64``)."""
    from initbench.settings import shown

    prefixes: dict[Path, str] = {}
    for source in dict.fromkeys(job.source for job in jobs):
        base, n = _safe(source.folder.resolve().name), 1
        while (prefix := base if n == 1 else f"{base}-{n}") in prefixes.values():
            n += 1
        prefixes[source.folder] = prefix
    varied: dict[Path, list[str]] = {}
    for folder in prefixes:
        own = [job for job in jobs if job.source.folder == folder]
        sweep = own[0].source.kind == "sweep"
        varied[folder] = [k for k in FLAT
                          if sweep and len({shown(k, job.settings[k]) for job in own}) > 1]
    # A user's file scheme by its file's name, but two files of one name by their paths.
    short = {name: _safe(stem(name)) for name in dict.fromkeys(job.name for job in jobs)}
    stems = {name: _safe(name) if list(short.values()).count(s) > 1 else s for name, s in short.items()}
    taken: set[str] = set()
    for job in jobs:
        cell = ",".join(f"{k}={shown(k, job.settings[k]).replace(',', '-')}" for k in varied[job.source.folder])
        scheme = stems[job.name] + (f"-{_safe(job.version)}" if job.version else "")
        parts = [prefixes[job.source.folder], *([_safe(cell, "=,")] if cell else []), scheme]
        base, n = "/".join([*parts, f"seed-{job.seed}"]), 1
        while (run := base if n == 1 else f"{base}-{n}") in taken:
            n += 1
        taken.add(run)
        job.run = run


def hparams(jobs: Sequence[Job]) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Each job's hparams, and the values each text hparam takes among ``jobs`` (its discrete
    domain). A setting is a number where it is one in every job, else text as tables show it
    (hidden 256,128, train_samples all); ``run`` (the folder) where several are exported."""
    from initbench.settings import shown

    def used(key: str) -> bool:
        settings = [job.settings for job in jobs]
        return ((key in SETTINGS and (key != "momentum" or any(s["optimizer"] == "sgd" for s in settings)))
                or (key in ("parametrization", "base_width") and any(s["parametrization"] != "sp" for s in settings))
                or len({shown(key, s[key]) for s in settings}) > 1)

    keys = [k for k in (*SETTINGS, *FLAT) if used(k)]
    rows: list[dict[str, Any]] = [
        ({"run": job.run.split("/")[0]} if len({j.source.folder for j in jobs}) > 1 else {})
        | {"scheme": job.label, "seed": job.seed} for job in jobs]
    for key in dict.fromkeys(keys):
        values = [job.settings[key] for job in jobs]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
        for row, value in zip(rows, values):
            row[key] = value if numbers else shown(key, value)
    domains = {key: sorted({row[key] for row in rows}) for key in rows[0] if isinstance(rows[0][key], str)}
    return rows, domains


def write(jobs: Sequence[Job], folder: Path, activity: Activity) -> pd.DataFrame:
    """Every job as a TensorBoard run in ``folder``; one row per run written (its path, the
    folder and job it is, its steps and final accuracies)."""
    import pandas as pd
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    name_runs(jobs)
    rows, domains = hparams(jobs)
    described = metrics(jobs[0].task)  # one task an export (commands.export)
    experiment = _experiment(hparams_summaries(rows[0], dict.fromkeys(described), domains)[0], rows, described)
    activity.stage(f"Writing {len(jobs):,} TensorBoard runs", total=len(jobs))
    written = []
    for job, hparam_row in zip(jobs, rows):
        last = len(job.val_acc) * job.batches
        start = job.finished - job.seconds

        def at(step: int) -> float:
            return start + job.seconds * step / last

        try:
            writer = SummaryWriter(log_dir=str(folder / job.run))
            try:
                for step, loss in enumerate(job.losses, 1):
                    writer.add_scalar(LOSS, loss, step, walltime=at(step))
                for epoch, acc in enumerate(job.val_acc, 1):
                    writer.add_scalar(job.task.validation.tag, acc, epoch * job.batches,
                                      walltime=at(epoch * job.batches))
                writer.add_scalar(job.task.test.tag, job.test_acc, last, walltime=at(last))
                if job.last_epoch_loss is not None:
                    writer.add_scalar(LAST_EPOCH, job.last_epoch_loss, last, walltime=at(last))
                _, start_info, end_info = hparams_summaries(hparam_row, dict.fromkeys(described), domains)
                for summary in (experiment, start_info, end_info):
                    writer.file_writer.add_summary(summary, walltime=start)
            finally:
                writer.close()
        except OSError as e:  # a full disk, a quota, a folder removed under the export
            raise InitbenchError(f"Could not write the TensorBoard logs in {folder}: {e.strerror or e}. Free some "
                                 "space or choose another --tensorboard folder.") from e
        written.append({"run": job.run, "folder": str(job.source.folder), "kind": job.source.label,
                        "scheme": job.label, "seed": job.seed, "key": job.key, "steps": len(job.losses),
                        "epochs": len(job.val_acc), "val_acc": job.val_acc[-1], "test_acc": job.test_acc})
        activity.advance()
    return pd.DataFrame(written)


def _experiment(summary: Any, rows: Sequence[dict[str, Any]], described: dict[str, tuple[str, str, str]]) -> Any:
    """torch's experiment summary (every run carries the same), with which hparams differ among
    the jobs (TensorBoard lists those first) and the metrics described."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    value = summary.value[0]
    content = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in content.experiment.hparam_infos:
        info.differs = len({row[info.name] for row in rows}) > 1
    for info in content.experiment.metric_infos:
        name, description, dataset = described[info.name.tag]
        info.display_name, info.description, info.dataset_type = name, description, api_pb2.DatasetType.Value(dataset)
    value.metadata.plugin_data.content = content.SerializeToString()
    return summary
