"""The dataset registry: one name -> one ``Dataset``.

A dataset is a module that makes a ``Dataset`` (what settings are checked by and
jobs are keyed by, and ``read``, which gives its verified images and labels) and a
line that registers it (``register``: in ``data/__init__.py`` for initbench's own).
What is the same for every dataset (the seeded split, class and training subsets)
is ``data/__init__.py``'s. Nothing here imports torch: the command line checks a
dataset's name and classes before any work. A dataset also names its task (``tasks``:
what its models learn and are scored by; image classification unless it says otherwise).
A dataset of one's own::

    # blocks.py: 8x8 images of a bright block in one corner (the class)
    def read(data_dir, log):
        ...  # check the files against files_sha256, then
        return Arrays(x_train, y_train, x_test, y_test)

    BLOCKS = Dataset("blocks", "Blocks", ("top left", "top right", "bottom left", "bottom right"),
                     input_size=64, train_images=400, test_images=100,
                     files_sha256={"blocks.npz": "<its SHA-256>"}, read=read)

    # at start-up
    data.register(blocks.BLOCKS)

Its jobs are keyed by ``files_sha256`` (never by a path), so moving the data keeps them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from initbench.choices import Registry

if TYPE_CHECKING:
    from torch import Tensor

VALIDATION_FRACTION = 0.2  # of a dataset's training images, held out by the seeded split


class Arrays(NamedTuple):
    """A dataset as read: images as rows of ``input_size`` values (of any dtype: converted to
    float32 and divided by the dataset's ``scale`` only once a split's rows are picked),
    labels as int64 class numbers."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


@dataclass(frozen=True)
class Dataset:
    """A dataset: what settings are checked by and jobs keyed by, known without loading it,
    and ``read``, which loads it."""

    name: str  # as settings name it: dataset = "fashion-mnist"
    title: str  # as people and weights files' records name it: "FashionMNIST"
    class_names: tuple[str, ...]
    input_size: int  # values per image: the network's inputs
    train_images: int  # in its training set, before the validation split
    test_images: int
    files_sha256: Mapping[str, str]  # what a job's identity names the data by (read verifies the files by it)
    read: Callable[[Path, Callable[[str], None]], Arrays]  # (data folder, log) -> the verified arrays
    scale: float = 1.0  # the images' values are divided by it (255 for bytes)
    aliases: Mapping[str, int] = field(default_factory=dict)  # other names of classes, as _plain writes them
    # (rows, columns) of the image an input row is, row after row (a network that needs images reads
    # it); None: the inputs are not an image.
    image_shape: tuple[int, int] | None = None
    # The name jobs are keyed by where it is not ``name``: idx:DIR's is "idx", its files' SHA-256
    # naming the data, so that moving or copying the folder keeps its keys.
    keyed_as: str | None = None
    task: str = "classification"  # what a model learns from it and is scored by (tasks.TASKS)
    # A text's (data.text): (data folder) -> its checked Corpus, read instead of ``read``'s images. Its
    # "classes" are then its vocabulary's characters, its "images" its characters.
    corpus: Callable[[Path], Any] | None = None

    def __post_init__(self) -> None:
        if self.image_shape is not None and self.image_shape[0] * self.image_shape[1] != self.input_size:
            raise ValueError(f"{self.name}: images of {self.image_shape} are not {self.input_size} inputs")

    @property
    def kind(self) -> str:
        """What its examples are: "images" (rows of values), or "text" (a corpus's characters)."""
        return "images" if self.corpus is None else "text"

    @property
    def all_classes(self) -> tuple[int, ...]:
        return tuple(range(len(self.class_names)))

    @property
    def train_split(self) -> int:
        """Images the split leaves to train on (of all classes)."""
        return self.train_images - int(self.train_images * VALIDATION_FRACTION)

    @property
    def validation_split(self) -> int:
        return self.train_images - self.train_split

    def class_number(self, name: str) -> int:
        """A class given by number or by name, in any case (spaces, '-', '_' and '/' ignored)."""
        if name.strip().isdigit():  # a number as written: "-1" is no class, not class 1 with a dash ignored
            if int(name) < len(self.class_names):
                return int(name)
            raise ValueError(f"{name.strip()!r} is not one of {self.title}'s class numbers (0 to "
                             f"{len(self.class_names) - 1})")
        names = {_plain(n): i for i, n in enumerate(self.class_names)} | dict(self.aliases)
        if _plain(name) not in names:
            raise ValueError(f"{name!r} is not one of {self.title}'s classes: "
                             + ", ".join(map(self._named, self.all_classes)))
        return names[_plain(name)]

    def describe(self, classes: tuple[int, ...]) -> str:
        """'5 sandal, 6 shirt' (or 'all 10')."""
        if classes == self.all_classes:
            return f"all {len(self.class_names)}"
        return ", ".join(map(self._named, classes))

    def _named(self, number: int) -> str:
        """'5 sandal'; a class named by its number (a digit) just '5'."""
        name = self.class_names[number].lower()
        return name if name == str(number) else f"{number} {name}"


def _plain(name: str) -> str:
    return "".join(c for c in name.lower() if c not in " -_/")


DATASETS: Registry[Dataset] = Registry("dataset")
register = DATASETS.register
get = DATASETS.find
