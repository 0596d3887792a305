"""FashionMNIST: find it, verify it, load it once into tensors, split it.

Where the data comes from, in order: the data folder if it already holds the
four IDX files (where torchvision's ``datasets.FashionMNIST`` keeps them); a
system copy of the four ``.gz`` files (Debian's package
``dataset-fashion-mnist``), decompressed into the data folder; torchvision's
own download. Every IDX file is checked against the SHA-256 of the real data
before use, so a truncated or corrupted copy is an error, never a silently
wrong result. The verified files are then read directly (an IDX file is a
short header and raw bytes), which spares every run the second or so that
importing torchvision takes.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import shutil
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from initbench import paths
from initbench.errors import InitbenchError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

DATA_DIR_ENV = "INITBENCH_DATA_DIR"
SYSTEM_DIR_ENV = "INITBENCH_SYSTEM_DATA"
DEFAULT_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
VALIDATION_FRACTION = 0.2
TRAIN_IMAGES = 60_000  # in the training file, before the split
TRAIN_SPLIT = TRAIN_IMAGES - int(TRAIN_IMAGES * VALIDATION_FRACTION)  # 48,000 images to train on

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")
ALL_CLASSES = tuple(range(len(CLASS_NAMES)))
# Other ways to write a class name (compared in lower case, ignoring spaces, '-', '_' and '/').
CLASS_ALIASES = {"tshirt": 0, "top": 0, "tshirttop": 0, "boot": 9}


def class_number(name: str) -> int:
    """A class given by number (0-9) or by FashionMNIST's name, in any case."""
    if name.strip().isdigit():  # a number as written: "-1" is no class, not class 1 with a dash ignored
        if int(name) < len(CLASS_NAMES):
            return int(name)
        raise ValueError(f"{name.strip()!r} is not one of FashionMNIST's class numbers (0 to {len(CLASS_NAMES) - 1})")
    key = "".join(c for c in name.lower() if c not in " -_/")
    names = {"".join(c for c in n.lower() if c not in " -_/"): i for i, n in enumerate(CLASS_NAMES)} | CLASS_ALIASES
    if key not in names:
        raise ValueError(f"{name!r} is not one of FashionMNIST's classes: "
                         + ", ".join(f"{i} {n.lower()}" for i, n in enumerate(CLASS_NAMES)))
    return names[key]


def describe(classes: tuple[int, ...]) -> str:
    """'5 sandal, 6 shirt' (or 'all 10')."""
    if classes == ALL_CLASSES:
        return f"all {len(CLASS_NAMES)}"
    return ", ".join(f"{i} {CLASS_NAMES[i].lower()}" for i in classes)


# SHA-256 of the decompressed IDX files of the real FashionMNIST (Xiao et al. 2017).
SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no space, a quota, a file-size limit
DECOMPRESSED_BYTES = 54_950_000  # the four IDX files

HOW_TO_GET = (
    "Get it one of two ways: on Debian, `apt-get update && apt-get install -y dataset-fashion-mnist` "
    f"(installs the files in {DEFAULT_SYSTEM_DIR}; set {SYSTEM_DIR_ENV} to use another folder holding the "
    "four .gz files); or run once on a machine with internet access, which downloads it through torchvision."
)


@dataclass(frozen=True)
class Splits:
    """Images as float32 rows of 784 pixels in [0, 1], labels as int64."""

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


def identity(split_seed: int, train_samples: int | None, classes: tuple[int, ...]) -> dict:
    """What decides which images a model saw and is scored on: the files (by SHA-256; they are
    verified against these before use), the split, the training subset and the classes."""
    return {"dataset": "FashionMNIST", "files_sha256": dict(SHA256), "split_seed": split_seed,
            "train_samples": train_samples, "classes": list(classes)}


def default_data_dir() -> Path:
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "initbench"


def raw_dir(data_dir: Path) -> Path:
    """Where torchvision looks for the decompressed files."""
    return data_dir / "FashionMNIST" / "raw"


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify(raw: Path) -> None:
    """Check each IDX file against the real data's SHA-256; name the first bad one."""
    for name, expected in SHA256.items():
        path = raw / name
        if not path.is_file():
            raise InitbenchError(f"FashionMNIST file {path} is missing. {HOW_TO_GET}")
        if _sha256(path) != expected:
            raise InitbenchError(
                f"FashionMNIST file {path} is corrupted or truncated (its SHA-256 is not the real data's). "
                "Delete it and run again: initbench restores it from the system copy or downloads it."
            )


def _from_system_copy(system: Path, raw: Path, log: Callable[[str], None]) -> None:
    log(f"Decompressing FashionMNIST from {system} into {raw}")
    raw.mkdir(parents=True, exist_ok=True)
    for name in SHA256:
        source, target = system / f"{name}.gz", raw / name
        tmp = target.with_name(f".{name}.tmp")
        try:
            with gzip.open(source, "rb") as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError) as e:
            tmp.unlink(missing_ok=True)
            if isinstance(e, OSError) and e.errno in FULL_DISK:  # writing failed, not the system copy
                raise InitbenchError(f"Cannot decompress FashionMNIST into {raw}: {e.strerror} (it needs about "
                                     f"{DECOMPRESSED_BYTES / 2**20:.0f} MB). Free some space there, or give another "
                                     "--data-dir.") from None
            raise InitbenchError(
                f"Cannot decompress {source}: {e}. Reinstall the system copy. {HOW_TO_GET}") from None
        tmp.replace(target)


