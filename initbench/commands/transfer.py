"""``initbench transfer``: source networks trained on task A (or taken from a compare run),
then on task B, for every seed on the same batches, networks from scratch under each scheme
and from the seed's source network frozen, frozen then unfrozen, and fine-tuned whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from initbench import data
from initbench.analysis import frames
from initbench.commands.compare import compare, train_run
from initbench.config import TransferConfig
from initbench.errors import UsageError
from initbench.jobs import Job
from initbench.storage import runfolder, weights
from initbench.views import finished, pictures, progress
from initbench.words import plural


def transfer(config: TransferConfig, activity: progress.Activity) -> finished.TransferRun:
    """The transfer experiment, each start against the best scratch scheme (paired by seed)."""
    run, frozen = config.run, config.frozen_layers
    source_scheme, task_a = config.source_scheme, config.task_a
    source = None
    if config.source_dir is None:
        source = compare(config.source_run(), activity)
        source_dir = source.folder
    else:  # task A is what the given sources learned
        source_dir = config.source_dir
        source_scheme, task_a = runfolder.source_run(source_dir, run.train.data)
    names = weights.weights_names({Job(source_scheme, seed, run.train): source_scheme for seed in run.seeds})
    sources = {job.seed: source_dir / "weights" / name for job, name in names.items()}
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise UsageError(f"The source run {source_dir} has no weights for seeds of this run: {', '.join(missing)}. "
                         "Give as many --seeds as the source run has, or train the sources here (no --source).")
    strategies = {
        f"pretrained, {plural(frozen, 'layer')} frozen": {"freeze": frozen},
        f"pretrained, frozen {plural(config.unfreeze_after, 'epoch')}": {
            "freeze": frozen, "unfreeze_after": config.unfreeze_after},
        "pretrained, fine-tuned": {},
    }
    jobs = {job: job.scheme for job in run.jobs()}
    for seed, path in sources.items():
        for label, changes in strategies.items():
            jobs[Job(f"pretrained:{path}", seed, run.train.replace(**changes))] = label
    task_b = run.train.data
    title = finished.transfer_title(task_b.dataset, data.class_numbers(task_b), task_b.train_samples,
                                    run.train.optim.epochs, task_a)

    def finish(runs: pd.DataFrame, summary: pd.DataFrame) -> dict[str, Callable[[Path], object]]:
        best = summary[summary["scheme"].isin(run.schemes)].iloc[0]["scheme"]
        comparison = frames.paired_frame(runs, best)
        return {"transfer.csv": runfolder.csv_writer(comparison),
                "transfer.png": lambda p: pictures.plot_transfer(runs, comparison, p, title, data.task(task_b.dataset))}

    about = {"transfer": {"task_a": list(task_a), "source_scheme": source_scheme, "source_dir": str(source_dir),
                          "config": config.to_toml()}}  # what `initbench transfer --config` repeats it from
    folder = train_run(run, jobs, "transfer", activity, finish, kind="start", about=about)
    return finished.TransferRun(folder.path, folder, source=source)
