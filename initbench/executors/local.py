"""Training in this process: one chunk after another on the run's device."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

from initbench.executors.base import DataKey, Finished, Placement
from initbench.jobs import Job, Keep, StepTime
from initbench.settings import TrainSettings
from initbench.storage import store
from initbench.training import engines

if TYPE_CHECKING:
    import torch

    from initbench.data import Splits
    from initbench.jobs import Activity


def machine(engine: str, device: torch.device) -> store.Machine:
    """This process as the store records it: the engine, the device, the versions."""
    from initbench.storage import machine

    env = machine.environment(device)
    return store.Machine(engine, str(device), env["device_name"], env["versions"]["initbench"],
                         env["versions"]["torch"])


@contextmanager
def connect(placement: Placement, activity: Activity) -> Iterator[Local]:
    """This process, as an executor: nothing to open or close."""
    yield Local(placement)


class Local:
    slots = 1

    def __init__(self, placement: Placement) -> None:
        self.engine, self.placement = placement.engine, placement

    @cached_property
    def data_device(self) -> torch.device:
        """The device, resolved and checked when first asked for: that imports torch, which a
        compare run does once it has said what it is doing (a sweep asks at once)."""
        return engines.resolve_device(self.placement.device)

    @property
    def device_type(self) -> str:
        return self.data_device.type

    @property
    def description(self) -> str:
        return f"{self.engine} engine on {self.data_device}"

    def max_models(self, settings: Sequence[TrainSettings]) -> dict[TrainSettings, int]:
        return {s: engines.models_that_fit(s, self.data_device) for s in settings}

    def step_seconds(self, settings: Sequence[TrainSettings]) -> dict[TrainSettings, StepTime]:
        return {s: engines.step_seconds(s, self.data_device) for s in settings}

    def train(self, chunks: Mapping[DataKey, list[list[Job]]], load: Callable[[DataKey], Splits], keep: Keep,
              activity: Activity) -> Iterator[Finished]:
        where = machine(self.engine, self.data_device)
        for data_key, group in chunks.items():
            splits = load(data_key)
            tic = time.perf_counter()
            for trained in engines.train_chunks(group, splits, self.data_device, self.engine, activity.tick, keep):
                yield Finished(trained, where, time.perf_counter() - tic)
                tic = time.perf_counter()
