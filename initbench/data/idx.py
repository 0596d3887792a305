"""IDX files, the format MNIST, FashionMNIST, KMNIST and EMNIST are published in, and
``idx:DIR``: a dataset made of any folder holding the four files, each gzipped or not.

An IDX file is a magic number (two zero bytes, a type byte, the number of dimensions),
each dimension as a big-endian 32-bit integer, then the values. initbench reads unsigned
bytes: magic 2051 for images (count, rows, columns), 2049 for labels (count). A header is
checked against what the file can hold before anything of its claimed size is allocated,
so a hostile header (dimensions of 2^32) is an error in words, not a memory error.

A folder's data is named by the SHA-256 of its decompressed files, never by its path: the
same data gzipped or not, moved or copied, is the same data and the same jobs. numpy, not
torch, reads here: the command line resolves ``idx:DIR`` (headers, counts, classes) while it
checks settings, before torch loads.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from initbench import paths
from initbench.data.registry import Arrays, Dataset
from initbench.errors import InitbenchError, UsageError

if TYPE_CHECKING:
    import numpy as np

Kind = Literal["images", "labels"]
MAGIC: dict[Kind, int] = {"images": 0x803, "labels": 0x801}  # unsigned bytes; 3 dimensions, 1 dimension
FILES: dict[str, Kind] = {"train-images-idx3-ubyte": "images", "train-labels-idx1-ubyte": "labels",
                          "t10k-images-idx3-ubyte": "images", "t10k-labels-idx1-ubyte": "labels"}
HEAD = 16  # bytes: the longest header initbench reads (images: magic and three dimensions)
# Deflate's best ratio is about 1032:1, so a .gz file of n bytes holds at most that many times
# n once decompressed: a header claiming more is refused before anything is allocated.
GZIP_RATIO = 1032
PREFIX = "idx"
WHAT = ("a folder holding MNIST's four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte), each gzipped (.gz) or not")


@dataclass(frozen=True)
class Header:
    dims: tuple[int, ...]

    @property
    def offset(self) -> int:
        """Where the values start."""
        return 4 + 4 * len(self.dims)

    @property
    def size(self) -> int:
        """The whole file's bytes, as the header describes it."""
        return self.offset + math.prod(self.dims)


def header(head: bytes, kind: Kind, name: object) -> Header:
    """The header at the start of ``head`` (a file's first HEAD bytes, or all of a shorter one),
    checked to be one of ``kind`` (``name``: the file, as messages call it)."""
    magic = int.from_bytes(head[:4], "big") if len(head) >= 4 else None
    if magic != MAGIC[kind]:
        found = "it is shorter than an IDX header" if magic is None else f"its magic number is {magic}"
        raise InitbenchError(f"{name} is not an IDX file of {kind} ({found}, not {MAGIC[kind]}: unsigned bytes in "
                             f"{MAGIC[kind] & 0xFF} dimensions). Give the {kind} file it is named for, as MNIST "
                             "publishes it.")
    n_dims = MAGIC[kind] & 0xFF
    if len(head) < 4 + 4 * n_dims:
        raise InitbenchError(f"{name} is truncated: it ends within its header. Replace it with a whole copy.")
    return Header(struct.unpack(f">{n_dims}I", head[4:4 + 4 * n_dims]))


def parse(content: np.ndarray, kind: Kind, name: object) -> np.ndarray:
    """A whole IDX file's bytes (a uint8 array) as its values, shaped as its header says (a view)."""
    found = header(content[:HEAD].tobytes(), kind, name)
    if found.size != len(content):
        raise InitbenchError(f"{name} holds {len(content):,} bytes, but its header describes {kind} of shape "
                             f"{'x'.join(map(str, found.dims))} ({found.size:,} bytes): it is truncated or not "
                             "what its header says. Replace it with a whole copy.")
    return content[found.offset:].reshape(found.dims)


def read(path: Path, kind: Kind) -> np.ndarray:
    """An uncompressed IDX file's values, mapped from the file (copy-on-write, no read pass)."""
    import numpy as np

    return parse(np.memmap(path, dtype=np.uint8, mode="c"), kind, path)


