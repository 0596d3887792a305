"""``initbench compare``: every (scheme, seed) job trained into a run folder's store, and
the views of the store written (CSVs, pictures, weights, run.json)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench import data, executors, initializers
from initbench.analysis.expect import evaluate, scores
from initbench.commands import stamped
from initbench.config import RunConfig
from initbench.jobs import Job
from initbench.storage import runfolder, store
from initbench.training import engines, streams
from initbench.views import progress
from initbench.words import plural

if TYPE_CHECKING:
    import pandas as pd

    from initbench.views import finished

MAX_NAME_CHARS = 120  # of the scheme names in a default folder name (file systems allow 255 bytes)


def compare(config: RunConfig, activity: progress.Activity) -> finished.Run:
    """Train every (scheme, seed) job of ``config`` and write the run's files."""
    names = "-".join(map(initializers.stem, config.schemes))  # a file scheme by its file and function, no path
    names = names if len(names) <= MAX_NAME_CHARS else names[:MAX_NAME_CHARS].rsplit("-", 1)[0] + "-etc"
    folder = train_run(config, config.names(), names, activity, finish=_best_rates(config) if config.lrs else None)
    from initbench.views import finished  # imported by train_run, after the run's first line

    return finished.Run(folder.path, folder)


Finish = Callable[["pd.DataFrame", "pd.DataFrame"], dict[str, Callable[[Path], object]]]


def _best_rates(config: RunConfig) -> Finish:
    """best_lr.csv: each scheme's best learning rate of the run's grid, with its interval over seeds."""
    named = {name: job for job, name in config.names().items()}

    def finish(runs: pd.DataFrame, summary: pd.DataFrame) -> dict[str, Callable[[Path], object]]:
        from initbench.analysis import rates

        frame = runs.assign(lr=[named[n].settings.optim.lr for n in runs["scheme"]],
                            scheme=[named[n].scheme for n in runs["scheme"]])
        best = rates.best_rates(frame, data.task(config.train.data.dataset), ["scheme"])
        return {rates.BEST_FILE: runfolder.csv_writer(best)}
    return finish


def train_run(config: RunConfig, jobs: dict[Job, str], name: str, activity: progress.Activity,
              finish: Finish | None = None, kind: str = "scheme",
              about: dict[str, Any] | None = None) -> runfolder.RunFolder:
    """Train ``jobs`` (each with the name its rows get: its scheme, or a transfer strategy)
    on ``config``'s data with its engine into the run folder's store, write the views of the
    store (CSVs, pictures, then report.html of them) and the weights; return where the folder
    went. ``finish`` (runs, summary) adds files; ``about``, entries of run.json."""
    started = datetime.now().astimezone()
    train = config.train
    with runfolder.run_folder(config.out or stamped(started, name), config.overwrite, activity.note) as folder, \
            activity.running(), executors.connect(config.placement, activity) as executor:
        dataset, classes = data.get(train.data.dataset), data.class_numbers(train.data)
        activity.stage(f"Loading {dataset.title}")
        # What trains and writes the run is imported after its first line (above): pandas and torch take seconds.
        import pandas as pd

        from initbench.analysis import frames
        from initbench.commands import training as plan
        from initbench.storage import machine, weights
        from initbench.views import finished, htmlpage

        device = executor.data_device  # torch is imported here (the local executor resolves its device when asked)
        splits = data.load(config.data_dir, train.data, activity.stage).to(device)
        task = data.task(train.data.dataset)
        text = dataset.corpus is not None
        n_batches = data.batches(train, len(splits.y_train))
        of_classes = "" if classes == dataset.all_classes else f" of classes {dataset.describe(classes)}"
        on = (f"{len(splits.y_train):,} characters, {plural(train.optim.epochs, 'epoch')} of {n_batches:,} steps of "
              f"{train.optim.batch_size:,} windows" if text else
              f"{len(splits.y_train):,} images{of_classes}, {plural(train.optim.epochs, 'epoch')} of "
              f"{n_batches:,} batches")
        kinds = (f"{plural(len(config.schemes), kind)} x {plural(len(config.lrs), 'learning rate')}" if config.lrs
                 else plural(len(set(jobs.values())), kind))
        activity.note(f"Training {plural(len(jobs), 'model')} ({kinds} x {plural(len(config.seeds), 'seed')}) on "
                      f"{on}, {executor.description}")
        epochs = max(job.settings.optim.epochs for job in jobs)
        chosen = engines.choice_note(config.engine, {job.settings.network.network for job in jobs})
        if chosen is not None:
            activity.note(chosen + ".")
        activity.stage("Training", total=len(jobs) * epochs * n_batches)
        keys = [store.key(job) for job in jobs]
        with store.open_store(folder.staging, "run") as st:
            tally = plan.train_into(st, jobs, plan.chunked(list(jobs), executor, config.max_batch_models), executor,
                                     plan.kept(config, config.save_weights), config.data_dir, activity, folder.staging,
                                     weights.weights_names(jobs) if config.save_weights else None,
                                     {train.data: splits})
            # Everything below is a view of the store.
            stored = st.results(keys)
        activity.stage("Writing the results and drawing the pictures")
        names = {r.job: jobs[job] for r, job in zip(stored, jobs)}
        runs = frames.runs_frame(stored, names, task)
        summary = frames.summary_frame(runs, task)
        losses = frames.losses_frame(stored, names)
        environment = machine.environment(device) | {"executor": executor.description}
        run_info = {
            "config": config.to_dict() | {"out": str(folder.path)},
            **environment,
            "data": splits.sizes(),
            "data_identity": data.identity(train.data),
            "random_streams": streams.VERSION,  # absent from earlier runs' run.json: version 1
            "started": started.isoformat(timespec="seconds"),
            "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
            "train_seconds": round(tally.train_seconds, 3),
            **(about or {}),
            # Judged here, so that run.json records them; the command line tells them once the folder is in place.
            **({"expectations": [o.record() for o in evaluate(
                config.expect, scores(runs, task.validation))]}
               if config.expect else {}),
        }
        stats_frame = pd.DataFrame([{"scheme": names[r.job], "seed": r.job.seed, **row}
                                    for r in stored for row in r.layer_stats or []])
        stats_files = ({"layer_stats.csv": runfolder.csv_writer(stats_frame),
                        "layer_stats.png": finished.stats_picture(stats_frame)} if config.track_stats else {})
        runfolder.write_files(folder.staging, {
            "accuracy.csv": runfolder.csv_writer(summary),
            "runs.csv": runfolder.csv_writer(runs),
            "losses.csv": runfolder.csv_writer(losses),
            **finished.loss_pictures(losses, config.plot_batches, n_batches, len(classes), task),
            **({finished.SAMPLES: runfolder.csv_writer(pd.DataFrame(
                [{"scheme": names[r.job], "seed": r.job.seed, "sample": tally.samples.get(job, "")}
                 for r, job in zip(stored, jobs)]))} if text else {}),
            "run.json": runfolder.json_writer(run_info),
            "config.toml": lambda p: p.write_text(config.to_toml()),
            **stats_files,
            **(finish(runs, summary) if finish else {}),
        })
        # The page is a view of the files just written (the folder is still staged: it goes into place with them).
        written = finished.open(folder.staging)
        assert isinstance(written, finished.Run)
        page = htmlpage.writer([written.page_part(folder.path.name)])
        runfolder.write_files(folder.staging, {htmlpage.PAGE: page})
    return folder
