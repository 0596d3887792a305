"""What every executor shares: where chunks train (``Placement``), what an executor is
(``Executor``), and a trained chunk (``Finished``). Apart from the package's ``__init__``,
so that the executors import these without importing the package that imports them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from initbench.jobs import Job, JobResult, Keep, StepTime
from initbench.settings import DataSettings, TrainSettings

if TYPE_CHECKING:
    import torch

    from initbench.data import Splits
    from initbench.jobs import Activity
    from initbench.storage.store import Machine

DataKey = DataSettings  # the images a job trains on


@dataclass(frozen=True)
class Placement:
    """Where and how chunks train: the executor, the engine and device each chunk trains
    with, and the executor's own settings (``Backend.settings``: Ray's for ray; None for
    an executor without any)."""

    executor: str = "local"  # local: this process trains; ray: chunks as tasks on a Ray cluster
    engine: str = "batched"
    device: str = "auto"
    settings: Any = None


@dataclass(frozen=True)
class Finished:
    """One trained chunk: its results, where it was trained, and its seconds of training there."""

    results: list[JobResult]
    machine: Machine
    seconds: float


class Executor(Protocol):
    engine: str  # what trains each chunk
    device_type: str  # what the chunks train on: cpu, cuda or mps (a store keeps to one)
    data_device: torch.device  # where this process keeps the images it loads
    slots: int  # chunks trained at once
    description: str  # where and how, in words

    def max_models(self, settings: Sequence[TrainSettings]) -> dict[TrainSettings, int]:
        """Models per chunk that fit where chunks train, for each of ``settings``."""
        ...

    def step_seconds(self, settings: Sequence[TrainSettings]) -> dict[TrainSettings, StepTime]:
        """Seconds per model of a batched step, timed several times where chunks train."""
        ...

    def train(self, chunks: Mapping[DataKey, list[list[Job]]], load: Callable[[DataKey], Splits], keep: Keep,
              activity: Activity) -> Iterator[Finished]:
        """Train ``chunks`` (by the data they train on, which ``load`` gives), yielding each
        as it finishes; ``activity`` shows the progress."""
        ...
