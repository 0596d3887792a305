"""A run folder: staged beside its destination and moved into place whole, or absent.

A run's files are all written under temporary names first and renamed into
place only once every one of them is complete, and the folder that holds them is
renamed to its destination only when the run is complete, so an interrupted or
failed run never leaves a half-written or mixed result behind. A run killed
outright (kill -9, a power cut) cannot remove its staging folder: the next run in
that folder does, recognising it by a lock that only a living run holds. Nothing here
imports torch: the command line checks the destination before any work.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench import data, paths, settings
from initbench.errors import InitbenchError, UsageError
from initbench.models import checkpoint
from initbench.settings import DataSettings
from initbench.storage import store
from initbench.words import spreadsheet_safe

if TYPE_CHECKING:
    import pandas as pd


STAGED = re.compile(r"\..+\.(?:partial|replaced)-(?P<pid>\d+)-[0-9a-f]{8}")  # the names run_folder gives
FLOCK = "hhqqi"  # struct flock: type, whence, start, length, pid
LOCK_GRACE_SECONDS = 60.0  # a run locks its staging folder within microseconds of making it


@dataclass
class RunFolder:
    """Where a run writes (``staging``), where it was asked to go (``requested``: where the
    symbolic link ``link`` leads, when --out was one) and, once it is whole, where it is
    (``path``: ``requested``, or ``requested-2``... if another run took that name meanwhile)."""

    staging: Path
    requested: Path
    path: Path
    link: Path | None = None


def destination(dest: Path, staged: bool = True) -> Path:
    """Where a run asked to go to ``dest`` is written: ``dest``, or where it leads when it is
    a symbolic link (the link stays, and leads to the run, as writing into a linked folder
    does); refused before any work when nothing can be made there (a file or a symbolic link
    loop on the way, a folder that cannot be written: the parent, where a ``staged`` run is
    made; else ``dest`` itself when it exists, as a sweep writes in its folder)."""
    why = paths.problem(dest, "folder", missing_ok=True)
    if why is not None:
        raise UsageError(f"The output folder {dest} {why}. Choose another with --out.")
    target = dest.resolve() if dest.is_symlink() else dest
    for above in target.parents if staged else (target, *target.parents):  # the nearest that exists is written
        why = paths.problem(above, "folder", missing_ok=True)
        if why is not None:
            raise UsageError(f"Cannot write to the output folder {dest}: {above} {why}. Choose another with --out.")
        if above.exists():
            if not os.access(above, os.W_OK | os.X_OK):
                raise UsageError(f"Cannot write to the output folder {dest}: {above} is read-only for you (its "
                                 "permissions or its file system). Choose another with --out.")
            break
    return target


def check_destination(dest: Path, overwrite: bool) -> Path:
    """Refuse, before any work, a destination that cannot be made (see ``destination``), or
    a folder that already holds files (unless ``overwrite``), or one that --overwrite must
    never replace. Returns where the run goes."""
    target = destination(dest)
    if target.is_dir() and any(target.iterdir()):
        if not overwrite:
            raise UsageError(f"The output folder {dest} already holds files. Choose another with --out, or "
                                 "add --overwrite to replace it whole with this run's results.")
        resolved, cwd = dest.resolve(), Path.cwd().resolve()
        if resolved in (cwd, *cwd.parents, Path.home().resolve()):
            raise UsageError(f"--overwrite will not replace {dest}: it is the current folder, one above it "
                                 "or your home folder. Choose a folder of its own with --out.")
    return target


@contextmanager
def run_folder(dest: Path, overwrite: bool = False,
               note: Callable[[str], None] = lambda _: None) -> Iterator[RunFolder]:
    """A run staged in a hidden folder beside ``dest`` (where it leads, when a symbolic link)
    and moved into place in one rename when the block completes, so ``dest`` is always one
    whole run or absent, whatever fails or whichever signal arrives; the staging folder is
    removed if the block fails, and its lock tells later runs that it is in use while this
    process lives. If another run took ``dest`` meanwhile, this one goes to ``dest-2``
    (``-3``...). ``note`` is told of staging folders of killed runs removed beside it."""
    target = check_destination(dest, overwrite)
    removed = remove_stale(target.parent)
    if removed:
        note(f"Removed {len(removed)} unfinished run folder{'s' if len(removed) > 1 else ''} that killed runs left "
             f"in {target.parent}: {', '.join(removed)}")
    staging = target.parent / f".{target.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]  # innermost first
    try:
        staging.mkdir(parents=True)
    except OSError as e:
        raise InitbenchError(f"Cannot write to the output folder's parent {target.parent}: {e.strerror or e}. "
                             "Choose another with --out.") from None
    lock = _lock(staging)
    folder = RunFolder(staging, target, target, dest if target != dest else None)
    try:
        yield folder
        folder.path = _move_into_place(staging, target, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for parent in created:  # and the folders made to hold it (results/), if still empty
            try:
                parent.rmdir()
            except OSError:
                break
        raise
    finally:
        if lock is not None:
            os.close(lock)


def _lock(staging: Path) -> int | None:
    """A shared lock on the staging folder, held until the descriptor is closed (by this
    process, or by its death: kill -9 included). An open-file-description lock, which
    neither the store's flock on the same folder nor another descriptor's closing
    releases; None where the system has none (then a run's process id alone tells)."""
    if not hasattr(fcntl, "F_OFD_SETLK"):
        return None
    fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack(FLOCK, fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0))
    except OSError:  # a file system without locks
        os.close(fd)
        return None
    return fd


