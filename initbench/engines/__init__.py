"""Where and how jobs are trained: the device, and the choice of engine.

``batched`` trains every model of a run together, for the networks it was written for
(BATCHED_NETWORKS); ``sequential`` is the reference: one plain model after another, of
any registered network. ``auto`` (the default) is the batched engine where it writes out
every network of the run, the sequential one otherwise (``choose``). torch and the engines are imported when
they are used, so that the command line can check an engine's name before any work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from initbench.errors import InitbenchError, UsageError
from initbench.jobs import (
    DataSettings,
    Job,
    JobResult,
    Keep,
    NetworkSettings,
    OptimSettings,
    Progress,
    StepTime,
    TrainSettings,
    check_batch_size,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from initbench.data import Splits

ENGINES = ("batched", "sequential")
AUTO = "auto"  # the engine chosen by the networks trained (choose)
ENGINE_CHOICES = (AUTO, *ENGINES)  # what settings may name
BATCHED_NETWORKS = ("mlp", "resmlp")  # the networks whose forward and backward the batched engine writes out by hand


def check_network(engine: str, network: str) -> None:
    """Refuse a network the engine cannot train."""
    if engine == "batched" and network not in BATCHED_NETWORKS:
        raise UsageError(f"The batched engine trains {', '.join(BATCHED_NETWORKS)} networks only, not {network!r}: "
                         "give --engine sequential (one model after another) to train it, or leave --engine out "
                         "(auto picks the engine by the network).")


def choose(engine: str, networks: Iterable[str]) -> str:
    """The engine that trains ``networks``: ``engine`` as named, or for ``auto`` the batched
    one where it writes out every one of them, the sequential one otherwise (a run or sweep
    trains with one engine: a store's numbers do not mix engines)."""
    if engine != AUTO:
        return engine
    return "batched" if set(networks) <= set(BATCHED_NETWORKS) else "sequential"


def choice_note(engine: str, networks: Iterable[str]) -> str | None:
    """What a run says when ``auto`` chose the sequential engine, and why (None otherwise)."""
    others = sorted(set(networks) - set(BATCHED_NETWORKS))
    if engine != AUTO or not others:
        return None
    return (f"{', '.join(others)} trains with the sequential engine (the batched engine is exact for "
            f"{', '.join(BATCHED_NETWORKS)} only)")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; a named device (a name config.py
    accepted) must be available."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not (
        torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    ):
        raise InitbenchError(f"Device {name!r} is not available here: this machine has "
                             f"{torch.cuda.device_count()} usable CUDA device(s). Use --device cpu or auto.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InitbenchError(f"Device {name!r} is not available here. Use --device cpu or auto.")
    return device


def plan(jobs: Sequence[Job], engine: str, size: Callable[[TrainSettings], int]) -> list[list[Job]]:
    """The chunks to train ``jobs`` (of one data split) in: for the batched engine, models of
    equal settings, at most ``size(settings)`` a chunk; for the sequential one, one job each."""
    from initbench.engines import batched

    return [[job] for job in jobs] if engine == "sequential" else batched.chunks(jobs, size)


def models_that_fit(settings: TrainSettings, device: torch.device) -> int:
    """How many models with ``settings`` fit in a batched step on ``device`` (half its free
    memory); an error if not even one does."""
    from initbench.engines import batched

    return batched.default_max_models(settings, device)


def train_chunks(chunks: Sequence[Sequence[Job]], data: Splits, device: torch.device, engine: str = "batched",
                 progress: Progress = lambda tick: None, keep: Keep = Keep()) -> Iterator[list[JobResult]]:
    """The results of ``chunks`` (as ``plan`` cuts them), a chunk at a time as each is
    trained; ``progress`` hears what the engine is doing; ``keep`` says what else each
    result holds."""
    from initbench.engines import batched, sequential

    jobs = [job for chunk in chunks for job in chunk]
    check_batch_size(max(job.settings.optim.batch_size for job in jobs), len(data.y_train))
    for network in {job.settings.network.network for job in jobs}:
        check_network(engine, network)
    for settings in {job.settings for job in jobs}:
        models_that_fit(settings, device)  # refuses, before any training, a model that cannot fit
    if engine == "sequential":
        return sequential.train(jobs, data, device, progress, keep)
    return batched.train(chunks, data, device, progress, keep)


def step_seconds(settings: TrainSettings, device: torch.device) -> StepTime:
    """Seconds per model of one batched training step with ``settings``, timed here several
    times on as many models as fit (at most a few: a network that fits once is timed
    alone); of a network the batched engine does not write out, a sequential step."""
    from initbench.engines import batched, sequential

    if settings.network.network not in BATCHED_NETWORKS:
        return sequential.step_seconds(settings, device)
    models = min(batched.CALIBRATION_MODELS, models_that_fit(settings, device))
    return batched.step_seconds(settings, device, models)


def step_shape(settings: TrainSettings) -> TrainSettings:
    """The settings that decide what a training step costs (the network's sizes, activation
    and dropout, the optimizer, the batch size, the frozen layers), the others at their
    defaults: settings of one shape step alike, whatever their lr, seeds or momentum."""
    data, net, o = settings.data, settings.network, settings.optim
    return TrainSettings(DataSettings(data.dataset, tuple(range(len(data.class_numbers)))),
                         NetworkSettings(net.network, net.hidden, net.activation, net.dropout),
                         OptimSettings(o.optimizer, batch_size=o.batch_size, freeze=o.freeze))


def step_cost(settings: TrainSettings, device: torch.device, models: int) -> tuple[float, int]:
    """Seconds of one batched training step of ``models`` models, and their memory, measured here."""
    from initbench.engines import batched

    return batched.step_cost(settings, device, models)


def bytes_per_model(settings: TrainSettings) -> int:
    """The batched engine's generous estimate of one model's memory in a chunk."""
    from initbench.engines import batched

    return batched.bytes_per_model(settings)


def train(jobs: Sequence[Job], data: Splits, device: torch.device, engine: str = "batched",
          max_models: int | None = None, progress: Progress = lambda tick: None,
          keep: Keep = Keep()) -> list[JobResult]:
    """One JobResult per job, in the order of ``jobs``, trained in chunks of at most
    ``max_models`` (default: as many as fit)."""
    chunks = plan(jobs, engine, lambda s: max_models or models_that_fit(s, device))
    done = {r.job: r for chunk in train_chunks(chunks, data, device, engine, progress, keep) for r in chunk}
    return [done[job] for job in jobs]


def score(job: Job, model: nn.Module, data: Splits, device: torch.device,
          engine: str = "batched") -> tuple[float, float]:
    """A model's validation and test accuracy, computed as ``engine`` computed them in training
    (so, on the same machine and device, to the last bit)."""
    from initbench.engines import batched, sequential

    scorer = sequential.score if engine == "sequential" else batched.score
    return (scorer([job], [model], data.x_val, data.y_val, device)[0],
            scorer([job], [model], data.x_test, data.y_test, device)[0])
