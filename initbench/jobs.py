"""What engines train and return: jobs (scheme, seed, settings) and their results.

Importing this module does not import torch (the command line checks settings
before any work); the results hold tensors, which only exist once training ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from initbench.errors import UsageError
from initbench.settings import TrainSettings

if TYPE_CHECKING:
    from torch import Tensor, nn

@dataclass(frozen=True)
class Job:
    scheme: str
    seed: int
    settings: TrainSettings


@dataclass(frozen=True)
class Keep:
    """What an engine puts in each JobResult beside its accuracies and losses."""

    weights: bool = False  # the final state dict
    initial: bool = False  # the state dict as initialized
    layer_stats: bool = False  # per-layer statistics at init and after every epoch


@dataclass(frozen=True)
class Tick:
    """What an engine is doing, for the progress display: a stage ("building",
    "training", "evaluating", "testing") of some models; while training, the
    model-batches (``steps``) just trained and their losses (read only when shown)."""

    stage: str
    models: str  # "6 models", "rule, seed 0 (3 of 12)"
    epoch: int = 0  # 1-based; 0 before training
    epochs: int = 0
    batch: int = 0  # 1-based, within the epoch
    batches: int = 0
    steps: int = 0
    losses: Tensor | None = None


Progress = Callable[[Tick], None]


class Activity(Protocol):
    """What a long task tells the person waiting for it; ``views.progress.Activity`` shows it
    on a terminal, ``NotebookActivity`` in a notebook. Executors and engines below the views
    take any object with these methods, e.g. one that logs::

        class Logged:
            def stage(self, text, total=None): log.info(text)
            def advance(self, steps=1, text=None, kept=""): ...
            def note(self, text): log.warning(text)
            def say(self, text): log.info(text)
            def tick(self, tick): ...
    """

    def stage(self, text: str, total: int | None = None) -> None:
        """A new stage begins (``total``: its steps, when counted)."""

    def advance(self, steps: int = 1, text: str | None = None, kept: str = "") -> None:
        """``steps`` more of the stage are done (``text``: what is happening now)."""

    def note(self, text: str) -> None:
        """Something the person should read, kept above the progress line."""

    def say(self, text: str) -> None:
        """A line of output, not a warning."""

    def tick(self, tick: Tick) -> None:
        """An engine's report (``Progress``)."""


@dataclass(frozen=True)
class StepTime:
    """Seconds per model of a training step, timed several times after a warm-up
    (``of``): the median, and the quartiles around it (how much the machine's load made
    the steps vary), which a sweep's plan turns into a range of times."""

    median: float
    low: float  # the first quartile
    high: float  # the third

    @classmethod
    def of(cls, seconds: list[float]) -> StepTime:
        """The median and quartiles of ``seconds`` (each step's, per model)."""
        import statistics

        low, median, high = statistics.quantiles(seconds, n=4, method="inclusive") if len(seconds) > 1 else seconds * 3
        return cls(median, low, high)


@dataclass
class JobResult:
    job: Job
    losses: Tensor  # [epochs, batches per epoch], float32 on the CPU; NaN where no batch was trained
    # The task's validation metric after each epoch, and its test metric (tasks: accuracy, or a text's loss).
    val_acc: list[float]
    test_acc: float
    diverged_at: int | None  # 1-based number of the batch whose loss was NaN/inf, if any
    weights: dict[str, Tensor] | None = None  # the final state dict (on the CPU), when asked for
    initial: dict[str, Tensor] | None = None  # the state dict as initialized, when asked for
    layer_stats: list[dict[str, float]] | None = None  # diagnostics.layer_stats rows with their "epoch" (0: init)
    sample: str | None = None  # next-token: what the trained model wrote (training.lm); not stored


def check_batch_size(batch_size: int, n_train: int) -> None:
    """Refuse a batch larger than the training set (it would only cost memory)."""
    if batch_size > n_train:
        raise UsageError(f"--batch-size {batch_size:,} is larger than the training set ({n_train:,} images). "
                         f"Use a batch size of at most {n_train:,}, or train on more images (--train-samples).")


def batches_per_epoch(n_train: int, batch_size: int) -> int:
    return math.ceil(n_train / batch_size)


def correct(logits: Tensor, y: Tensor) -> Tensor:
    """How many rows are classified right (over the last two dims); a row with a
    non-finite output counts as wrong."""
    return ((logits.argmax(-1) == y) & logits.isfinite().all(-1)).sum(-1)


def result(job: Job, losses: Tensor, val_acc: list[float], test_acc: float, diverged_at: int | None,
           weights: dict[str, Tensor] | None = None, initial: dict[str, Tensor] | None = None,
           layer_stats: list[dict[str, float]] | None = None) -> JobResult:
    """A JobResult whose losses are NaN after the batch where the model diverged."""
    losses = losses.cpu().clone()
    if diverged_at is not None:
        losses.view(-1)[diverged_at:] = math.nan
    return JobResult(job, losses, val_acc, test_acc, diverged_at, weights, initial, layer_stats)


def state_dict(model: nn.Module) -> dict[str, Tensor]:
    """A copy of the model's parameters on the CPU, keyed as the model names them."""
    return {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
