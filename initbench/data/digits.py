"""scikit-learn's handwritten digits (Alpaydin and Kaynak's UCI optdigits test set): 1,797
real 8x8 images of values 0 to 16, shipped inside scikit-learn (no download).

The file is read from scikit-learn's folder without importing scikit-learn (that takes
about two seconds, for a file of 57 KB), verified against its SHA-256 and parsed as
``sklearn.datasets.load_digits`` parses it. The data has no test set of its own: a fixed,
seeded, stratified split, part of the dataset's definition (never a setting), keeps 36
images of each digit (360 in all) to test on and 1,437 to train on, each part in the file's
order; its rows are verified too, so a change in torch's permutation is an error, not
other data under the same keys.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from initbench.data.registry import Arrays, Dataset
from initbench.errors import InitbenchError

if TYPE_CHECKING:
    from torch import Tensor

FILE = ("datasets", "data", "digits.csv.gz")  # in scikit-learn's package folder
TEST_PER_CLASS = 36  # 20% of the smallest class (174 images), the same for every digit
SPLIT_SEED = 0
IMAGES, TEST_IMAGES = 1_797, 360
# SHA-256 of digits.csv.gz's decompressed content, and of the test rows (int64, little-endian) the split keeps.
SHA256 = {"digits.csv": "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8",
          "test-rows": "13d4ace2f9478d427aa7897e5b577e56a342d0c9f8b0fdafef4febed28fae67e"}
HOW_TO_GET = "Install scikit-learn (pip install 'scikit-learn>=1.3'), which ships it."


def path() -> Path:
    """Where scikit-learn keeps the file (found, not imported)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise InitbenchError(f"The digits dataset comes with scikit-learn, which is not installed. {HOW_TO_GET}")
    return Path(spec.submodule_search_locations[0]).joinpath(*FILE)


def held_out(labels: Tensor) -> Tensor:
    """The rows the split tests on, in the file's order: of each digit, the first
    TEST_PER_CLASS of a seeded permutation of all rows."""
    import torch

    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    by_class = order[torch.argsort(labels[order], stable=True)]  # each digit's rows together, in shuffled order
    counts = torch.bincount(labels)
    rank = torch.arange(len(labels)) - (torch.cumsum(counts, 0) - counts)[labels[by_class]]  # within its digit
    return by_class[rank < TEST_PER_CLASS].sort().values


def read(data_dir: Path, log: Callable[[str], None] = lambda _: None) -> Arrays:
    """The verified images (uint8 rows of 64 values, 0 to 16) and labels, split."""
    import numpy as np
    import torch

    source = path()
    try:
        content = gzip.decompress(source.read_bytes())
    except (OSError, EOFError) as e:
        raise InitbenchError(f"Cannot read the digits dataset {source}: {e}. {HOW_TO_GET}") from None
    if hashlib.sha256(content).hexdigest() != SHA256["digits.csv"]:
        raise InitbenchError(f"The digits dataset {source} is not the data initbench knows (its SHA-256 differs): "
                             f"this scikit-learn ships other digits, or the file is damaged. {HOW_TO_GET}")
    values = torch.from_numpy(np.loadtxt(content.decode().splitlines(), delimiter=",", dtype=np.uint8))
    images, labels = values[:, :-1].contiguous(), values[:, -1].long()
    test = held_out(labels)
    if hashlib.sha256(test.numpy().astype("<i8").tobytes()).hexdigest() != SHA256["test-rows"]:
        raise InitbenchError("The digits dataset's fixed test split came out other than initbench defines it (this "
                             "torch permutes differently). Report it: the split must not change under the same keys.")
    train = torch.ones(len(labels), dtype=torch.bool).index_fill_(0, test, False)
    return Arrays(images[train], labels[train], images[test], labels[test])


DIGITS = Dataset("digits", "Digits", tuple(map(str, range(10))), input_size=64, train_images=IMAGES - TEST_IMAGES,
                 test_images=TEST_IMAGES, files_sha256=SHA256, read=read, scale=16.0, image_shape=(8, 8))