def _locked(folder: Path) -> bool | None:
    """Whether a living process holds ``folder``'s lock (None: cannot tell here)."""
    if not hasattr(fcntl, "F_OFD_GETLK"):
        return None
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        found = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, struct.pack(FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
    except OSError:
        return None
    finally:
        os.close(fd)
    return struct.unpack(FLOCK, found)[0] != fcntl.F_UNLCK


def _process_lives(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(parent: Path) -> list[str]:
    """Remove the staging folders in ``parent`` of runs that were killed outright, and
    return their names. A staging folder is in use while its run holds its lock; unlocked,
    it is stale if its process is gone, or if it is older than a run takes to lock it (its
    process id then belongs to another process). Where locks cannot be read, only a
    folder whose process is gone is removed."""
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = STAGED.fullmatch(entry.name)
        if match is None or entry.is_symlink() or not entry.is_dir():
            continue
        locked, lives = _locked(entry), _process_lives(int(match["pid"]))
        if locked or (lives and (locked is None or time.time() - entry.stat().st_mtime < LOCK_GRACE_SECONDS)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry.name)
    return removed


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


def write_files(out: Path, writers: Mapping[str, Callable[[Path], object]], sync: bool = False) -> None:
    """Call each writer on a temporary path in ``out``, then rename all into place. With
    ``sync``, each file, then each folder that names them, is on disk (fsync) on return:
    what a store row will name is written before the row commits."""
    staged: list[tuple[Path, Path]] = []
    try:
        for name, write in writers.items():  # a name may have folders: weights/rule-seed0.safetensors
            final = out / name
            final.parent.mkdir(parents=True, exist_ok=True)
            staged.append((final.with_name(f".{final.name}.{os.getpid()}.tmp"), final))
            write(staged[-1][0])
            if sync:
                _fsync(staged[-1][0])
        for tmp, final in staged:
            tmp.replace(final)
        if sync:  # the renames, and the folders made for the files (weights/ in out)
            for folder in {out, *(final.parent for _, final in staged)}:
                _fsync(folder)
    except OSError as e:  # a full disk, a quota, a folder removed under the run
        raise InitbenchError(f"Could not write the results in {out}: {e.strerror or e}. Free some space or "
                             "choose another --out.") from e
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def csv_writer(frame: pd.DataFrame) -> Callable[[Path], None]:
    """Every CSV file initbench writes: numbers as numbers (-0.5 stays a number), text
    cells made safe for spreadsheets."""
    def write(path: Path) -> None:
        text = frame.select_dtypes(include=["object", "string"]).columns
        frame.assign(**{column: frame[column].map(spreadsheet_safe) for column in text}).to_csv(
            path, index=False, float_format="%.6g")
    return write


def json_writer(data: Mapping[str, Any]) -> Callable[[Path], None]:
    return lambda path: path.write_text(json.dumps(data, indent=2) + "\n")


# --- finished runs, as report and transfer --source read them: checked before torch loads

RUN_FILES = ("run.json", "runs.csv", "losses.csv")
OPTIONAL_FILES = ("layer_stats.csv",)


def _integer(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value


def _classes(value: Any) -> str | None:  # the dataset's range is checked where the dataset is known (source_run)
    fine = (isinstance(value, list) and bool(value) and len(set(value)) == len(value)
            and all(_integer(c, 0) for c in value))
    return None if fine else "must be a list of distinct class numbers"


def _setting(key: str) -> Callable[[Any], str | None]:
    """What is wrong with a setting's value in run.json (None: nothing), by the parser its
    declaration gives it: the value must parse, and be as run.json writes it (a list for a
    tuple, a number for a number)."""
    parse = settings.declarations()[key].parse
    assert parse is not None, key  # a setting read here parses without a registry

    def check(value: Any) -> str | None:
        try:
            parsed = parse(value)
        except ValueError as e:
            return str(e)
        if isinstance(parsed, tuple) and not isinstance(value, list):
            return "must be a list"
        return None if (list(parsed) if isinstance(parsed, tuple) else parsed) == value else \
            "is not as initbench writes it"
    return check


# What report and transfer read of run.json (section, key): what is wrong with a value (None:
# nothing), and whether it may be absent.
RUN_INFO: dict[tuple[str, str], tuple[Callable[[Any], str | None], bool]] = {
    **{("config", key): (_setting(key), False) for key in ("schemes", "epochs", "batch_size", "plot_batches",
                                                           "dropout")},
    ("config", "lesson_eval"): (_setting("lesson_eval"), True),
    ("config", "classes"): (_classes, True),
    ("data", "train"): (lambda value: None if _integer(value, 1) else "must be a whole number from 1", False),
}


@dataclass(frozen=True)
class FinishedRun:
    """A compare run's folder and its run.json (of the layout RUN_INFO checks)."""

    folder: Path
    info: dict[str, Any]


@dataclass
class Reported:
    """What ``initbench report`` was given: finished compare runs, or one sweep folder; and
    the entries that are neither (each with why), which it skips."""

    runs: list[FinishedRun]
    sweep: Path | None
    skipped: list[str]


def not_a_run(folder: Path) -> str | None:
    """Why ``folder`` holds no finished compare run, as words following its name, or None."""
    why = paths.problem(folder, "folder")
    if why is not None:
        return why
    missing = [name for name in RUN_FILES if not os.path.lexists(folder / name)]
    if missing:
        return f"is not a finished compare run: it has no {' or '.join(missing)}"
    return None


def finished_run(folder: Path) -> FinishedRun:
    """A compare run folder, its files checked as regular files (a FIFO would block the
    reader) and its run.json read; a clear error otherwise."""
    why = not_a_run(folder)
    if why is not None:
        raise UsageError(f"{folder} {why}. Give run folders written by initbench compare.")
    for name in RUN_FILES + tuple(n for n in OPTIONAL_FILES if os.path.lexists(folder / n)):
        why = paths.problem(folder / name, "file")
        if why is not None:
            raise UsageError(f"{folder / name} {why}. A run's files are regular files that initbench wrote: give "
                             "run folders written by initbench compare.")
    path = folder / "run.json"
    try:
        info = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:  # not UTF-8 or not JSON are ValueErrors
        raise InitbenchError(f"Cannot read {path}: {getattr(e, 'strerror', None) or e}. It is not the run.json "
                             "initbench writes: run the run again to report on it.") from None
    wrong = _wrong_layout(info)
    if wrong:
        raise InitbenchError(f"{path} is not laid out as this initbench writes run.json ({'; '.join(wrong)}): it was "
                             "written by another version of initbench, or edited. Run the run again to report on it.")
    return FinishedRun(folder, info)


JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false",
              type(None): "null"}


def _wrong_layout(info: Any) -> list[str]:
    """What in a run.json's ``info`` is not as RUN_INFO says (nothing: it is)."""
    if not isinstance(info, dict):
        return [f"it holds {JSON_KINDS.get(type(info), 'a value')}, not an object"]
    wrong = [f"its {section!r} is not an object" for section in ("config", "data")
             if not isinstance(info.get(section), dict)]
    for (section, key), (problem, optional) in RUN_INFO.items():
        if not isinstance(info.get(section), dict):
            continue
        if key not in info[section]:
            wrong += [] if optional else [f"{section}.{key} is missing"]
        elif (why := problem(info[section][key])) is not None:
            wrong.append(f"{section}.{key} {why}")
    return wrong


def reported(entries: list[Path], redraw: bool) -> Reported:
    """Sort ``initbench report``'s entries (as a shell's results/* gives them) into finished
    compare runs and sweep folders, skipping what is neither (a README, an empty folder);
    a sweep folder is reported alone. Refused, before any work, when no run is left, and
    with ``redraw``, when a folder cannot be written (its pictures are redrawn in it)."""
    runs, sweeps, skipped = [], [], []
    for entry in entries:
        if paths.problem(entry, "folder") is None and store.kind(entry) == "sweep":
            sweeps.append(entry)
        elif (why := not_a_run(entry)) is not None:
            skipped.append(f"{entry} {why}")
        else:
            runs.append(finished_run(entry))
    if runs:
        skipped += [f"{folder} is a sweep folder, reported alone (initbench report {folder})" for folder in sweeps]
        sweeps = []
    if len(sweeps) > 1:
        raise UsageError(f"{', '.join(map(str, sweeps))} are sweep folders: a sweep folder is reported alone. "
                         "Give one sweep folder, or compare run folders.")
    if not runs and not sweeps:
        raise UsageError("; ".join(skipped) + ". Give run folders written by initbench compare, or a sweep folder.")
    chosen = Reported(runs, sweeps[0] if sweeps else None, skipped)
    if redraw:
        for folder in [run.folder for run in runs] + sweeps:
            if not os.access(folder, os.W_OK | os.X_OK):
                raise UsageError(f"{folder} is read-only for you (its permissions or its file system), so its "
                                 "pictures cannot be redrawn there. Add --no-pictures to print the table without "
                                 "writing anything.")
    return chosen


def weights_files(given: list[Path]) -> list[tuple[Path, bool]]:
    """The files evaluate's PATHs stand for (a run folder: every file in its weights/), each
    with whether it is in a run folder's weights/ (then it is held to its name there);
    every one a regular file of a kind initbench reads, checked before any work."""
    found: list[tuple[Path, bool]] = []
    for path in given:
        if str(path) in ("", "."):
            raise UsageError("An empty PATH was given. Give weights files or run folders.")
        if paths.problem(path, "folder") is None:
            files = sorted((path / "weights").glob("*.safetensors"))
            if not files:
                raise UsageError(f"{path} holds no weights/*.safetensors: it is not a compare run folder, or it "
                                 "was run with --no-save-weights. Give weights files or run folders.")
            found += [(f, True) for f in files]
        else:
            found.append((path, path.parent.name == "weights" and (path.parent.parent / "run.json").is_file()))
    for file, _ in found:
        why = paths.problem(file, "file")
        if why is not None:
            raise UsageError(f"{file} {why}. Give weights files or run folders.")
        checkpoint.check_kind(file)
    return found


def source_run(folder: Path, task_b: DataSettings) -> tuple[str, tuple[int, ...]]:
    """The scheme and classes (task A) of a transfer --source run: a finished compare run of
    one scheme, a network per seed, on task B's dataset, on classes that task B does not have."""
    info = finished_run(folder).info
    with (folder / "runs.csv").open(newline="") as f:
        try:
            found = sorted({row.get("scheme") or "" for row in csv.DictReader(f)})
        except (csv.Error, UnicodeDecodeError) as e:
            raise InitbenchError(f"Cannot read {folder / 'runs.csv'}: {e}. Run the source run again.") from None
    if len(found) != 1:
        raise UsageError(f"The source run {folder} trained {len(found)} schemes ({', '.join(found)}); a source "
                         "run must have one, with a network per seed. Run compare with one scheme for task A.")
    dataset, trained_on = data.get(task_b.dataset), info["config"].get("dataset", DataSettings.dataset)
    task_a = tuple(info["config"].get("classes", dataset.all_classes))
    if trained_on != dataset.name or max(task_a) >= len(dataset.class_names):
        raise UsageError(f"The source run {folder} trained on {trained_on!r}, task B is on {dataset.name!r}. Give a "
                         f"source run trained on {dataset.name}.")
    task_b_classes = data.class_numbers(task_b)
    if set(task_a) & set(task_b_classes):
        raise UsageError(f"The source run {folder} trained on classes {dataset.describe(task_a)}, which share "
                         f"classes with task B ({dataset.describe(task_b_classes)}): its networks have seen "
                         "task B. Give a source run trained on other classes.")
    return found[0], task_a