def arrays(values: Mapping[str, np.ndarray]) -> Arrays:
    """The four files' values (by FILES' names) as a dataset's arrays: each image a row of its
    pixels (a view: a split picks its rows before they are converted), labels as int64."""
    import torch

    x_train, y_train, x_test, y_test = (torch.from_numpy(values[name]) for name in FILES)
    return Arrays(x_train.view(len(x_train), -1), y_train.long(), x_test.view(len(x_test), -1), y_test.long())


def contents(path: Path, kind: Kind) -> bytearray:
    """A whole IDX file's bytes, decompressed if it ends in .gz. Its header is checked against
    what the file can hold before the rest is allocated and read."""
    compressed = path.suffix == ".gz"
    try:
        size = path.stat().st_size
        with gzip.open(path, "rb") if compressed else path.open("rb") as f:
            head = f.read(HEAD)
            claimed = header(head, kind, path).size
            most = size * GZIP_RATIO if compressed else size
            if claimed > most:
                holds = f"can hold at most about {most:,} once decompressed" if compressed else f"holds {size:,}"
                raise InitbenchError(f"{path}'s header describes {claimed:,} bytes of {kind}, but the file {holds}: "
                                     "its header is damaged or hostile. Replace it with a whole copy.")
            data = bytearray(claimed)
            data[:min(len(head), claimed)] = head[:claimed]
            view, filled = memoryview(data), min(len(head), claimed)
            while filled < claimed and (got := f.readinto(view[filled:])):
                filled += got
            if filled < claimed or len(head) > claimed or f.read(1):
                raise InitbenchError(f"{path} is {'shorter' if filled < claimed else 'longer'} than its header says "
                                     f"({claimed:,} bytes{' decompressed' if compressed else ''}): it is truncated or "
                                     "damaged. Replace it with a whole copy.")
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise InitbenchError(f"Cannot read {path}: {e}. Replace it with a whole copy.") from None
    return data


@dataclass(frozen=True)
class Folder:
    """The four files of a folder, as found (each the plain file or its .gz)."""

    files: Mapping[str, Path]  # FILES' names -> the file read

    def stamp(self) -> tuple[tuple[str, int, int, int], ...]:
        """What changes when a file does: path, size, modification time and inode of each."""
        found = ((path, path.stat()) for path in self.files.values())
        return tuple((str(path), s.st_size, s.st_mtime_ns, s.st_ino) for path, s in found)

    def arrays(self) -> tuple[dict[str, str], dict[str, np.ndarray]]:
        """Each file's SHA-256 (of its decompressed bytes) and values."""
        import numpy as np

        shas, values = {}, {}
        for name, path in self.files.items():
            data = contents(path, FILES[name])
            shas[name] = hashlib.sha256(data).hexdigest()
            values[name] = parse(np.frombuffer(data, dtype=np.uint8), FILES[name], path)
        return shas, values


_RESOLVED: dict[tuple[tuple[str, int, int, int], ...], Dataset] = {}  # per files' stamp: hashed once a process


def dataset(argument: str) -> Dataset:
    """``idx:DIR``'s dataset: the folder's four files found, read, checked and hashed (once while
    they stay as they are). Every problem is a UsageError: the setting names data that cannot be used."""
    if not argument:
        raise UsageError(f"idx: needs a folder: --dataset idx:DIR, where DIR is {WHAT}.")
    folder = Path(os.path.abspath(Path(argument).expanduser()))  # as settings keep it: from any folder
    why = paths.problem(folder, "folder")
    if why is not None:
        raise UsageError(f"The IDX folder {folder} {why}. Give --dataset idx:DIR, where DIR is {WHAT}.")
    found = Folder({name: _file(folder, name) for name in FILES})
    stamp = found.stamp()
    if stamp not in _RESOLVED:
        try:
            _RESOLVED[stamp] = _made(folder, found)
        except UsageError:
            raise
        except InitbenchError as e:  # a file's problem found while checking settings: the setting cannot run
            raise UsageError(str(e)) from None
    return _RESOLVED[stamp]


