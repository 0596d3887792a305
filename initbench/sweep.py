"""Training into a store (``compare``'s run and ``sweep``'s grid alike), and the sweep:
a grid expanded into jobs, only the jobs the store lacks trained, chunk by chunk, and a
report of every cell with paired comparisons.

A chunk of jobs is trained by the engine, its weights files (if kept) written whole,
and then its rows committed in one transaction: a row in the store means the job is
finished and its files are there. A sweep killed at any moment resumes from its store.
"""

from __future__ import annotations

import heapq
import math
import resource
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from initbench import data, engines, executors, pictures, report, results, runfolder, store
from initbench.config import TRAIN_KEYS, RunConfig, SweepConfig
from initbench.data import TRAIN_SPLIT
from initbench.errors import InitbenchError, UsageError
from initbench.executors import Executor
from initbench.jobs import Job, Keep, TrainSettings, batches_per_epoch
from initbench.model import N_INPUTS

VALIDATION_IMAGES, TEST_IMAGES = 12_000, 10_000  # of all ten classes


def _by_data(jobs: Iterable[Job]) -> dict[tuple, list[Job]]:
    """Jobs by the data they train on (``settings.data``), in order: one split loaded per group."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.settings.data, []).append(job)
    return groups


def kept(config: RunConfig, weights: bool) -> Keep:
    """What a run keeps of each job beside its metrics."""
    return Keep(weights=weights, initial=weights and config.save_init, layer_stats=config.track_stats)


def chunked(jobs: Sequence[Job], config: RunConfig, executor: Executor) -> list[list[Job]]:
    """The chunks ``jobs`` train in: one data split and one cell each, as many models as fit
    where they train (and ``max_batch_models`` allows); with several task slots, no more than
    spreads the jobs over all of them."""
    if not jobs:
        return []
    fits = executor.max_models(list({job.settings: None for job in jobs}))
    spread = math.ceil(len(jobs) / executor.slots)
    size = {s: min(n, config.max_batch_models or n, spread) for s, n in fits.items()}
    return [chunk for group in _by_data(jobs).values() for chunk in engines.plan(group, config.engine, size.get)]


@dataclass
class Trained:
    """What training into a store cost: seconds waiting for training (data loading and
    writing excluded; on several workers, the wall-clock time), seconds of training summed
    over the chunks (where they trained), and seconds writing the store (the commits, and
    weights files if kept)."""

    train_seconds: float = 0.0
    chunk_seconds: float = 0.0
    store_seconds: float = 0.0
    jobs: int = 0


def train_into(st: store.Store, jobs: Mapping[Job, str], chunks: Sequence[Sequence[Job]], executor: Executor,
               config: RunConfig, activity: report.Activity, folder: Path,
               weights_names: Mapping[Job, str] | None = None,
               loaded: Mapping[tuple, data.Splits] | None = None) -> Trained:
    """Train ``chunks`` of ``jobs`` (each with the name tables give it) with ``executor``,
    committing each chunk's rows to ``st`` as it finishes (``loaded``: data splits already
    loaded, by ``settings.data``); with ``weights_names`` (file names under
    ``folder/weights``), each chunk's final weights are written before its rows."""
    tally = Trained()
    keep = kept(config, weights_names is not None)
    by_data: dict[tuple, list[list[Job]]] = {}
    for chunk in chunks:
        by_data.setdefault(chunk[0].settings.data, []).append(list(chunk))
    sizes: dict[tuple, dict[str, int]] = {}
    loading = 0.0

    def load(key: tuple) -> data.Splits:
        nonlocal loading
        tic = time.perf_counter()
        classes, split_seed, train_samples = key
        splits = (loaded or {}).get(key) or data.load(config.data_dir, split_seed, train_samples, classes,
                                                      activity.note).to(executor.data_device)
        sizes[key] = splits.sizes()
        loading += time.perf_counter() - tic
        return splits

    started = time.perf_counter()
    for done in executor.train(by_data, load, keep, activity):
        trained = time.perf_counter()
        files = None
        if weights_names is not None:
            classes, split_seed, train_samples = key = done.results[0].job.settings.data
            about = {"data": data.identity(split_seed, train_samples, classes) | {"sizes": sizes[key]},
                     "trained_with": {"engine": done.machine.engine, "device": done.machine.device,
                                      "device_name": done.machine.device_name}}
            files = {r.job: f"weights/{weights_names[r.job]}" for r in done.results}
            st.check_in_place()  # before the files: a deleted folder is not made again for them
            # On disk (fsync) before the row that names them commits: a power cut cannot leave a row without its file.
            runfolder.write_files(folder, results.weights_writers(done.results, jobs, about, weights_names), sync=True)
        st.add(done.results, jobs, done.seconds, done.machine, files)
        tally.chunk_seconds += done.seconds
        tally.store_seconds += time.perf_counter() - trained
        tally.jobs += len(done.results)
    tally.train_seconds = time.perf_counter() - started - loading - tally.store_seconds
    return tally


