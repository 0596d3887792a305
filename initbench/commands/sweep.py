"""``initbench sweep``: a grid expanded into jobs, only the jobs the store lacks trained,
chunk by chunk, and the views of the store written.

A sweep killed at any moment resumes from its store: a row in the store means the job
is finished and its files are there (``commands.training.train_into``).
"""

from __future__ import annotations

import resource
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from initbench import data, executors, initializers
from initbench.analysis.cells import expectations
from initbench.commands.training import Plan, check_data, expand, images, kept, plan, train_into
from initbench.config import RunConfig, SweepConfig
from initbench.errors import InitbenchError, UsageError
from initbench.executors import Executor
from initbench.host import busy
from initbench.jobs import Job
from initbench.settings import shown
from initbench.storage import machine, runfolder, store
from initbench.training import engines
from initbench.views import finished, progress
from initbench.views.sweep import task_of, write_views
from initbench.words import plural


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def durations(low: float, high: float) -> str:
    """A range of times in words: "70-80 s", "50 s-2 min"; "about 3 min" where both say the same."""
    a, b = duration(low), duration(high)
    if a == b:
        return f"about {a}"
    (x, unit), (y, other) = a.split(" "), b.split(" ")
    return f"{x}-{y} {unit}" if unit == other else f"{a}-{b}"


def run(sweep: SweepConfig, name: str, activity: progress.Activity,
        dry_run: bool = False) -> finished.Sweep | finished.SweepPlan:
    """Train what the sweep's store lacks, chunk by chunk, then write its views (runs.csv,
    cells.csv, pictures, sweep.toml, sweep.json): the grid's jobs, as a view of the store.
    With ``dry_run``, the plan and the jobs, and nothing written. ``name``: what the plan
    calls the sweep."""
    config, folder = sweep.run, sweep.run.out
    assert folder is not None
    started = datetime.now().astimezone()
    with activity.running():
        activity.stage(f"Keying the grid's {plural(sweep.size(), 'job')}")
        tic = time.perf_counter()  # deciding what is left: the keys, and the store's answer
        keys, repeats = expand(sweep)
        expanding = time.perf_counter() - tic
        check_data(sweep)
        with executors.connect(sweep.placement, activity) as executor:  # the cluster, before any file
            device = executor.data_device  # and the device (a local executor resolves it when first asked)
            chosen = engines.choice_note(config.engine, {cell.network.network for cell in sweep.cells()})
            if chosen is not None:
                activity.note(chosen + ".")
            if dry_run:
                done = _peek(folder, keys, config)
                planned = plan(keys, done.keys, executor, config.max_batch_models, activity)
            else:
                with _new_folder_removed_on_error(folder), store.open_store(folder, "sweep") as st, _resumable(st):
                    tic = time.perf_counter()
                    done = _done(st, keys, config)
                    decided = expanding + time.perf_counter() - tic
                    st.check_trained_by(executor.engine, executor.device_type)
                    planned = plan(keys, done.keys, executor, config.max_batch_models, activity)
                    _tell_plan(sweep, planned, repeats, name, executor, activity, done)
                    runfolder.write_files(folder, {"sweep.toml": lambda p: p.write_text(sweep.to_toml())})
                    activity.stage("Training", total=sum(
                        len(c) * c[0].settings.optim.epochs * data.batches(c[0].settings, images(c[0].settings)[0])
                        for c in planned.chunks))
                    tally = train_into(st, {job: job.scheme for job in planned.missing}, planned.chunks, executor,
                                       kept(config, config.save_weights), config.data_dir, activity, folder,
                                       {job: f"{keys[job][:16]}.safetensors" for job in planned.missing}
                                       if config.save_weights else None)
                    st.check_in_place()  # the views are of this store, in this folder: not of one deleted meanwhile
                    activity.stage("Writing the views and drawing the pictures")
                    frame = st.frame(list(keys.values()))
                    st.record_current({spec: initializers.get(spec).name for spec in config.schemes})
                    older = st.versions()[1]
                    model_epochs = sum(job.settings.optim.epochs for job in planned.missing)
                    figures = {
                        "jobs": len(keys), "trained_now": len(planned.missing),
                        "in_store_before": len(keys) - len(planned.missing),
                        "estimated_seconds": round(planned.seconds, 1),
                        "estimated_seconds_range": [round(planned.spread[0], 1), round(planned.spread[1], 1)],
                        "estimated_peak_bytes": planned.peak_bytes,
                        "train_seconds": round(tally.train_seconds, 3), "chunk_seconds": round(tally.chunk_seconds, 3),
                        "model_epochs_per_second": round(model_epochs / tally.train_seconds, 3) if tally.train_seconds
                        else None,
                        "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                        "store_seconds_per_job": round(tally.store_seconds / tally.jobs, 6) if tally.jobs else None,
                        "resume_decision_seconds": round(decided, 6),
                    }
                    info = {"config": sweep.to_toml(), **machine.environment(device),
                            "executor": executor.description, "started": started.isoformat(timespec="seconds"),
                            "finished": datetime.now().astimezone().isoformat(timespec="seconds"), "figures": figures,
                            "data_identity": _datasets(sweep)}
                    if config.expect:  # judged per cell, recorded in sweep.json; the command line tells them
                        info["expectations"] = [o.record() for o in expectations(frame, config.expect, task_of(frame))]
                    write_views(folder, frame, info, older)
    if dry_run:
        _tell_plan(sweep, planned, repeats, name, executor, activity, done)
        return finished.SweepPlan(folder, _job_rows(keys, done.keys, sweep))
    return finished.Sweep(folder, frame, older=older)


