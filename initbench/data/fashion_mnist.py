"""FashionMNIST (Xiao et al. 2017): find it, verify it, read it.

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
from collections.abc import Callable
from pathlib import Path

from initbench import paths
from initbench.data import idx
from initbench.data.registry import Arrays, Dataset
from initbench.errors import InitbenchError

SYSTEM_DIR_ENV = "INITBENCH_SYSTEM_DATA"
DEFAULT_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")
CLASS_ALIASES = {"tshirt": 0, "top": 0, "tshirttop": 0, "boot": 9}  # other ways to write a class name


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


def read(data_dir: Path, log: Callable[[str], None] = lambda _: None) -> Arrays:
    """The verified files: images as rows of 784 bytes (mapped, not read: a split picks its
    rows before they are converted), labels as int64."""
    raw = ensure(data_dir, log)
    return idx.arrays({name: idx.read(raw / name, kind) for name, kind in idx.FILES.items()})


FASHION_MNIST = Dataset("fashion-mnist", "FashionMNIST", CLASS_NAMES, input_size=28 * 28, train_images=60_000,
                        test_images=10_000, files_sha256=SHA256, read=read, scale=255.0, aliases=CLASS_ALIASES,
                        image_shape=(28, 28))
