"""Where and how jobs are trained: the device, and the engines behind one contract.

An engine is a module with four functions, registered by name (``register(Engine(...))``)
and imported when first used (the command line checks an engine's name before torch loads):

- ``chunks(jobs, size) -> list[list[Job]]``: the chunks it trains ``jobs`` in, at most
  ``size(settings)`` models a chunk where it trains several at once;
- ``train(chunks, data, device, progress, keep) -> Iterator[list[JobResult]]``: each
  chunk's results, one per job, as the chunk finishes (``progress`` hears ``Tick``s;
  ``keep`` says what else a result holds);
- ``score(jobs, models, x, y, device) -> list[float]``: the models' accuracy on ``x, y``,
  computed as its training computed it (``evaluate`` checks recorded scores to the bit);
- ``step_seconds(settings, device) -> StepTime``: seconds per model of one training step,
  timed here (the sweep's planner).

A network's registry entry (``models.Network.engines``) names the engines that train it:
``sequential`` trains any network, one plain model after another (the reference);
``batched`` every model of a run in one step, for the networks it writes out by hand.
``auto`` (the default) is the first registered engine that trains every network of the
run (``choose``). A new engine::

    # my_engine.py: chunks, train, score and step_seconds, as above
    from initbench.training import engines
    engines.register(engines.Engine("mine", "my_engine", "what it does"))

and ``Network(..., engines=("mine", "sequential"))`` for the networks it trains.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from initbench import data, models
from initbench.choices import Registry, loaded
from initbench.errors import InitbenchError, UsageError
from initbench.jobs import Job, JobResult, Keep, Progress, StepTime, check_batch_size
from initbench.settings import HYPERPARAMETERS, DataSettings, NetworkSettings, OptimSettings, TrainSettings

if TYPE_CHECKING:
    import torch
    from torch import nn

    from initbench.data import Splits


@dataclass(frozen=True)
class Engine:
    """An engine: its name (what --engine takes), the module that holds its four functions
    (imported when first used), and what it does, in words."""

    name: str
    module: str
    summary: str

    @property
    def code(self) -> ModuleType:
        return loaded(self.module)


ENGINES: Registry[Engine] = Registry("engine")
register = ENGINES.register
register(Engine("batched", "initbench.training.engines.batched", "all models in one step"))
register(Engine("sequential", "initbench.training.engines.sequential", "one plain model after another"))
AUTO = "auto"  # the engine chosen by the networks trained (choose)


class _Choices(Collection[str]):
    """What --engine may name: auto, and every engine registered (one registered since too)."""

    def __contains__(self, name: object) -> bool:
        return name == AUTO or name in ENGINES

    def __iter__(self) -> Iterator[str]:
        return iter((AUTO, *ENGINES))

    def __len__(self) -> int:
        return 1 + len(ENGINES)


ENGINE_CHOICES = _Choices()


def trains(engine: str) -> list[str]:
    """The networks ``engine`` trains (their entries name it)."""
    return [name for name, network in models.NETWORKS.items() if engine in network.engines]


def check_network(engine: str, network: str) -> None:
    """Refuse a network the engine cannot train (auto chooses one that can)."""
    if engine != AUTO and engine not in models.get(network).engines:
        raise UsageError(f"The {engine} engine trains {', '.join(trains(engine))} networks only, not {network!r}: "
                         "give --engine sequential (one model after another) to train it, or leave --engine out "
                         "(auto picks the engine by the network).")


def choose(engine: str, networks: Iterable[str]) -> str:
    """The engine that trains ``networks``: ``engine`` as named, or for ``auto`` the first
    registered engine that trains every one of them (a run or sweep trains with one engine: a
    store's numbers do not mix engines)."""
    if engine != AUTO:
        return engine
    entries = [models.get(name) for name in set(networks)]
    return next(name for name in ENGINES if all(name in network.engines for network in entries))


def choice_note(engine: str, networks: Iterable[str]) -> str | None:
    """What a run says when ``auto`` did not choose the first engine, and why (None otherwise)."""
    first = next(iter(ENGINES))
    others = sorted(name for name in set(networks) if first not in models.get(name).engines)
    if engine != AUTO or not others:
        return None
    why = "; ".join(f"{name}: {models.get(name).sequential_why}" for name in others if models.get(name).sequential_why)
    return (f"{', '.join(others)} trains with the {choose(engine, networks)} engine (the {first} engine is exact "
            f"for {', '.join(trains(first))} only{': ' + why if why else ''})")


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
    """The chunks ``engine`` trains ``jobs`` (of one data split) in: the batched engine's of
    equal settings, at most ``size(settings)`` a chunk; the sequential one's, one job each."""
    return ENGINES.find(engine).code.chunks(jobs, size)


def models_that_fit(settings: TrainSettings, device: torch.device) -> int:
    """How many models with ``settings`` fit in a batched step on ``device`` (half its free
    memory); an error if not even one does."""
    from initbench.training.engines import batched

    return batched.default_max_models(settings, device)


def train_chunks(chunks: Sequence[Sequence[Job]], data: Splits, device: torch.device, engine: str = "batched",
                 progress: Progress = lambda tick: None, keep: Keep = Keep()) -> Iterator[list[JobResult]]:
    """The results of ``chunks`` (as ``plan`` cuts them), a chunk at a time as each is
    trained; ``progress`` hears what the engine is doing; ``keep`` says what else each
    result holds."""
    jobs = [job for chunk in chunks for job in chunk]
    check_batch_size(max(job.settings.optim.batch_size for job in jobs), len(data.y_train))
    for network in {job.settings.network.network for job in jobs}:
        check_network(engine, network)
    for settings in {job.settings for job in jobs}:
        models_that_fit(settings, device)  # refuses, before any training, a model that cannot fit
    return ENGINES.find(engine).code.train(chunks, data, device, progress, keep)


def step_seconds(settings: TrainSettings, device: torch.device) -> StepTime:
    """Seconds per model of one training step with ``settings``, timed here several times,
    by the engine ``auto`` chooses for its network."""
    return ENGINES.find(choose(AUTO, [settings.network.network])).code.step_seconds(settings, device)


def step_shape(settings: TrainSettings) -> TrainSettings:
    """The settings that decide what a training step costs (the network's sizes, activation
    and dropout, the optimizer, the batch size, the frozen layers), the others at their
    defaults: settings of one shape step alike, whatever their lr, seeds or momentum."""
    classes, net, o = data.class_numbers(settings.data), settings.network, settings.optim
    return TrainSettings(DataSettings(settings.data.dataset, tuple(range(len(classes)))),
                         NetworkSettings(net.network, net.hidden, net.activation, net.dropout),
                         OptimSettings(o.optimizer, batch_size=o.batch_size, freeze=o.freeze))


def shared(s: TrainSettings) -> TrainSettings:
    """What the models of one batched population share: their settings but for the
    HYPERPARAMETERS (put at their defaults), which each model may have of its own."""
    return s.replace(**{key: getattr(OptimSettings, key) for key in HYPERPARAMETERS})


def step_cost(settings: TrainSettings, device: torch.device, models: int) -> tuple[float, int]:
    """Seconds of one batched training step of ``models`` models, and their memory, measured here."""
    from initbench.training.engines import batched

    return batched.step_cost(settings, device, models)


def bytes_per_model(settings: TrainSettings) -> int:
    """The batched engine's generous estimate of one model's memory in a chunk."""
    from initbench.training.engines import batched

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
    scorer = ENGINES.find(engine).code.score
    return (scorer([job], [model], data.x_val, data.y_val, device)[0],
            scorer([job], [model], data.x_test, data.y_test, device)[0])