def trained(result: finished.Sweep) -> str:
    """What the run of a sweep trained, in words (from its sweep.json)."""
    figures = result.info["figures"]
    now = (f"Trained {plural(figures['trained_now'], 'job')} in {duration(figures['train_seconds'])} "
           f"({figures['model_epochs_per_second']:.2f} model-epochs/s)" if figures["trained_now"]
           else "Nothing to train")
    return f"{now}; the store holds all {plural(figures['jobs'], 'job')} of this grid."


def _datasets(sweep: SweepConfig) -> list[dict]:
    """The grid's datasets and their files (by SHA-256), as sweep.json records them."""
    names = dict.fromkeys(cell.data.dataset for cell in sweep.cells())
    return [{"dataset": data.get(name).title, "files_sha256": dict(data.get(name).files_sha256)} for name in names]


def _done(st: store.Store, keys: dict[Job, str], config: RunConfig) -> store.Done:
    """What of the grid is finished, as the run and its dry run both decide it, and which
    jobs are new because a user's scheme's code changed."""
    done = st.done(keys.values(), kept(config, config.save_weights))
    done.code_changed, done.restreamed = st.changed_versions([job for job, key in keys.items()
                                                               if key not in done.keys])
    return done


def _peek(folder: Path, keys: dict[Job, str], config: RunConfig) -> store.Done:
    """What a dry run finds finished: the run's answer, read without taking the lock."""
    if not store.exists(folder):
        return store.Done(set(), [], [])
    with store.open_store(folder, "sweep", write=False) as st:
        return _done(st, keys, config)


@contextmanager
def _resumable(st: store.Store) -> Iterator[None]:
    """A sweep that stops says what its store keeps: a signal (the CLI words ``kept``, and
    the exit status stays 128 + the signal), or an error during the work, to which is added
    that the same command resumes. Not a lost store (it keeps nothing), nor a usage error."""
    try:
        yield
    except KeyboardInterrupt as e:
        e.kept, e.folder = _kept(st), st.path.parent  # type: ignore[attr-defined]
        raise
    except (store.LostStore, UsageError):
        raise
    except InitbenchError as e:
        held = _kept(st)
        if not held:
            raise
        raise InitbenchError(f"{e} The store in {st.path.parent} keeps {plural(held, 'job')}: once that is "
                             "put right, the same command resumes from them.") from e


def _kept(st: store.Store) -> int:
    """The jobs a store holds, as far as it can be read."""
    try:
        return st.count()
    except InitbenchError:
        return 0


@contextmanager
def _new_folder_removed_on_error(folder: Path) -> Iterator[None]:
    """Make ``folder`` if it does not exist; if it was made here and the work fails before
    a job is committed, remove it: a typo in a grid leaves no empty sweep behind. Not if
    another folder took its place meanwhile: that one is someone else's."""
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    mine = store.file_id(folder)
    try:
        yield
    except BaseException:
        if made and store.file_id(folder) == mine and not _holds_rows(folder):
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _holds_rows(folder: Path) -> bool:
    """Whether a folder's store holds a row (or cannot be read, so may)."""
    if not store.exists(folder):
        return False
    try:
        with store.open_store(folder, write=False) as st:
            return st.count() > 0
    except InitbenchError:
        return True


def _tell_plan(sweep: SweepConfig, planned: Plan, repeats: int, name: str, executor: Executor,
               activity: progress.Activity, done: store.Done) -> None:
    cells = len(sweep.cells())
    axes = " x ".join(f"{len(values)} {key}" for key, values in sweep.grid)
    n = len(planned.keys)
    activity.say(f"Sweep {name}: {plural(n, 'job')} = {plural(cells, 'cell')}"
                  + (f" ({axes})" if axes else "")
                  + f" x {plural(len(sweep.run.schemes), 'scheme')} x "
                  f"{plural(len(sweep.run.seeds), 'seed')}"
                  + (f" ({repeats} repeated jobs counted once)" if repeats else "") + ".")
    largest = max((len(c) for c in planned.chunks), default=0)
    activity.say(f"In the store: {n - len(planned.missing):,}; to train: {len(planned.missing):,}"
                  + (f", in {plural(len(planned.chunks), 'chunk')} of up to {largest} models (cells that "
                     f"differ only in lr, betas, weight decay or momentum share one; {executor.description}); estimated {durations(*planned.spread)} of "
                     f"training and {planned.peak_bytes / 2**30:.1f} GiB of memory at most"
                     + (" per task" if executor.slots > 1 else "") + " (from steps timed where they train: the "
                     "middle half of their times)." if planned.missing else "."))
    if planned.missing and (load := busy()) is not None:
        activity.say(f"This machine is busy ({load}): training's times vary with the load.")
    for note in done.notes():  # rows the store holds that do not count as finished, and why
        activity.say(note)


def _job_rows(keys: dict[Job, str], done: set[str], sweep: SweepConfig) -> list[dict]:
    varied = [k for k, _ in sweep.grid]
    return [{**{k: shown(k, job.settings.flat()[k]) for k in varied}, "scheme": job.scheme, "seed": job.seed,
             "key": k, "status": "in the store" if k in done else "to train"}
            for job, k in keys.items()]
