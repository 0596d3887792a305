"""Chunks as Ray tasks: a grid spread over a cluster's CPUs or GPUs.

Ray core, not Ray Tune. A Tune trial carries its own actor, result reporting and
bookkeeping, and with thousands of small trials that overhead is most of the time.
Here one task is a chunk of many models trained in one batched step, so what a task
costs Ray (tens of milliseconds) is paid once per chunk, not once per model.

This process, the driver, loads each data split once and puts it in Ray's object
store (``ray.put``); the tasks read it there, without a copy on a worker's own node.
Each task trains its chunk on its worker's device and returns the results: the driver
alone writes the store, chunk by chunk, so a resumed sweep is the same as a local one.
A worker that dies (killed, out of memory, its node lost) has its chunk run again, up
to MAX_RETRIES times, and the driver says so; a chunk that still fails is reported at
the end, after every other chunk has been committed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import ray
import torch

from initbench import engines
from initbench.config import RunConfig
from initbench.data import Splits
from initbench.errors import InitbenchError
from initbench.executors import DataKey, Finished
from initbench.executors.local import machine
from initbench.jobs import Job, JobResult, Keep, TrainSettings, batches_per_epoch
from initbench.report import Activity, plural

MAX_RETRIES = 3  # runs of a chunk after its worker died
CONNECT_SECONDS = 10  # to reach a cluster's address


@contextmanager
def connect(config: RunConfig, activity: Activity) -> Iterator[RayExecutor]:
    """The cluster at ``config.ray_address`` (None: Ray's own choice, $RAY_ADDRESS or a
    cluster started on this machine, else a runtime started for this run only), or the
    runtime this process already joined."""
    joined = ray.is_initialized()
    if not joined:
        address = config.ray_address
        activity.stage("Connecting to Ray" + (f" at {address}" if address else ""))
        try:
            if address and ":" in address:  # Ray would wait for minutes on an address where nothing listens
                host, _, port = address.removeprefix("ray://").rpartition(":")
                socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except (OSError, RuntimeError, ValueError) as e:  # ConnectionError is an OSError
            raise InitbenchError(
                f"Could not connect to a Ray cluster at {address}: {str(e).rstrip('.')}. Start one with `ray start "
                "--head` on the head machine (and `ray start --address=HEAD:6379` on each other machine), then "
                "give --ray-address auto on the head, or HEAD:6379 on another machine. A cluster with token "
                "authentication (Ray's default) also needs RAY_AUTH_MODE=token and its token here "
                "(~/.ray/auth_token, or RAY_AUTH_TOKEN).") from None
    try:
        yield RayExecutor(config, activity)
    finally:
        if not joined:
            ray.shutdown()


class RayExecutor:
    data_device = torch.device("cpu")  # the images go to the object store from here

    def __init__(self, config: RunConfig, activity: Activity) -> None:
        self.engine, self.threads, self.activity = config.engine, config.cpus_per_task, activity
        resources = ray.cluster_resources()
        gpus = config.gpus_per_task
        if gpus is None:  # a GPU a task when the run asks for CUDA, or may use it and the cluster has some
            gpus = 1.0 if config.device == "cuda" or (config.device == "auto" and resources.get("GPU")) else 0.0
        self.gpus = gpus
        kind, each = ("GPU", gpus) if gpus else ("CPU", config.cpus_per_task)
        self.slots = int(resources.get(kind, 0) // each)
        if not self.slots:
            raise InitbenchError(
                f"The Ray cluster has {resources.get(kind, 0):g} {kind}s, not enough for one task of {each:g} "
                f"({'--gpus-per-task' if gpus else '--cpus-per-task'}). Add machines with "
                f"{'GPUs' if gpus else 'more CPUs'} to the cluster, or ask less of each task.")
        self.device_type = "cuda" if gpus else ("cpu" if config.device == "auto" else config.device)
        self.options: dict[str, Any] = {"num_cpus": config.cpus_per_task, "num_gpus": gpus,
                                        "max_retries": MAX_RETRIES}
        nodes = sum(1 for node in ray.nodes() if node["Alive"])
        self.description = (f"Ray cluster of {plural(nodes, 'node')}: {plural(self.slots, 'task')} at once, "
                            f"each on {each:g} {kind}{'s' * (each > 1)}, {self.engine} engine on {self.device_type}")

    def _measure(self, what: str, settings: Sequence[TrainSettings]) -> tuple[dict[TrainSettings, Any], float]:
        """``what`` (``fit`` or ``step``) for each of ``settings``, measured by a task on a
        worker; and the share of its node's memory one task may take."""
        self.activity.stage("Measuring a Ray worker: " + ("how many models a chunk can hold" if what == "fit"
                                                         else "how fast a step is"))
        try:
            found, node = ray.get(ray.remote(_measure).options(**self.options).remote(
                what, list(settings), self.device_type, self.threads))
        except ray.exceptions.RayError as e:  # the worker's own error (a model too large for it), as it said it
            raise InitbenchError(f"On a Ray worker: {_reason(e)}") from None
        if self.gpus:
            share = min(self.gpus, 1.0)
        else:
            cpus = next(n["Resources"].get("CPU", 1) for n in ray.nodes() if n["NodeID"] == node)
            share = self.options["num_cpus"] / cpus
        return dict(zip(settings, found)), share

    def max_models(self, settings: Sequence[TrainSettings]) -> dict[TrainSettings, int]:
        fits, share = self._measure("fit", settings)
        return {s: max(1, int(n * share)) for s, n in fits.items()}

    def step_seconds(self, settings: Sequence[TrainSettings]) -> dict[TrainSettings, float]:
        return self._measure("step", settings)[0]

    def train(self, chunks: Mapping[DataKey, list[list[Job]]], load: Callable[[DataKey], Splits], keep: Keep,
              activity: Activity) -> Iterator[Finished]:
        attempts = ray.remote(num_cpus=0)(Attempts).remote()
        ray.get(attempts.ready.remote())  # up before any task: a task's start is recorded before its work
        task = ray.remote(_train_chunk).options(**self.options)
        pending: dict[ray.ObjectRef, tuple[int, list[Job], int]] = {}  # task -> (number, chunk, model-batches)
        for data_key, group in chunks.items():
            splits = load(data_key)
            images = ray.put(tuple(getattr(splits, f).numpy() for f in Splits.__dataclass_fields__))
            for chunk in group:
                s = chunk[0].settings
                steps = len(chunk) * s.epochs * batches_per_epoch(len(splits.y_train), s.batch_size)
                pending[task.remote(len(pending), chunk, images, self.engine, keep, self.device_type, self.threads,
                                    attempts)] = (len(pending), chunk, steps)
        n_chunks, n_jobs = len(pending), sum(len(chunk) for _, chunk, _ in pending.values())
        done_jobs, failed = 0, []
        activity.advance(0, f"Training on Ray: {plural(n_jobs, 'job')} in {plural(n_chunks, 'chunk')}, "
                            f"{min(n_chunks, self.slots)} at once")
        try:
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                number, chunk, steps = pending.pop(ref)
                what = f"Chunk {number + 1} of {n_chunks} ({plural(len(chunk), 'job')})"
                try:
                    trained, where, seconds, starts = ray.get(ref)
                except ray.exceptions.RayError as e:
                    failed.append((chunk, _reason(e)))
                    activity.note(f"{what} failed: {failed[-1][1]}")
                    continue
                if len(starts) > 1:
                    died = ", ".join(f"pid {pid} on {host}" for host, pid in starts[:-1])
                    activity.note(f"{what} was run again after its worker died ({died}); it finished on "
                                  f"{starts[-1][0]} at attempt {len(starts)}.")
                done_jobs += len(chunk)
                activity.advance(steps, f"Training on Ray: {done_jobs:,} of {n_jobs:,} jobs, "
                                        f"{n_chunks - len(pending)} of {plural(n_chunks, 'chunk')} done")
                yield Finished(trained, where, seconds)
        finally:
            for ref in pending:  # stopped early (an error here, Ctrl-C): free the cluster
                ray.cancel(ref, force=True)
        if failed:
            jobs = sum(len(chunk) for chunk, _ in failed)
            kept = f"; the other {plural(n_jobs - jobs, 'job')} are in the store" if jobs < n_jobs else ""
            raise InitbenchError(
                f"{plural(len(failed), 'chunk')} of {n_chunks} ({plural(jobs, 'job')}) failed on the Ray cluster"
                f"{kept}. First failure: {failed[0][1]} Run the same command again to train what is missing.")


