"""What engines train and return: jobs (scheme, seed, settings) and their results.

Importing this module does not import torch (the command line checks settings
before any work); the results hold tensors, which only exist once training ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from initbench.errors import UsageError

if TYPE_CHECKING:
    from torch import Tensor

    from initbench.model import MLP

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "selu")


@dataclass(frozen=True)
class TrainSettings:
    """Everything about a model and its training except its scheme and seed."""

    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.2
    lr: float = 1e-3
    batch_size: int = 100
    epochs: int = 2
    activation: str = "relu"
    bias: str = "scheme"  # the scheme's own bias, or "zeros", or "default" (PyTorch's)
    lesson_eval: bool = False  # score with dropout still on, as the lesson's helper does (no model.eval())

    @property
    def eval_dropout(self) -> bool:
        """Whether models are scored with dropout on (--lesson-eval, and dropout to leave on)."""
        return self.lesson_eval and self.dropout > 0


@dataclass(frozen=True)
class Job:
    scheme: str
    seed: int
    settings: TrainSettings


EpochHook = Callable[[Job, int, "MLP"], None]  # (job, epoch: 0 at init, model as it stands)


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


@dataclass
class JobResult:
    job: Job
    losses: Tensor  # [epochs, batches per epoch], float32 on the CPU; NaN where no batch was trained
    val_acc: list[float]  # after each epoch
    test_acc: float
    diverged_at: int | None  # 1-based number of the batch whose loss was NaN/inf, if any


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


def result(job: Job, losses: Tensor, val_acc: list[float], test_acc: float, diverged_at: int | None) -> JobResult:
    """A JobResult whose losses are NaN after the batch where the model diverged."""
    losses = losses.cpu().clone()
    if diverged_at is not None:
        losses.view(-1)[diverged_at:] = math.nan
    return JobResult(job, losses, val_acc, test_acc, diverged_at)