# --- the sweep


@dataclass
class Plan:
    """A sweep's jobs, those the store lacks, the chunks they train in, and an estimate."""

    keys: dict[Job, str]  # every job of the grid (one per key), with its key
    missing: list[Job]
    chunks: list[list[Job]]
    seconds: float  # of training, estimated from the engine's measured steps
    peak_bytes: int  # the largest chunk's models and the data, estimated


def expand(sweep: SweepConfig) -> tuple[dict[Job, str], int]:
    """The grid's jobs with their keys, one job per key (cells that differ only where it
    changes nothing, such as momentum under Adam, share their jobs), and how many repeats
    were dropped."""
    by_key: dict[str, Job] = {}
    all_jobs = sweep.jobs()
    for job in all_jobs:
        by_key.setdefault(store.key(job), job)
    return {job: k for k, job in by_key.items()}, len(all_jobs) - len(by_key)


def check_data(sweep: SweepConfig) -> None:
    """Refuse, before any work, a cell whose training subset is larger than its split holds
    (which depends on its classes and split seed: counted from the labels, once each)."""
    subsets = [cell for cell in sweep.cells() if cell.train_samples is not None]
    if not subsets:
        return
    held = data.train_images(sweep.run.data_dir, [(cell.split_seed, cell.classes) for cell in subsets])
    for cell in subsets:
        split = (cell.split_seed, cell.classes)
        if cell.train_samples > held[split]:
            of = "" if cell.classes == data.ALL_CLASSES else f" of classes {data.describe(cell.classes)}"
            raise UsageError(f"In the grid's cell {sweep.cell_name(cell)}: train_samples is {cell.train_samples:,}, "
                             f"but the training split holds only {held[split]:,} images{of}. Give train_samples at "
                             "most that (in the config, or with --set), or vary it with the classes.")


def _images(s: TrainSettings) -> tuple[int, int, int]:
    """Training, validation and test images of a cell, without loading them (classes are
    near equal in size)."""
    share = len(s.classes) / len(data.ALL_CLASSES)
    return (s.train_samples or round(TRAIN_SPLIT * share), round(VALIDATION_IMAGES * share),
            round(TEST_IMAGES * share))


def plan(keys: dict[Job, str], done: set[str], config: RunConfig, executor: Executor,
         activity: report.Activity | None = None) -> Plan:
    """The jobs the store lacks, their chunks, and the time and memory they will take."""
    missing = [job for job, k in keys.items() if k not in done]
    chunks = chunked(missing, config, executor)
    per_step = _step_seconds({job.settings: None for job in missing}, executor, activity)
    seconds, peak = [], 0
    for chunk in chunks:
        s = chunk[0].settings
        n_train, n_val, n_test = _images(s)
        steps = s.epochs * (batches_per_epoch(n_train, s.batch_size) + n_val / (3 * s.batch_size))
        seconds.append(per_step[s] * len(chunk) * (steps + n_test / (3 * s.batch_size)))  # evaluation: a forward
        images = (n_train + n_val + n_test) * N_INPUTS * 4
        peak = max(peak, len(chunk) * engines.bytes_per_model(s) + images)
    return Plan(keys, missing, chunks, _makespan(seconds, executor.slots), peak)