def _download(data_dir: Path, log: Callable[[str], None]) -> None:
    from torchvision import datasets

    log(f"Downloading FashionMNIST into {data_dir}")
    try:
        for train in (True, False):
            datasets.FashionMNIST(str(data_dir), train=train, download=True)
    except Exception as e:  # torchvision raises bare RuntimeError/URLError on every network failure
        raise InitbenchError(
            f"FashionMNIST is not in {raw_dir(data_dir)}, there is no system copy in "
            f"{os.environ.get(SYSTEM_DIR_ENV) or DEFAULT_SYSTEM_DIR}, and downloading it failed "
            f"({str(e).splitlines()[0]}). {HOW_TO_GET}"
        ) from e


def ensure(data_dir: Path, log: Callable[[str], None] = lambda _: None) -> Path:
    """Make sure ``data_dir`` holds the verified IDX files; return their folder."""
    raw = raw_dir(data_dir)
    why = paths.problem(data_dir, "folder", missing_ok=True)
    if why is not None:
        raise InitbenchError(f"The data folder {data_dir} {why}. Give a folder with --data-dir.")
    if not all((raw / name).is_file() for name in SHA256):
        system = Path(os.environ.get(SYSTEM_DIR_ENV) or DEFAULT_SYSTEM_DIR)
        try:
            if all((system / f"{name}.gz").is_file() for name in SHA256):
                _from_system_copy(system, raw, log)
            else:
                _download(data_dir, log)
        except OSError as e:  # no permission, a full disk, a file where a folder must go
            raise InitbenchError(f"Cannot write the data folder {data_dir}: {e.strerror or e}. "
                                 "Free some space or use another --data-dir.") from e
    verify(raw)
    return raw


def read_idx(path: Path) -> Tensor:
    """An IDX file as a uint8 tensor mapped from the file (copy-on-write, no read pass):
    zero bytes, a type byte, the number of dimensions, each dimension as a big-endian
    32-bit integer, then the data."""
    import torch

    content = torch.from_file(str(path), size=path.stat().st_size, dtype=torch.uint8)
    n_dims = int(content[3])
    dims = struct.unpack(f">{n_dims}I", content[4:4 + 4 * n_dims].numpy().tobytes())
    return content[4 + 4 * n_dims:].view(*dims)


def _rows(y: Tensor, y_test: Tensor, split_seed: int,
          classes: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The rows of the training part, validation part and test set that a split keeps (the
    training part in the split's shuffled order), and each label's new number (-1: dropped)."""
    import torch

    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(split_seed))
    n_val = int(len(y) * VALIDATION_FRACTION)
    val, train, test = order[:n_val], order[n_val:], torch.arange(len(y_test))
    label = torch.arange(len(CLASS_NAMES))
    if classes != ALL_CLASSES:
        wanted = torch.tensor(classes)
        label = torch.full((len(CLASS_NAMES),), -1).index_put_((wanted,), torch.arange(len(classes)))
        val, train, test = (rows[torch.isin(labels[rows], wanted)] for rows, labels in
                            ((val, y), (train, y), (test, y_test)))
    return train, val, test, label


def _labels(raw: Path, prefix: str) -> Tensor:
    return read_idx(raw / f"{prefix}-labels-idx1-ubyte").long()


def train_images(data_dir: Path, splits: Iterable[tuple[int, tuple[int, ...]]]) -> dict[tuple, int]:
    """How many training images each split (split seed, classes) holds (the most
    ``train_samples`` can ask for), from the labels alone, verified and read once."""
    raw = ensure(data_dir)
    y, y_test = _labels(raw, "train"), _labels(raw, "t10k")
    return {split: len(_rows(y, y_test, *split)[0]) for split in dict.fromkeys(splits)}


def load(data_dir: Path, split_seed: int = 0, train_samples: int | None = None,
         classes: tuple[int, ...] = ALL_CLASSES, log: Callable[[str], None] = lambda _: None) -> Splits:
    """The verified data as tensors: a seeded 80/20 train/validation split of the 60,000
    training images (the same split for every scheme of a run), and the 10,000 test images.

    ``classes`` keeps the images of those classes only (in every part), their labels
    renumbered 0, 1, ... in the order given; ``train_samples`` then keeps a seeded subset
    of the training part (the first N of the split's shuffled order).
    """
    raw = ensure(data_dir, log)

    def images(prefix: str) -> Tensor:
        found = read_idx(raw / f"{prefix}-images-idx3-ubyte")
        return found.view(len(found), -1)

    def pixels(rows: Tensor) -> Tensor:  # bytes are picked out before conversion: a quarter of the copying
        return rows.float().div_(255.0)

    y, y_test = _labels(raw, "train"), _labels(raw, "t10k")
    train, val, test, label = _rows(y, y_test, split_seed, classes)
    if train_samples is not None:
        if train_samples > len(train):
            raise InitbenchError(f"--train-samples is {train_samples:,}, but the training split has only "
                                 f"{len(train):,} images" + (f" of classes {describe(classes)}" if classes !=
                                                             ALL_CLASSES else "") + ". Ask for fewer.")
        train = train[:train_samples]
    x, x_test = images("train"), images("t10k")
    return Splits(pixels(x[train]), label[y[train]], pixels(x[val]), label[y[val]], pixels(x_test[test]),
                  label[y_test[test]])
