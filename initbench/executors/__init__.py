"""Where chunks of jobs are trained: in this process (``local``), or as tasks on a Ray
cluster (``ray``).

An executor measures what its workers can hold and how fast they step (so that the
sweep can cut the jobs into chunks and estimate the time), then trains the chunks it
is given and yields each one's results as it finishes, with the machine that trained
it. It never writes: the caller commits every chunk to the store, in this process
alone, so resuming is the same whichever executor trained the rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from initbench.jobs import Job, JobResult, Keep, TrainSettings

if TYPE_CHECKING:
    import torch

    from initbench.config import RunConfig
    from initbench.data import Splits
    from initbench.report import Activity
    from initbench.store import Machine

EXECUTORS = ("local", "ray")
DataKey = tuple  # TrainSettings.data: the images a job trains on
RAY_ADDRESS = "RAY_ADDRESS"  # Ray's own variable


def ray_address(option: str | None) -> tuple[str | None, str]:
    """The address a Ray run uses and where it came from (``--ray-address`` or ``RAY_ADDRESS``),
    as ``ray.init`` decides it: the environment variable stands in for no address and for auto.
    None: Ray's choice, the cluster ``ray start`` recorded on this machine, else a new runtime."""
    variable = os.environ.get(RAY_ADDRESS)
    if variable and option in (None, "auto"):
        return variable, RAY_ADDRESS
    return option, "--ray-address"


@dataclass(frozen=True)
class Finished:
    """One trained chunk: its results, where it was trained, and its seconds of training there."""

    results: list[JobResult]
    machine: Machine
    seconds: float


class Executor(Protocol):
    device_type: str  # what the chunks train on: cpu, cuda or mps (a store keeps to one)
    data_device: torch.device  # where this process keeps the images it loads
    slots: int  # chunks trained at once
    description: str  # where and how, in words

    def max_models(self, settings: Sequence[TrainSettings]) -> dict[TrainSettings, int]:
        """Models per chunk that fit where chunks train, for each of ``settings``."""
        ...

    def step_seconds(self, settings: Sequence[TrainSettings]) -> dict[TrainSettings, float]:
        """Seconds per model of a batched step, timed where chunks train."""
        ...

    def train(self, chunks: Mapping[DataKey, list[list[Job]]], load: Callable[[DataKey], Splits], keep: Keep,
              activity: Activity) -> Iterator[Finished]:
        """Train ``chunks`` (by the data they train on, which ``load`` gives), yielding each
        as it finishes; ``activity`` shows the progress."""
        ...


@contextmanager
def connect(config: RunConfig, activity: Activity) -> Iterator[Executor]:
    """``config``'s executor, ready to train (a Ray runtime started, or joined, for the run)."""
    if config.executor == "ray":
        # Else Ray's C++ core, once ray.init has started it here, catches SIGTERM with abseil's failure handler: a
        # stack dump, then an abort 3 s later whatever the shutdown is doing (exit 134). raytasks takes SIGTERM back
        # after ray.init, but not during it. Read when Ray is imported, for this process and the runtime it starts.
        os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
        from initbench.executors import raytasks

        with raytasks.connect(config, activity) as executor:
            yield executor
    else:
        from initbench.executors.local import Local

        yield Local(config)