def _file(folder: Path, name: str) -> Path:
    """The file ``name`` in ``folder``: itself, or else its .gz (torchvision keeps both)."""
    for path in (folder / name, folder / f"{name}.gz"):
        if os.path.lexists(path):  # a name there, even a link that leads nowhere: said as it is, not as missing
            why = paths.problem(path, "file")
            if why is not None:
                raise UsageError(f"The IDX file {path} {why}. Replace it with the file itself.")
            return path
    raise UsageError(f"The IDX folder {folder} has no {name} (nor {name}.gz). Give --dataset idx:DIR, where DIR is "
                     f"{WHAT}.")


def _made(folder: Path, found: Folder) -> Dataset:
    """The dataset the files make, once they are checked to make one."""
    shas, values = found.arrays()
    train_x, train_y, test_x, test_y = (values[name] for name in FILES)
    for part, x, y in (("training", train_x, train_y), ("test", test_x, test_y)):
        if len(x) != len(y):
            raise UsageError(f"The IDX folder {folder}'s {part} set has {len(x):,} images but {len(y):,} labels. "
                             "Give a folder whose images and labels are of the same images.")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise UsageError(f"The IDX folder {folder}'s training images are {'x'.join(map(str, train_x.shape[1:]))} and "
                         f"its test images {'x'.join(map(str, test_x.shape[1:]))}: one network cannot take both. "
                         "Give a folder whose images are all of one size.")
    rows, columns = train_x.shape[1:]
    if len(train_y) < 2 or len(test_y) == 0 or rows * columns == 0:
        raise UsageError(f"The IDX folder {folder} has {len(train_y)} training and {len(test_y)} test images of "
                         f"{rows}x{columns} pixels: too few to split and score. Give a folder of a real dataset.")
    classes = int(train_y.max()) + 1  # labels are class numbers: the classes are 0 to the largest
    if classes < 2 or int(test_y.max()) >= classes:
        why = ("its training labels are all 0: one class" if classes < 2 else
               f"its test labels go up to {int(test_y.max())}, but its training labels only to {classes - 1}")
        raise UsageError(f"The IDX folder {folder}'s labels are out of range ({why}). Give a folder whose training "
                         "set holds every class its test set does, at least two.")
    import numpy as np

    counts = np.bincount(train_y, minlength=classes)
    if not counts.all():  # a stray label (255 among 0-9), or classes never used: outputs that no image trains
        empty = np.flatnonzero(counts == 0)
        raise UsageError(f"The IDX folder {folder}'s training labels are {_spans(np.flatnonzero(counts))}: as a label "
                         f"is its class's number, they make {classes} classes, {len(empty)} of them without a "
                         f"training image ({_spans(empty)}), which a network would have outputs for and never learn. "
                         "Give a folder whose training labels number its classes from 0, without a gap.")
    return Dataset(f"{PREFIX}:{folder}", f"{PREFIX}:{folder}", tuple(map(str, range(classes))), rows * columns,
                   len(train_y), len(test_y), shas, partial(_read, folder, found, shas), scale=255.0,
                   image_shape=(rows, columns), keyed_as=PREFIX)


def _spans(numbers: Iterable[int], most: int = 6) -> str:
    """Sorted class numbers in words, runs as spans: "0-9 and 255" (the first ``most`` spans)."""
    spans: list[list[int]] = []
    for n in map(int, numbers):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    words = [str(a) if a == b else f"{a}-{b}" for a, b in spans[:most]]
    if len(spans) > most:
        words.append(f"{len(spans) - most} more runs")
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _read(folder: Path, found: Folder, shas: Mapping[str, str], data_dir: Path,
          log: Callable[[str], None]) -> Arrays:
    """The files' values as they were when the dataset was resolved (their SHA-256 checked)."""
    now, values = found.arrays()
    changed = [name for name in FILES if now[name] != shas[name]]
    if changed:
        raise InitbenchError(f"The IDX folder {folder}'s {', '.join(changed)} changed since this run began (their "
                             "SHA-256 is not what the run's jobs are keyed by). Run again on data that stays put.")
    return arrays(values)