def _step_seconds(settings: Iterable[TrainSettings], executor: Executor,
                  activity: report.Activity | None) -> dict[TrainSettings, float]:
    """Seconds per model of a step with each of ``settings``, timed once per shape (what a
    step's cost depends on, engines.step_shape: cells that differ in lr, seeds or momentum
    share one timing), in a stage of its own."""
    shapes = {s: engines.step_shape(s) for s in settings}
    distinct = list(dict.fromkeys(shapes.values()))
    if activity is not None and distinct:
        activity.stage(f"Timing a step of {report.plural(len(distinct), 'shape')}")
    timed = executor.step_seconds(distinct) if distinct else {}
    return {s: timed[shape] for s, shape in shapes.items()}


def _makespan(seconds: list[float], slots: int) -> float:
    """When the last of chunks taking ``seconds`` finishes on ``slots`` workers, each chunk
    going to the first free one, longest first."""
    free = [0.0] * slots
    for s in sorted(seconds, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def run(sweep: SweepConfig, name: str, fmt: str, quiet: bool = False, dry_run: bool = False) -> Path:
    """Train what the sweep's store lacks, chunk by chunk, then write its views (runs.csv,
    cells.csv, pictures, sweep.toml, sweep.json) and print its report."""
    config, folder = sweep.run, sweep.run.out
    assert folder is not None
    err = Console(stderr=True)
    activity = report.Activity(err, quiet)
    started = datetime.now().astimezone()
    tell = err if not quiet else None
    with activity.running():
        activity.stage(f"Keying the grid's {report.plural(sweep.size(), 'job')}")
        tic = time.perf_counter()  # deciding what is left: the keys, and the store's answer
        keys, repeats = expand(sweep)
        expanding = time.perf_counter() - tic
        check_data(sweep)
        with executors.connect(config, activity) as executor:  # the cluster, before any file
            if dry_run:
                done = _peek(folder, keys, config)
                planned = plan(keys, done.keys, config, executor, activity)
            else:
                with _new_folder_removed_on_error(folder), store.open_store(folder, "sweep") as st, _resumable(st):
                    tic = time.perf_counter()
                    done = _done(st, keys, config)
                    decided = expanding + time.perf_counter() - tic
                    st.check_trained_by(config.engine, executor.device_type)
                    planned = plan(keys, done.keys, config, executor, activity)
                    _tell_plan(sweep, planned, repeats, name, executor, tell, done)
                    runfolder.write_files(folder, {"sweep.toml": lambda p: p.write_text(sweep.to_toml())})
                    activity.stage("Training", total=sum(
                        len(c) * c[0].settings.epochs * batches_per_epoch(_images(c[0].settings)[0],
                                                                          c[0].settings.batch_size)
                        for c in planned.chunks))
                    tally = train_into(st, {job: job.scheme for job in planned.missing}, planned.chunks, executor,
                                       config, activity, folder, {job: f"{keys[job][:16]}.safetensors"
                                                                  for job in planned.missing}
                                       if config.save_weights else None)
                    st.check_in_place()  # the views are of this store, in this folder: not of one deleted meanwhile
                    activity.stage("Writing the views and drawing the pictures")
                    frame = st.frame(list(keys.values()))
                    model_epochs = sum(job.settings.epochs for job in planned.missing)
                    figures = {
                        "jobs": len(keys), "trained_now": len(planned.missing),
                        "in_store_before": len(keys) - len(planned.missing),
                        "estimated_seconds": round(planned.seconds, 1), "estimated_peak_bytes": planned.peak_bytes,
                        "train_seconds": round(tally.train_seconds, 3), "chunk_seconds": round(tally.chunk_seconds, 3),
                        "model_epochs_per_second": round(model_epochs / tally.train_seconds, 3) if tally.train_seconds
                        else None,
                        "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                        "store_seconds_per_job": round(tally.store_seconds / tally.jobs, 6) if tally.jobs else None,
                        "resume_decision_seconds": round(decided, 6),
                    }
                    info = {"config": sweep.to_toml(), **results.environment(executor.data_device),
                            "executor": executor.description, "started": started.isoformat(timespec="seconds"),
                            "finished": datetime.now().astimezone().isoformat(timespec="seconds"), "figures": figures}
                    listing = write_views(folder, frame, info)
    if dry_run:
        _tell_plan(sweep, planned, repeats, name, executor, tell, done)
        report.show(report.jobs_listing(_job_rows(keys, done.keys, sweep)), fmt, Console())
        return folder
    report.show(listing, fmt, Console())
    if not quiet:
        trained = (f"Trained {report.plural(len(planned.missing), 'job')} in {_duration(tally.train_seconds)} "
                   f"({figures['model_epochs_per_second']:.2f} model-epochs/s)" if planned.missing
                   else "Nothing to train")
        err.print(f"{trained}; the store holds all {report.plural(len(keys), 'job')} of this grid.")
        err.print(f"Results in {folder}")
    return folder


def _done(st: store.Store, keys: dict[Job, str], config: RunConfig) -> store.Done:
    """What of the grid is finished, as the run and its dry run both decide it."""
    return st.done(keys.values(), kept(config, config.save_weights))


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
        raise InitbenchError(f"{e} The store in {st.path.parent} keeps {report.plural(held, 'job')}: once that is "
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
               console: Console | None, done: store.Done) -> None:
    if console is None:
        return
    cells = len(sweep.cells())
    axes = " x ".join(f"{len(values)} {key}" for key, values in sweep.grid)
    n = len(planned.keys)
    console.print(f"Sweep {name}: {report.plural(n, 'job')} = {report.plural(cells, 'cell')}"
                  + (f" ({axes})" if axes else "")
                  + f" x {report.plural(len(sweep.run.schemes), 'scheme')} x "
                  f"{report.plural(len(sweep.run.seeds), 'seed')}"
                  + (f" ({repeats} repeated jobs counted once)" if repeats else "") + ".")
    largest = max((len(c) for c in planned.chunks), default=0)
    console.print(f"In the store: {n - len(planned.missing):,}; to train: {len(planned.missing):,}"
                  + (f", in {report.plural(len(planned.chunks), 'chunk')} of up to {largest} models (one cell "
                     f"each; {executor.description}); estimated {_duration(planned.seconds)} of "
                     f"training and {planned.peak_bytes / 2**30:.1f} GiB of memory at most"
                     + (" per task" if executor.slots > 1 else "") + " (from steps timed where they train)."
                     if planned.missing else "."))
    for note in done.notes():  # rows the store holds that do not count as finished, and why
        console.print(note)


def _job_rows(keys: dict[Job, str], done: set[str], sweep: SweepConfig) -> list[dict]:
    varied = [k for k, _ in sweep.grid]
    return [{**{k: shown(k, getattr(job.settings, k)) for k in varied}, "scheme": job.scheme, "seed": job.seed,
             "key": k, "status": "in the store" if k in done else "to train"}
            for job, k in keys.items()]


def shown(key: str, value: Any) -> str:
    """A setting's value as tables and pictures show it: hidden 256x30, classes 5,6."""
    if key == "hidden":
        sizes = list(value)
        return f"{sizes[0]}x{len(sizes)}" if len(set(sizes)) == 1 and len(sizes) > 1 else ",".join(map(str, sizes))
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if value is None or (isinstance(value, float) and math.isnan(value)):  # pandas reads None as NaN
        return "all" if key == "train_samples" else "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def cells_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per cell (a combination of the settings that vary among the rows) and scheme: seeds,
    mean and std of validation accuracy, and the paired difference to the best scheme of
    the cell (mean, 95% t-interval over seeds, verdict). And the varied settings."""
    shown_frame = frame.assign(**{k: [shown(k, v) for v in frame[k]] for k in TRAIN_KEYS})
    varied = [k for k in TRAIN_KEYS if shown_frame[k].nunique() > 1]
    parts = []
    groups = shown_frame.groupby(varied, sort=False) if varied else [((), shown_frame)]
    for cell, rows in groups:
        runs = rows[["name", "seed", "val_acc"]].rename(columns={"name": "scheme"})
        best = runs.groupby("scheme", sort=False)["val_acc"].mean().idxmax()
        paired = results.paired_frame(runs, best)
        values = cell if isinstance(cell, tuple) else (cell,)
        for k, v in zip(varied, values):
            paired.insert(varied.index(k), k, v)
        paired.insert(len(varied) + 1, "test_acc_mean", paired["scheme"].map(
            rows.groupby("name")["test_acc"].mean()))
        paired["diverged_seeds"] = paired["scheme"].map(rows.groupby("name")["diverged_at"].count())
        paired["chance"] = 1 / len(frame.loc[rows.index[0], "classes"])
        parts.append(paired)
    return pd.concat(parts, ignore_index=True), varied


def write_views(folder: Path, frame: pd.DataFrame, info: dict[str, Any] | None = None) -> report.Listing:
    """runs.csv, cells.csv and the pictures of ``frame`` (store rows) in ``folder``, and
    (with ``info``) sweep.json; returns the report's table."""
    cells, varied = cells_frame(frame)
    files: dict[str, Callable[[Path], object]] = {
        "runs.csv": runfolder.csv_writer(frame.drop(columns=["identity", "layer_stats"]).assign(
            **{k: [shown(k, v) for v in frame[k]] for k in ("hidden", "classes")})),
        "cells.csv": runfolder.csv_writer(cells),
        "heatmap.png": lambda p: pictures.plot_sweep_heatmap(cells, varied, p),
    }
    for setting in varied:
        files[f"accuracy_by_{setting}.png"] = (
            lambda p, setting=setting: pictures.plot_sweep_lines(cells, setting, varied, p))
    if info is not None:
        files["sweep.json"] = runfolder.json_writer(info)
    runfolder.write_files(folder, files)
    return _listing(frame, cells, varied)


def _listing(frame: pd.DataFrame, cells: pd.DataFrame, varied: list[str]) -> report.Listing:
    seeds = int(cells["seeds"].max())
    epochs = sorted(frame["epochs"].unique())
    title = (f"Validation accuracy after {' or '.join(report.plural(int(e), 'epoch') for e in epochs)}"
             + (f", mean ± std over {report.plural(seeds, 'seed')}" if seeds > 1 else "")
             + f" ({report.plural(len(frame), 'job')})")
    return report.sweep_listing(cells, varied, title)


def report_folder(folder: Path, fmt: str, redraw: bool) -> None:
    """``initbench report`` of a sweep folder: every job its store holds (the union of
    every grid swept into it), its views rewritten with ``redraw``."""
    with store.open_store(folder, write=False) as st:
        frame = st.frame()
    if frame.empty:
        raise UsageError(f"The store in {folder} holds no finished job yet. Run the sweep first (it resumes).")
    if redraw:
        listing = write_views(folder, frame)
        Console(stderr=True).print(f"Views rewritten in {folder}: runs.csv, cells.csv and the pictures.",
                                   style="dim")
    else:
        listing = _listing(frame, *cells_frame(frame))
    report.show(listing, fmt, Console())
