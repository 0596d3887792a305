"""Training into a store (``compare``'s run and ``sweep``'s grid alike), and the sweep's
plan: a grid expanded into jobs, and the chunks, time and memory of the jobs the store
lacks (``initbench.commands.sweep`` runs them; ``analysis.cells`` and ``views.sweep`` say
what the store holds).

A chunk of jobs is trained by the engine, its weights files (if kept) written whole,
and then its rows committed in one transaction: a row in the store means the job is
finished and its files are there. A sweep killed at any moment resumes from its store.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from initbench import data
from initbench.config import RunConfig, SweepConfig
from initbench.errors import UsageError
from initbench.executors import Executor
from initbench.jobs import Job, Keep, StepTime
from initbench.settings import DataSettings, TrainSettings
from initbench.storage import runfolder, store, weights
from initbench.training import engines
from initbench.views import progress
from initbench.words import plural

if TYPE_CHECKING:
    pass


def _by_data(jobs: Iterable[Job]) -> dict[DataSettings, list[Job]]:
    """Jobs by the data they train on (``settings.data``), in order: one split loaded per group."""
    groups: dict[DataSettings, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.settings.data, []).append(job)
    return groups


def kept(config: RunConfig, weights: bool) -> Keep:
    """What a run keeps of each job beside its metrics."""
    return Keep(weights=weights, initial=weights and config.save_init, layer_stats=config.track_stats)


def chunked(jobs: Sequence[Job], executor: Executor, max_batch_models: int | None) -> list[list[Job]]:
    """The chunks ``jobs`` train in: one data split each, and jobs that differ only in their
    optimizer's numbers (engines.shared: cells of an lr grid train together), as many models as fit
    where they train (and ``max_batch_models`` allows); with several task slots, no more than
    spreads the jobs over all of them."""
    if not jobs:
        return []
    fits = executor.max_models(list({job.settings: None for job in jobs}))
    spread = math.ceil(len(jobs) / executor.slots)
    size = {s: min(n, max_batch_models or n, spread) for s, n in fits.items()}
    return [chunk for group in _by_data(jobs).values() for chunk in engines.plan(group, executor.engine, size.get)]


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
    samples: dict[Job, str] = field(default_factory=dict)  # what each model trained on a text wrote (not stored)


def train_into(st: store.Store, jobs: Mapping[Job, str], chunks: Sequence[Sequence[Job]], executor: Executor,
               keep: Keep, data_dir: Path, activity: progress.Activity, folder: Path,
               weights_names: Mapping[Job, str] | None = None,
               loaded: Mapping[DataSettings, data.Splits] | None = None) -> Trained:
    """Train ``chunks`` of ``jobs`` (each with the name tables give it) with ``executor``,
    keeping ``keep`` of each, committing each chunk's rows to ``st`` as it finishes (the
    data read from ``data_dir``, or ``loaded``: data splits already loaded, by
    ``settings.data``); with ``weights_names`` (file names under ``folder/weights``; with
    ``keep.weights``), each chunk's final weights are written before its rows."""
    tally = Trained()
    by_data: dict[DataSettings, list[list[Job]]] = {}
    for chunk in chunks:
        by_data.setdefault(chunk[0].settings.data, []).append(list(chunk))
    sizes: dict[DataSettings, dict[str, int]] = {}
    loading = 0.0

    def load(key: DataSettings) -> data.Splits:
        nonlocal loading
        tic = time.perf_counter()
        splits = (loaded or {}).get(key) or data.load(data_dir, key, activity.note).to(executor.data_device)
        sizes[key] = splits.sizes()
        loading += time.perf_counter() - tic
        return splits

    started = time.perf_counter()
    for done in executor.train(by_data, load, keep, activity):
        trained = time.perf_counter()
        files = None
        if weights_names is not None:
            key = done.results[0].job.settings.data
            about = {"data": data.identity(key) | {"sizes": sizes[key]},
                     "trained_with": {"engine": done.machine.engine, "device": done.machine.device,
                                      "device_name": done.machine.device_name}}
            files = {r.job: f"weights/{weights_names[r.job]}" for r in done.results}
            st.check_in_place()  # before the files: a deleted folder is not made again for them
            # On disk (fsync) before the row that names them commits: a power cut cannot leave a row without its file.
            runfolder.write_files(folder, weights.weights_writers(done.results, jobs, about, weights_names), sync=True)
        st.add(done.results, jobs, done.seconds, done.machine, files)
        tally.samples |= {r.job: r.sample for r in done.results if r.sample is not None}
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
    seconds: float  # of training, estimated from the median of the engine's measured steps
    spread: tuple[float, float]  # the same from their quartiles: how much the machine's load made them vary
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
    subsets = [cell for cell in sweep.cells() if cell.data.train_samples is not None]
    if not subsets:
        return
    # What a split holds does not depend on its training subset: counted once per split.
    held = data.train_images(sweep.run.data_dir, [dataclasses.replace(cell.data, train_samples=None)
                                                  for cell in subsets])
    for cell in subsets:
        split, samples = dataclasses.replace(cell.data, train_samples=None), cell.data.train_samples
        if samples > held[split]:
            dataset, classes = data.get(split.dataset), data.class_numbers(split)
            of = "" if classes == dataset.all_classes else f" of classes {dataset.describe(classes)}"
            raise UsageError(f"In the grid's cell {sweep.cell_name(cell)}: train_samples is {samples:,}, "
                             f"but the training split holds only {held[split]:,} images{of}. Give train_samples at "
                             "most that (in the config, or with --set), or vary it with the classes.")


