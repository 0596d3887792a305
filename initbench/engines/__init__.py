"""Where and how jobs are trained: the device, and the choice of engine.

``batched`` (the default) trains every model of a run together; ``sequential``
is the reference: one plain model after another. torch and the engines are
imported when they are used, so that the command line can check an engine's
name before any work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from initbench.errors import InitbenchError
from initbench.jobs import Job, JobResult, Keep, Progress, TrainSettings, check_batch_size

if TYPE_CHECKING:
    import torch

    from initbench.data import Splits
    from initbench.model import MLP

ENGINES = ("batched", "sequential")


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


def train_chunks(jobs: Sequence[Job], data: Splits, device: torch.device, engine: str = "batched",
                 max_models: int | None = None, progress: Progress = lambda tick: None,
                 keep: Keep = Keep()) -> Iterator[list[JobResult]]:
    """The jobs' results, a chunk at a time as each is trained (the batched engine: models
    of equal settings trained together, as many as fit; the sequential one: one by one);
    ``progress`` hears what the engine is doing; ``keep`` says what else each result holds."""
    from initbench.engines import batched, sequential

    check_batch_size(max(job.settings.batch_size for job in jobs), len(data.y_train))
    for settings in {job.settings for job in jobs}:
        batched.default_max_models(settings, device)  # refuses, before any training, a model that cannot fit
    if engine == "sequential":
        return sequential.train(jobs, data, device, progress, keep)
    return batched.train(jobs, data, device, progress, max_models, keep)


def plan(jobs: Sequence[Job], device: torch.device, engine: str = "batched",
         max_models: int | None = None) -> list[list[Job]]:
    """The chunks ``train_chunks`` will train ``jobs`` in (of one data split)."""
    from initbench.engines import batched

    return [[job] for job in jobs] if engine == "sequential" else batched.chunks(jobs, device, max_models)


def step_seconds(settings: TrainSettings, device: torch.device) -> float:
    """Seconds per model of one batched training step with ``settings``, timed here."""
    from initbench.engines import batched

    return batched.step_seconds(settings, device)


def bytes_per_model(settings: TrainSettings) -> int:
    """The batched engine's generous estimate of one model's memory in a chunk."""
    from initbench.engines import batched

    return batched.bytes_per_model(settings)


def train(jobs: Sequence[Job], data: Splits, device: torch.device, engine: str = "batched",
          max_models: int | None = None, progress: Progress = lambda tick: None,
          keep: Keep = Keep()) -> list[JobResult]:
    """One JobResult per job, in the order of ``jobs`` (see ``train_chunks``)."""
    done = {r.job: r for chunk in train_chunks(jobs, data, device, engine, max_models, progress, keep)
            for r in chunk}
    return [done[job] for job in jobs]


def score(job: Job, model: MLP, data: Splits, device: torch.device, engine: str = "batched") -> tuple[float, float]:
    """A model's validation and test accuracy, computed as ``engine`` computed them in training
    (so, on the same machine and device, to the last bit)."""
    from initbench.engines import batched, sequential

    scorer = sequential.score if engine == "sequential" else batched.score
    return (scorer([job], [model], data.x_val, data.y_val, device)[0],
            scorer([job], [model], data.x_test, data.y_test, device)[0])
