"""A run folder: staged beside its destination and moved into place whole, or absent.

A run's files are all written under temporary names first and renamed into
place only once every one of them is complete, and the folder that holds them is
renamed to its destination only when the run is complete, so an interrupted or
failed run never leaves a half-written or mixed result behind. Nothing here
imports torch: the command line checks the destination before any work.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench.errors import InitbenchError, UsageError

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class RunFolder:
    """Where a run writes (``staging``), where it was asked to go (``requested``) and,
    once it is whole, where it is (``path``: ``requested``, or ``requested-2``... if
    another run took that name meanwhile)."""

    staging: Path
    requested: Path
    path: Path


def check_destination(dest: Path, overwrite: bool) -> None:
    """Refuse, before any work, a destination that is a file, or a folder that already
    holds files (unless ``overwrite``), or one that --overwrite must never replace."""
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"The output folder {dest} is a file. Choose another with --out.")
    if dest.is_dir() and any(dest.iterdir()):
        if not overwrite:
            raise UsageError(f"The output folder {dest} already holds files. Choose another with --out, or "
                                 "add --overwrite to replace it whole with this run's results.")
        resolved, cwd = dest.resolve(), Path.cwd().resolve()
        if resolved in (cwd, *cwd.parents, Path.home().resolve()):
            raise UsageError(f"--overwrite will not replace {dest}: it is the current folder, one above it "
                                 "or your home folder. Choose a folder of its own with --out.")


@contextmanager
def run_folder(dest: Path, overwrite: bool = False) -> Iterator[RunFolder]:
    """A run staged in a hidden folder beside ``dest`` and moved into place in one rename
    when the block completes, so ``dest`` is always one whole run or absent, whatever
    fails or whichever signal arrives; the staging folder is removed if the block fails.
    If another run took ``dest`` meanwhile, this one goes to ``dest-2`` (``-3``...)."""
    check_destination(dest, overwrite)
    staging = dest.parent / f".{dest.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    created = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]  # innermost first
    try:
        staging.mkdir(parents=True)
    except OSError as e:
        raise InitbenchError(
            f"Cannot write to the output folder's parent {dest.parent}: {e.strerror or e}. Choose another with --out."
        ) from None
    folder = RunFolder(staging, dest, dest)
    try:
        yield folder
        folder.path = _move_into_place(staging, dest, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for parent in created:  # and the folders made to hold it (results/), if still empty
            try:
                parent.rmdir()
            except OSError:
                break
        raise


def _move_into_place(staging: Path, dest: Path, overwrite: bool) -> Path:
    if overwrite and dest.is_dir():
        old = staging.with_name(staging.name.replace(".partial-", ".replaced-"))
        dest.rename(old)
        staging.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
        return dest
    for n in range(1, 1000):
        target = dest if n == 1 else dest.with_name(f"{dest.name}-{n}")
        try:
            staging.rename(target)  # atomic; fails on a file or on a folder that holds files
            return target
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise
    raise InitbenchError(f"Could not find a free name beside {dest} (tried up to {dest.name}-999).")


def check_file_destination(path: Path) -> None:
    """Refuse, before any work, an output file path that is a folder or cannot be written."""
    if path.is_dir():
        raise UsageError(f"{path} is a folder; --out takes a file name here, e.g. {path / 'bench.json'}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".initbench-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InitbenchError(f"Cannot write to {path.parent}: {e.strerror or e}. Choose another with --out.") from None


def write_files(out: Path, writers: Mapping[str, Callable[[Path], object]]) -> None:
    """Call each writer on a temporary path in ``out``, then rename all into place."""
    staged: list[tuple[Path, Path]] = []
    try:
        for name, write in writers.items():  # a name may have folders: weights/rule-seed0.safetensors
            final = out / name
            final.parent.mkdir(parents=True, exist_ok=True)
            staged.append((final.with_name(f".{final.name}.{os.getpid()}.tmp"), final))
            write(staged[-1][0])
        for tmp, final in staged:
            tmp.replace(final)
    except OSError as e:  # a full disk, a quota, a folder removed under the run
        raise InitbenchError(f"Could not write the results in {out}: {e.strerror or e}. Free some space or "
                             "choose another --out.") from e
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def csv_writer(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda path: frame.to_csv(path, index=False, float_format="%.6g")


def json_writer(data: Mapping[str, Any]) -> Callable[[Path], None]:
    return lambda path: path.write_text(json.dumps(data, indent=2) + "\n")
