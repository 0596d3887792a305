"""Training in this process: one chunk after another on the run's device."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch

from initbench import engines, results, store
from initbench.data import Splits
from initbench.executors.base import DataKey, Finished, Placement
from initbench.jobs import Job, Keep, TrainSettings
from initbench.report import Activity


def machine(engine: str, device: torch.device) -> store.Machine:
    """This process as the store records it: the engine, the device, the versions."""
    env = results.environment(device)
    return store.Machine(engine, str(device), env["device_name"], env["versions"]["initbench"],
                         env["versions"]["torch"])


class Local:
    slots = 1

    def __init__(self, placement: Placement) -> None:
        self.engine = placement.engine
        self.data_device = engines.resolve_device(placement.device)
        self.device_type = self.data_device.type
        self.description = f"{self.engine} engine on {self.data_device}"

    def max_models(self, settings: Sequence[TrainSettings]) -> dict[TrainSettings, int]:
        return {s: engines.models_that_fit(s, self.data_device) for s in settings}

    def step_seconds(self, settings: Sequence[TrainSettings]) -> dict[TrainSettings, float]:
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
