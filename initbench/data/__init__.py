"""The data: a registry of datasets (``registry``: a name -> a ``Dataset``; FashionMNIST in
``fashion_mnist``, scikit-learn's 8x8 digits in ``digits``, ``idx:DIR`` (any folder of IDX
files) in ``idx``) and what is the same for every dataset: the seeded 80/20 train/validation
split, class subsets (``classes``) and training subsets (``train_samples``), loading once
into tensors, the data's identity for weights' metadata.

Adding a dataset is a module that makes a ``Dataset`` and a line here that registers it.
torch is imported inside the functions that use it: settings are checked before any work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench import tasks
from initbench.data import digits, fashion_mnist, idx, text
from initbench.data.registry import DATASETS, VALIDATION_FRACTION, Arrays, Dataset, get, register
from initbench.errors import InitbenchError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from initbench.settings import DataSettings, TrainSettings

__all__ = ["DATASETS", "VALIDATION_FRACTION", "Arrays", "Dataset", "Splits", "batches", "class_numbers",
           "get", "identity", "load", "register", "stored", "task", "train_images"]

register(fashion_mnist.FASHION_MNIST)
register(digits.DIGITS)
register(text.SHAKESPEARE)
DATASETS.register_family(idx.PREFIX, "DIR", idx.dataset)  # idx:DIR: a folder of IDX files
DATASETS.register_family(text.PREFIX, "FILE_OR_DIR", text.dataset)  # text:FILE_OR_DIR: any UTF-8 text
FAMILY_TASKS = {idx.PREFIX: tasks.CLASSIFICATION.name, text.PREFIX: text.TASK}  # each family's datasets' task


def class_numbers(settings: DataSettings) -> tuple[int, ...]:
    """The classes a model tells apart: those ``settings`` name, all of its dataset's when none."""
    return get(settings.dataset).all_classes if settings.classes is None else settings.classes


def task(dataset: str) -> tasks.Task:
    """The task of the dataset named ``dataset`` (what its models learn and are scored by),
    known without reading its data: a registered dataset's own, else its family's (idx:DIR's),
    so that a run is shown after its data moved away. A dataset not registered in this
    process (a user's, whose code is not loaded here) is read as classification: the one
    task whose scores the stores' columns hold."""
    entry = DATASETS.get(dataset)
    if entry is not None:
        return tasks.get(entry.task)
    return tasks.get(FAMILY_TASKS.get(dataset.partition(":")[0], tasks.CLASSIFICATION.name))


def batches(settings: TrainSettings, n_train: int) -> int:
    """The batches (steps) a job with ``settings`` trains per epoch on ``n_train`` training
    images: a pass over them; on a text (whose windows are drawn, not passed over), ``steps``."""
    from initbench.jobs import batches_per_epoch

    if get(settings.data.dataset).corpus is not None:
        return settings.optim.steps
    return batches_per_epoch(n_train, settings.optim.batch_size)


def stored(settings: TrainSettings) -> dict[str, Any]:
    """Settings as stores, run folders and weights files keep them (``TrainSettings.plain``),
    the classes as numbers: all ten named are the default's, and the same key."""
    return settings.plain(class_numbers(settings.data))



@dataclass(frozen=True)
class Splits:
    """Images as float32 rows of the dataset's values divided by its scale (FashionMNIST: 784 pixels
    in [0, 1]), labels as int64."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor

    def to(self, device: torch.device) -> Splits:
        return Splits(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def identity(settings: DataSettings) -> dict:
    """What decides which images a model saw and is scored on: the files (by SHA-256; they are
    verified against these before use), the split, the training subset and the classes."""
    dataset = get(settings.dataset)
    return {"dataset": dataset.title, "files_sha256": dict(dataset.files_sha256), "split_seed": settings.split_seed,
            "train_samples": settings.train_samples, "classes": list(class_numbers(settings))}


def _rows(arrays: Arrays, settings: DataSettings) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The rows of the training part, validation part and test set that a split keeps (the
    training part in the split's shuffled order), and each label's new number (-1: dropped)."""
    import torch

    y, y_test = arrays.y_train, arrays.y_test
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(settings.split_seed))
    n_val = int(len(y) * VALIDATION_FRACTION)
    val, train, test = order[:n_val], order[n_val:], torch.arange(len(y_test))
    dataset, classes = get(settings.dataset), class_numbers(settings)
    label = torch.arange(len(dataset.class_names))
    if classes != dataset.all_classes:
        wanted = torch.tensor(classes)
        label = torch.full((len(dataset.class_names),), -1).index_put_((wanted,), torch.arange(len(classes)))
        val, train, test = (rows[torch.isin(labels[rows], wanted)] for rows, labels in
                            ((val, y), (train, y), (test, y_test)))
    return train, val, test, label


def train_images(data_dir: Path, splits: Iterable[DataSettings]) -> dict[DataSettings, int]:
    """How many training images each split holds (the most ``train_samples`` can ask for),
    the data verified and read once per dataset."""
    read = {name: get(name).read(data_dir, lambda _: None) for name in dict.fromkeys(s.dataset for s in splits)}
    return {split: len(_rows(read[split.dataset], split)[0]) for split in dict.fromkeys(splits)}


def load(data_dir: Path, settings: DataSettings, log: Callable[[str], None] = lambda _: None) -> Splits:
    """The verified data as tensors: a seeded 80/20 train/validation split of the training
    images (the same split for every scheme of a run), and the test images.

    ``classes`` keeps the images of those classes only (in every part), their labels
    renumbered 0, 1, ... in the order given; ``train_samples`` then keeps a seeded subset
    of the training part (the first N of the split's shuffled order).
    """
    dataset = get(settings.dataset)
    if dataset.corpus is not None:
        return _text(dataset, data_dir, log)
    arrays = dataset.read(data_dir, log)
    train, val, test, label = _rows(arrays, settings)
    if settings.train_samples is not None:
        if settings.train_samples > len(train):
            classes = class_numbers(settings)
            of = "" if classes == dataset.all_classes else f" of classes {dataset.describe(classes)}"
            raise InitbenchError(f"--train-samples is {settings.train_samples:,}, but the training split has only "
                                 f"{len(train):,} images{of}. Ask for fewer.")
        train = train[:settings.train_samples]

    def values(x: Tensor, rows: Tensor) -> Tensor:  # rows picked before conversion: a quarter of the copying
        return x[rows].float().div_(dataset.scale)

    y, y_test = arrays.y_train, arrays.y_test
    return Splits(values(arrays.x_train, train), label[y[train]], values(arrays.x_train, val), label[y[val]],
                  values(arrays.x_test, test), label[y_test[test]])


def _text(dataset: Dataset, data_dir: Path, log: Callable[[str], None]) -> Splits:
    """A text's splits: each part's characters as token numbers (int64), inputs and targets
    alike (a model reads windows of them and predicts each next one)."""
    import torch

    log(f"Reading {dataset.title}")
    corpus = dataset.corpus(data_dir)  # type: ignore[misc]  (a text's)
    parts = [torch.tensor(corpus.encoded(part), dtype=torch.long) for part in ("train", "val", "test")]
    return Splits(parts[0], parts[0], parts[1], parts[1], parts[2], parts[2])
