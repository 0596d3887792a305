"""What engines train and return: jobs (scheme, seed, settings) and their results.

Importing this module does not import torch (the command line checks settings
before any work); the results hold tensors, which only exist once training ran.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from initbench import data, models
from initbench.errors import UsageError

if TYPE_CHECKING:
    from torch import Tensor, nn

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "selu", "linear")
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class DataSettings:
    """What decides the images a model trains and is scored on."""

    dataset: str = "fashion-mnist"  # a name in data.DATASETS
    classes: tuple[int, ...] | None = None  # the dataset's classes the model tells apart, in output order; None: all
    train_samples: int | None = None  # a seeded subset of the training split; None: all of it
    split_seed: int = 0  # of the train/validation split

    @property
    def class_numbers(self) -> tuple[int, ...]:
        """The classes, all of the dataset's when none were chosen."""
        return data.get(self.dataset).all_classes if self.classes is None else self.classes


@dataclass(frozen=True)
class NetworkSettings:
    """What decides the network: its architecture, and how a scheme's start and scoring apply
    to it. ``bias`` and ``head_init`` are here because they say how the network's parts are
    filled (the scheme decides the rest), ``lesson_eval`` because it is the network's dropout
    left on when it is scored: each is read where the network is built, initialized or run."""

    network: str = "mlp"  # a name in models.NETWORKS
    hidden: tuple[int, ...] = (256, 128)
    activation: str = "relu"
    dropout: float = 0.2
    bias: str = "scheme"  # the scheme's own bias, or "zeros", or "default" (PyTorch's)
    head_init: str = "default"  # the scheme of an output layer that pretrained cannot load (other classes)
    lesson_eval: bool = False  # score with dropout still on, as the lesson's helper does (no model.eval())
    parametrization: str = "sp"  # "sp": the scheme's weights, one lr; "mup": μP (parametrization.py)
    # μP's base: the width of every hidden layer of the network whose numbers μP keeps (there μP = SP).
    # A fixed width rather than the network's own, so that one base serves a sweep over widths: the
    # lr tuned at 64 units (cheap) is the one μP transfers to wider networks. Read under mup only.
    base_width: int = 64

    @property
    def eval_dropout(self) -> bool:
        """Whether models are scored with dropout on (--lesson-eval, and dropout to leave on)."""
        return self.lesson_eval and self.dropout > 0

    @property
    def layers(self) -> int:
        """How many weighted layers the network has (what --freeze counts)."""
        return models.get(self.network).depth(self)


@dataclass(frozen=True)
class OptimSettings:
    """What decides how a network is trained on its data."""

    optimizer: str = "adam"  # Adam (torch.optim.Adam's defaults, as in the lesson) or SGD
    lr: float = 1e-3
    momentum: float = 0.9  # SGD's (Adam has its own moments and ignores this)
    batch_size: int = 100
    epochs: int = 2
    freeze: int = 0  # the lowest layers kept as initialized
    unfreeze_after: int | None = None  # train the frozen layers again after this many epochs
    unfreeze_lr: float | None = None  # their learning rate then; None: lr / 10

    def frozen(self, epoch: int) -> int:
        """How many of the lowest layers are frozen in ``epoch`` (0-based)."""
        return 0 if self.unfreeze_after is not None and epoch >= self.unfreeze_after else self.freeze

    @property
    def lr_unfrozen(self) -> float:
        """The learning rate of layers trained after being frozen."""
        return self.lr / 10 if self.unfreeze_lr is None else self.unfreeze_lr


# Every flat key (config files, the command line, --set, grids, stored settings) and the group of
# TrainSettings that holds it, in the order files and tables list them (the settings' order before
# the groups; keys added since go last).
FLAT = {"hidden": "network", "dropout": "network", "lr": "optim", "optimizer": "optim", "momentum": "optim",
        "batch_size": "optim", "epochs": "optim", "activation": "network", "bias": "network",
        "lesson_eval": "network", "classes": "data", "train_samples": "data", "split_seed": "data",
        "head_init": "network", "freeze": "optim", "unfreeze_after": "optim", "unfreeze_lr": "optim",
        "dataset": "data", "network": "network", "parametrization": "network", "base_width": "network"}
# Settings added after stores were first written, with their defaults: stored (identity, rows, weights
# files' records) only where they differ from them, so that every key and record written before stays valid.
ADDED = {"dataset": DataSettings.dataset, "network": NetworkSettings.network,
         "parametrization": NetworkSettings.parametrization, "base_width": NetworkSettings.base_width}


@dataclass(frozen=True)
class TrainSettings:
    """Everything about a model and its training except its scheme and seed: the data, the
    network, the optimization. Files, options and grids set them by flat keys (FLAT)."""

    data: DataSettings = DataSettings()
    network: NetworkSettings = NetworkSettings()
    optim: OptimSettings = OptimSettings()

    @classmethod
    def of(cls, **flat: Any) -> TrainSettings:
        """The default settings with ``flat`` keys (hidden=..., lr=...) changed."""
        return cls().replace(**flat)

    def replace(self, **flat: Any) -> TrainSettings:
        """These settings with ``flat`` keys changed, each in its group."""
        groups: dict[str, dict[str, Any]] = {}
        for key, value in flat.items():
            if key not in FLAT:
                raise TypeError(f"{key!r} is not a setting")
            groups.setdefault(FLAT[key], {})[key] = value
        return dataclasses.replace(self, **{group: dataclasses.replace(getattr(self, group), **changes)
                                            for group, changes in groups.items()})

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat key, in FLAT's order."""
        return {key: getattr(getattr(self, group), key) for key, group in FLAT.items()}

    def plain(self) -> dict[str, Any]:
        """The settings as stored: JSON-ready (tuples as lists, the classes as numbers), an
        ADDED setting only where it is not its default."""
        flat = self.flat() | {"classes": self.data.class_numbers}
        return {key: list(value) if isinstance(value, tuple) else value for key, value in flat.items()
                if key not in ADDED or value != ADDED[key]}

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> TrainSettings:
        """Settings as ``plain`` stored them (a missing ADDED setting: its default)."""
        return cls.of(**{key: tuple(value) if isinstance(value, list) else value for key, value in plain.items()})


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
    val_acc: list[float]  # after each epoch
    test_acc: float
    diverged_at: int | None  # 1-based number of the batch whose loss was NaN/inf, if any
    weights: dict[str, Tensor] | None = None  # the final state dict (on the CPU), when asked for
    initial: dict[str, Tensor] | None = None  # the state dict as initialized, when asked for
    layer_stats: list[dict[str, float]] | None = None  # diagnostics.layer_stats rows with their "epoch" (0: init)


def check_batch_size(batch_size: int, n_train: int) -> None:
    """Refuse a batch larger than the training set (it would only cost memory)."""
    if batch_size > n_train:
        raise UsageError(f"--batch-size {batch_size:,} is larger than the training set ({n_train:,} images). "
                         f"Use a batch size of at most {n_train:,}, or train on more images (--train-samples).")


def batches_per_epoch(n_train: int, batch_size: int) -> int:
    return math.ceil(n_train / batch_size)


def shown(key: str, value: Any) -> str:
    """A setting's value as tables and pictures show it: hidden 256x30, classes 5,6."""
    if key == "hidden":
        sizes = list(value)
        return f"{sizes[0]}x{len(sizes)}" if len(set(sizes)) == 1 and len(sizes) > 1 else ",".join(map(str, sizes))
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if value is None or (isinstance(value, float) and math.isnan(value)):  # pandas reads None as NaN
        return "all" if key == "train_samples" else "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


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