def lm_eval_windows() -> int:
    """The windows a text's model is scored on (training.lm: imported only when planned for)."""
    from initbench.training import lm

    return lm.EVAL_WINDOWS


def images(s: TrainSettings) -> tuple[int, int, int]:
    """Training, validation and test images of a cell, without loading them (classes are
    near equal in size)."""
    dataset = data.get(s.data.dataset)
    share = len(data.class_numbers(s.data)) / len(dataset.class_names)
    return (s.data.train_samples or round(dataset.train_split * share), round(dataset.validation_split * share),
            round(dataset.test_images * share))


def plan(keys: dict[Job, str], done: set[str], executor: Executor, max_batch_models: int | None,
         activity: progress.Activity | None = None) -> Plan:
    """The jobs the store lacks, their chunks, and the time (the median and quartiles of the
    timed steps') and memory they will take."""
    missing = [job for job, k in keys.items() if k not in done]
    chunks = chunked(missing, executor, max_batch_models)
    per_step = _step_seconds({job.settings: None for job in missing}, executor, activity)
    model_steps: list[tuple[StepTime, float]] = []  # per chunk: its step's time, and its models' steps
    peak = 0
    for chunk in chunks:
        s, o = chunk[0].settings, chunk[0].settings.optim
        n_train, n_val, n_test = images(s)
        if data.get(s.data.dataset).corpus is not None:  # a text: its steps, and its scoring's windows (a forward)
            scoring = lm_eval_windows() / (3 * o.batch_size)
            model_steps.append((per_step[s], len(chunk) * (o.epochs * (o.steps + scoring) + scoring)))
        else:
            steps = o.epochs * (data.batches(s, n_train) + n_val / (3 * o.batch_size))
            model_steps.append((per_step[s], len(chunk) * (steps + n_test / (3 * o.batch_size))))  # evaluation: a forward
        data_bytes = (n_train + n_val + n_test) * data.get(s.data.dataset).input_size * 4
        peak = max(peak, len(chunk) * engines.bytes_per_model(s) + data_bytes)

    def makespan(which: str) -> float:
        return _makespan([getattr(step, which) * n for step, n in model_steps], executor.slots)

    return Plan(keys, missing, chunks, makespan("median"), (makespan("low"), makespan("high")), peak)


def _step_seconds(settings: Iterable[TrainSettings], executor: Executor,
                  activity: progress.Activity | None) -> dict[TrainSettings, StepTime]:
    """Seconds per model of a step with each of ``settings``, timed per shape (what a
    step's cost depends on, engines.step_shape: cells that differ in lr, seeds or momentum
    share one timing), in a stage of its own."""
    shapes = {s: engines.step_shape(s) for s in settings}
    distinct = list(dict.fromkeys(shapes.values()))
    if activity is not None and distinct:
        activity.stage(f"Timing a training step of each of {plural(len(distinct), 'network shape')} "
                       f"({executor.description}), to plan the sweep")
    timed = executor.step_seconds(distinct) if distinct else {}
    return {s: timed[shape] for s, shape in shapes.items()}


def _makespan(seconds: list[float], slots: int) -> float:
    """When the last of chunks taking ``seconds`` finishes on ``slots`` workers, each chunk
    going to the first free one, longest first."""
    free = [0.0] * slots
    for s in sorted(seconds, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)