class Attempts:
    """Where each chunk was started: a chunk started twice was run again after its worker died."""

    def __init__(self) -> None:
        self.starts: dict[int, list[tuple[str, int]]] = {}

    def ready(self) -> None:
        pass

    def start(self, number: int, host: str, pid: int) -> list[tuple[str, int]]:
        self.starts.setdefault(number, []).append((host, pid))
        return self.starts[number]


def _reason(error: ray.exceptions.RayError) -> str:
    """A failed task in a sentence: the worker's own error where it raised one."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, InitbenchError):
        return str(cause)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}."
    if isinstance(error, ray.exceptions.WorkerCrashedError):
        return f"its worker died {MAX_RETRIES + 1} times."
    return f"{type(error).__name__}: {str(error).splitlines()[0]}"


# --- what runs on the workers


def _measure(what: str, settings: list[TrainSettings], device_name: str, threads: int) -> tuple[list[Any], str]:
    torch.set_num_threads(threads)  # a reused worker keeps the threads of its first task otherwise
    device = engines.resolve_device(device_name)
    measure = engines.models_that_fit if what == "fit" else engines.step_seconds
    return [measure(s, device) for s in settings], ray.get_runtime_context().get_node_id()


def _train_chunk(number: int, chunk: list[Job], images: tuple, engine: str, keep: Keep, device_name: str,
                 threads: int, attempts: Any) -> tuple[list[JobResult], Any, float, list[tuple[str, int]]]:
    starts = ray.get(attempts.start.remote(number, socket.gethostname(), os.getpid()))
    torch.set_num_threads(threads)
    device = engines.resolve_device(device_name)
    with warnings.catch_warnings():  # the object store's arrays are read-only; training never writes its images
        warnings.simplefilter("ignore", UserWarning)
        splits = Splits(*(torch.from_numpy(a) for a in images)).to(device)
    tic = time.perf_counter()
    trained = [r for part in engines.train_chunks([chunk], splits, device, engine, keep=keep) for r in part]
    return trained, machine(engine, device), time.perf_counter() - tic, starts
