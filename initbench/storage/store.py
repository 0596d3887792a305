"""The result store: a SQLite file in every run and sweep folder, one row per finished
job, keyed by what the job is.

A job's key is the SHA-256 of a canonical JSON encoding of its identity: its scheme
under its canonical name (for ``pretrained:FILE``, the file's SHA-256), its seed,
every training setting, and the data files' SHA-256 (the split seed, training subset
and classes are settings). So the same job has the same key in any process, on any
machine and in any folder, and a store can say what is left to train without
training anything.

Each finished chunk of jobs is written in one transaction, in WAL mode with full
syncs, so a process killed at any moment (``kill -9`` included) loses at most the
chunks it was training, and the file is never left corrupt. One process writes a
store at a time: it holds an exclusive lock on the folder (``flock``, released by the
kernel when the process dies however it dies), and a second gets a clear error.
Readers (``initbench report``, ``sqlite3``, pandas) may read while it writes.

The schema (``SCHEMA``) is the documented interface; the CSVs, tables and pictures
are views of it. Nothing here imports torch: the command line asks a store what is
done before any work.

Nothing lost, nothing mixed: a store is a file with initbench's marker (its ``info``
table names its version and kind), and a SQLite file without it is never written into.
Each row carries the SHA-256 of its own values (``row_sha256``) and, with a weights
file, that file's size and SHA-256, so a row edited by hand, or whose file was deleted
or altered, is never taken for a result (``Store.done`` decides what is finished, for a
run and its dry run alike). A writer checks before each commit that its path still leads
to the file it opened: a folder deleted or replaced under a sweep stops it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import re
import socket
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from initbench import data, initializers
from initbench.errors import InitbenchError, UsageError
from initbench.jobs import Job, Keep
from initbench.settings import ADDED, TrainSettings
from initbench.training import streams

if TYPE_CHECKING:
    import pandas as pd

    from initbench.jobs import JobResult

FILE = "store.sqlite"
# Of the schema; a store of another version is refused, not misread. Version 2 added the
# weights file's size and digest and each row's digest; a version-1 store is read as it is,
# and migrated when written (_migrate: its rows digested as they are, so it resumes).
VERSION = 2
READS = ("1", "2")
SCHEMA = """
CREATE TABLE IF NOT EXISTS info (       -- what the store is: 'version', 'kind' (run or sweep),
    name TEXT PRIMARY KEY,              -- and 'current': each scheme's canonical name as last swept (JSON)
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (       -- one row per finished job
    key TEXT PRIMARY KEY,               -- SHA-256 of identity
    identity TEXT NOT NULL,             -- canonical JSON: scheme, seed, settings, data files
    name TEXT NOT NULL,                 -- what tables call the job: its scheme as given, or a strategy
    scheme TEXT NOT NULL,               -- the scheme's canonical name
    seed INTEGER NOT NULL,
    settings TEXT NOT NULL,             -- JSON: every training setting (hidden, lr, classes, ...)
    val_acc REAL NOT NULL,              -- validation accuracy after the last epoch (0..1)
    test_acc REAL NOT NULL,             -- test accuracy after the last epoch
    val_acc_per_epoch TEXT NOT NULL,    -- JSON list, one per epoch
    last_batch_loss REAL,               -- NULL when the model diverged
    last_epoch_loss REAL,               -- mean training loss of the last epoch; NULL when diverged
    diverged_at INTEGER,                -- 1-based batch whose loss was NaN/inf, NULL if none
    epochs INTEGER NOT NULL,
    batches INTEGER NOT NULL,           -- per epoch
    losses BLOB NOT NULL,               -- float32 little-endian, epochs x batches, NaN after divergence
    layer_stats TEXT,                   -- JSON rows (diagnostics.layer_stats + epoch), NULL unless tracked
    weights_file TEXT,                  -- the final weights, relative to the folder; NULL unless kept
    chunk INTEGER NOT NULL,             -- the transaction that wrote the row (1, 2, ...)
    chunk_models INTEGER NOT NULL,      -- models trained together in that chunk
    train_seconds REAL NOT NULL,        -- the chunk's wall time divided by its models
    engine TEXT NOT NULL,
    device TEXT NOT NULL,
    device_name TEXT NOT NULL,          -- CPU model and kernel path, or GPU name
    host TEXT NOT NULL,
    initbench TEXT NOT NULL,            -- versions
    torch TEXT NOT NULL,
    finished TEXT NOT NULL,             -- ISO 8601 time of the commit
    weights_bytes INTEGER,              -- the weights file's size; NULL unless kept
    weights_sha256 TEXT,                -- its SHA-256: the row is done only while the file matches both
    row_sha256 TEXT                     -- SHA-256 of the row's other values (canonical JSON, see _canonical)
);
"""
# The jobs table's columns and their types, in order, read from SCHEMA (its one definition).
COLUMNS: dict[str, str] = dict(re.findall(r"^ {4}(\w+) (TEXT|INTEGER|REAL|BLOB)",
                                          SCHEMA.split("CREATE TABLE IF NOT EXISTS jobs", 1)[1], re.M))
_JSON_COLUMNS = {"identity": dict, "settings": dict, "val_acc_per_epoch": list, "layer_stats": list}
_SHOWN_KEYS = 5  # keys named in a message, at most
T = TypeVar("T")


def identity(job: Job) -> dict[str, Any]:
    """What decides a job's numbers, canonically: scheme names as the registry keys them
    (aliases and parameter spellings agree; a file by its SHA-256), the random streams'
    design (``streams.VERSION``; rows written before it was recorded have none: version 1), momentum and betas only
    where the optimizer uses them, head_init only for a file scheme, lesson_eval only with dropout,
    a dataset and network only where they are not the defaults (``TrainSettings.plain``; a dataset
    as ``Dataset.keyed_as`` names it)."""
    scheme, s, dataset = initializers.get(job.scheme), job.settings, data.get(job.settings.data.dataset)
    settings = data.stored(s)
    if "dataset" in settings and dataset.keyed_as:  # idx:DIR: by its files' SHA-256 (below), not its folder
        settings["dataset"] = dataset.keyed_as
    settings["lesson_eval"] = s.network.eval_dropout  # without dropout, scoring is the same either way
    if s.optim.optimizer != "sgd":
        del settings["momentum"]
    else:  # SGD has no moments to decay (stored only where not the default: ADDED)
        settings.pop("betas", None)
    if scheme.takes_file:  # the output layer pretrained cannot load
        settings["head_init"] = initializers.get(s.network.head_init).name
    else:
        del settings["head_init"]
    return {"scheme": scheme.name, "seed": job.seed, "settings": settings,
            "data_files_sha256": dict(dataset.files_sha256), "streams": streams.VERSION}


def _encoded(ident: dict[str, Any]) -> str:
    """An identity as canonical JSON (sorted keys, no spaces): what its key hashes."""
    return json.dumps(ident, sort_keys=True, separators=(",", ":"), allow_nan=False)


def key(job: Job) -> str:
    """The SHA-256 of the job's identity as canonical JSON."""
    return _key(_encoded(identity(job)))


def _key(encoded: str) -> str:
    return hashlib.sha256(encoded.encode()).hexdigest()


def _canonical(row: Mapping[str, Any]) -> str | None:
    """A row's values (all but ``row_sha256``) as canonical JSON: each as its column's type
    (REAL as a float, whatever SQLite stored), a blob by its SHA-256. None when the row is
    not one initbench could have written: a value of another type (a text accuracy), a JSON
    column that does not hold JSON of its kind, or a key that is not its identity's SHA-256."""
    values: list[Any] = []
    for column, kind in COLUMNS.items():
        value = row.get(column)
        if column == "row_sha256" or value is None:
            values.append(None)
        elif kind == "REAL" and isinstance(value, (int, float)) and math.isfinite(value):
            values.append(float(value))
        elif kind == "INTEGER" and isinstance(value, int) and not isinstance(value, bool):
            values.append(int(value))
        elif kind == "TEXT" and isinstance(value, str):
            values.append(str(value))  # torch's version is a str of its own class
        elif kind == "BLOB" and isinstance(value, bytes):
            values.append(hashlib.sha256(value).hexdigest())
        else:
            return None
    for column, container in _JSON_COLUMNS.items():
        try:
            if row.get(column) is not None and not isinstance(json.loads(row[column]), container):
                return None
        except json.JSONDecodeError:
            return None
    if row.get("key") != _key(row.get("identity") or ""):
        return None
    return json.dumps(values, separators=(",", ":"))


def file_id(path: Path) -> tuple[int, int] | None:
    """What ``path`` leads to (device and inode), or None where nothing is."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _file_record(path: Path) -> tuple[int, str]:
    """A file's size and SHA-256."""
    with path.open("rb") as f:
        return os.fstat(f.fileno()).st_size, hashlib.file_digest(f, "sha256").hexdigest()


def _file_matches(path: Path, size: int | None, sha256: str | None) -> bool:
    """Whether ``path`` is a file of ``size`` bytes and that SHA-256 (the size first: a
    truncated file is found without reading it)."""
    try:
        return (size is not None and path.is_file() and path.stat().st_size == size
                and _file_record(path)[1] == sha256)
    except OSError:
        return False


def _jobs(n: int) -> str:
    return f"{n:,} {'job' if n == 1 else 'jobs'}"


def _rows(n: int) -> str:
    return f"{n:,} {'row' if n == 1 else 'rows'}"


def _named(keys: Sequence[str]) -> str:
    """Keys as a message names them: their first 16 characters, at most a few."""
    shown = ", ".join(k[:16] for k in keys[:_SHOWN_KEYS])
    return shown + (f" and {len(keys) - _SHOWN_KEYS:,} more" if len(keys) > _SHOWN_KEYS else "")


@dataclass
class Checked:
    """A store's rows read back: those whose values match their digest (or, in a version-1
    store read as it is, that are values initbench writes), and the keys of those that do not."""

    rows: list[dict[str, Any]]
    edited: list[str]  # values that do not match the row's digest, or are not of their column's type


@dataclass
class Done:
    """What a store holds of a set of jobs: the keys that count as finished, and those that
    do not although a row has them, by why (a run says so, and trains them again)."""

    keys: set[str]
    edited: list[str]
    weights_lost: list[str]  # the row's weights file is missing, or not the file that was written
    code_changed: dict[str, int] = field(default_factory=dict)  # a user's scheme as given -> its jobs new by it
    restreamed: int = 0  # jobs the store holds rows of under earlier random streams only

    def notes(self) -> list[str]:
        """Why rows of the store are trained again, or jobs are new, in words (nothing when none is)."""
        why = [(self.edited, "whose values do not match the digest recorded with them (edited by hand, or written "
                             "by another program)"),
               (self.weights_lost, "whose weights file is missing or is not the file that was written (deleted, "
                                   "truncated or changed)")]
        return [f"{_rows(len(keys))} of the store {text}: {_named(keys)}; they are trained again."
                for keys, text in why if keys] + [
            f"{_jobs(n)} {'is' if n == 1 else 'are'} new because the code of {name} changed (the store keeps the "
            "rows of its earlier code)." for name, n in self.code_changed.items()] + (
            [f"{_jobs(self.restreamed)} the store holds {'was' if self.restreamed == 1 else 'were'} trained under "
             f"earlier random streams (before every scheme of a seed shared its initial draws and dropout masks): "
             f"{'it is' if self.restreamed == 1 else 'they are'} trained again under version {streams.VERSION}, "
             "and the earlier rows are kept apart (`initbench report --all-versions` shows them)."]
            if self.restreamed else [])


@dataclass(frozen=True)
class Machine:
    """Where results were trained: recorded on every row."""

    engine: str
    device: str
    device_name: str
    initbench: str
    torch: str
    host: str = socket.gethostname()


class LostStore(InitbenchError):
    """The store's path no longer leads to the file this process writes."""


class Store:
    """An open store. Use ``open_store``; ``add`` needs it opened for writing."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self.db = connection
        self.file_id = file_id(path)  # the file opened: see check_in_place
        self.added = 0  # jobs this process committed

    def check_in_place(self) -> None:
        """Stop if the store's path no longer leads to the file opened (its folder deleted,
        moved or replaced): SQLite would go on committing into a file no one can reach."""
        if file_id(self.path) == self.file_id:
            return
        (held,) = self.db.execute("SELECT count(*) FROM jobs").fetchone()
        raise LostStore(f"The store {self.path} was deleted or replaced while this command ran (its folder removed, "
                        f"moved or swapped): {_jobs(held)} had been committed to it ({self.added:,} by this "
                        f"command), and they are not in {self.path.parent} now. Nothing more was written. Run the "
                        "same command again: it trains them anew (if you moved the folder, move it back first and "
                        "it resumes instead).")

    def count(self) -> int:
        """The rows the store holds."""
        return self._sql(lambda: self.db.execute("SELECT count(*) FROM jobs").fetchone()[0])

    def done(self, keys: Iterable[str] | None = None, keep: Keep = Keep()) -> Done:
        """What is finished of ``keys`` (of every row, when None): rows whose values match
        their digest and that hold what ``keep`` asks for (layer statistics; a weights file
        that is there, of the size and SHA-256 recorded). Any other row is trained again. The
        one answer for a run and for its dry run."""
        checked = self._checked(keys)
        done = Done(set(), checked.edited, [])
        for row in checked.rows:
            if (keep.layer_stats and row["layer_stats"] is None) or (keep.weights and row["weights_file"] is None):
                continue
            # A version-1 row (read for a dry run: writing migrates it) counts as its migration
            # will record it, with its file as it is now.
            file = self.path.parent / row["weights_file"] if keep.weights else None
            if file is not None and not (_file_matches(file, row["weights_bytes"], row["weights_sha256"])
                                         if row["row_sha256"] is not None else file.is_file()):
                done.weights_lost.append(row["key"])
                continue
            done.keys.add(row["key"])
        return done

    def changed_versions(self, missing: Sequence[Job]) -> tuple[dict[str, int], int]:
        """Of ``missing`` jobs, those the store holds under another version: how many are new
        because the store's row of the job was trained under earlier random streams (the same
        identity less ``streams``: version 1's key), and per user's scheme (as given) how many
        because its code changed (a row of the same name, seed and settings, of other code)."""
        names = sorted({job.scheme for job in missing})
        if not names:
            return {}, 0
        canonical = {spec: initializers.get(spec).name for spec in names}
        unversioned = {}
        for job in missing:
            ident = identity(job)
            del ident["streams"]
            unversioned[_key(_encoded(ident))] = job
        held = self._keys_held(list(unversioned))
        restreamed = sum(key in held for key in unversioned)
        earlier: dict[tuple[str, int, str], set[str]] = {}
        for part in (names[i:i + 500] for i in range(0, len(names), 500)):  # SQLite's limit of parameters
            query = (f"SELECT name, seed, settings, scheme FROM jobs WHERE name IN ({', '.join('?' * len(part))})",
                     part)
            for name, seed, settings, scheme in self._sql(lambda: self.db.execute(*query).fetchall()):
                earlier.setdefault((name, seed, settings), set()).add(scheme)
        code: dict[str, int] = {}
        for key, job in unversioned.items():
            there = earlier.get((job.scheme, job.seed, json.dumps(data.stored(job.settings))), set())
            if key not in held and there - {canonical[job.scheme]}:
                code[job.scheme] = code.get(job.scheme, 0) + 1
        return code, restreamed

    def _keys_held(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` the store has rows of."""
        found: set[str] = set()
        for part in (keys[i:i + 500] for i in range(0, len(keys), 500)):
            query = (f"SELECT key FROM jobs WHERE key IN ({', '.join('?' * len(part))})", part)
            found.update(k for (k,) in self._sql(lambda: self.db.execute(*query).fetchall()))
        return found

    def check_trained_by(self, engine: str, device: str) -> None:
        """Refuse to add to a store whose jobs another engine or kind of device trained: their
        numbers round differently, and a cell's paired comparisons would mix them."""
        def record() -> None:
            with self.db:
                self.db.execute("INSERT OR IGNORE INTO info VALUES ('engine', ?), ('device', ?)", (engine, device))

        self._sql(record)
        found = self.info()
        if (found["engine"], found["device"]) != (engine, device):
            raise UsageError(f"The store in {self.path.parent} holds jobs trained by the {found['engine']} engine on "
                             f"{found['device']}; this sweep would train with the {engine} engine on {device}, and "
                             "their numbers would mix in one comparison. Use the same engine and device, or "
                             "another --out.")

    def add(self, results: Sequence[JobResult], names: Mapping[Job, str], seconds: float, machine: Machine,
            weights_files: Mapping[Job, str] | None = None) -> None:
        """One chunk's results, in one transaction: all of its rows or none, each with its
        digest and its weights file's size and SHA-256 (``weights_files``: written before,
        relative to the store's folder)."""
        self.check_in_place()
        (chunk,) = self._sql(lambda: self.db.execute("SELECT coalesce(max(chunk), 0) + 1 FROM jobs").fetchone())
        finished = datetime.now().astimezone().isoformat(timespec="seconds")
        rows = []
        for r in results:
            ident = identity(r.job)
            encoded = _encoded(ident)
            losses = r.losses.float().contiguous()
            last = losses[-1]
            file = (weights_files or {}).get(r.job)
            size, digest = _file_record(self.path.parent / file) if file else (None, None)
            row = dict(zip(COLUMNS, (
                _key(encoded), encoded, names[r.job],
                ident["scheme"], r.job.seed, json.dumps(data.stored(r.job.settings)), r.val_acc[-1], r.test_acc,
                json.dumps(r.val_acc), _real(float(last[-1])), _real(float(last.mean())), r.diverged_at,
                losses.shape[0], losses.shape[1], losses.numpy().astype("<f4").tobytes(),
                None if r.layer_stats is None else json.dumps(r.layer_stats),
                file, chunk, len(results), seconds / len(results), machine.engine,
                machine.device, machine.device_name, machine.host, machine.initbench, machine.torch, finished,
                size, digest, None)))
            canonical = _canonical(row)
            assert canonical is not None, f"a row initbench itself would refuse: {row['key']}"
            row["row_sha256"] = _key(canonical)
            rows.append(tuple(row.values()))

        def commit() -> None:
            with self.db:  # BEGIN ... COMMIT, or ROLLBACK on any error
                self.db.executemany(f"INSERT OR REPLACE INTO jobs ({', '.join(COLUMNS)}) "
                                    f"VALUES ({', '.join('?' * len(COLUMNS))})", rows)

        self._sql(commit)
        self.added += len(rows)

    def frame(self, keys: Iterable[str] | None = None) -> pd.DataFrame:
        """The rows (of ``keys``, in their order, when given) as a DataFrame, settings spread
        into columns of their own, the random streams' version each was trained under
        (``streams``), NULL losses as NaN, without the losses blob and the row's digest. Rows
        edited by hand are refused, never shown as results. A store may hold several versions
        of a scheme's rows: ``versions`` tells them apart."""
        import pandas as pd

        rows = self._unaltered(None if keys is None else list(keys))
        columns = [c for c in (rows[0] if rows else COLUMNS) if c not in ("losses", "row_sha256")]
        frame = pd.DataFrame([[row[c] for c in columns] for row in rows], columns=columns)
        if keys is not None:
            frame = frame.set_index("key").loc[list(keys)].reset_index()
        # A setting added since a row was written is at its default there (ADDED).
        settings = pd.DataFrame([ADDED | json.loads(s) for s in frame["settings"]], index=frame.index)
        frame = pd.concat([frame.drop(columns=["settings", "epochs"]), settings], axis=1)  # epochs: a setting
        frame.insert(frame.columns.get_loc("seed") + 1, "streams",
                     [json.loads(i).get("streams", 1) for i in frame["identity"]])  # streams.VERSION of the row
        for column in ("last_batch_loss", "last_epoch_loss"):
            frame[column] = frame[column].astype(float)
        frame["diverged_at"] = frame["diverged_at"].astype("Int64")
        return frame

    def results(self, keys: Sequence[str]) -> list[JobResult]:
        """The stored results of ``keys``, in that order, as the engine returned them (less
        weights: losses, accuracies, divergence, layer statistics), each job under its
        scheme's canonical name (a row's ``name`` is in ``frame``). Rows edited by hand are
        refused."""
        import torch

        from initbench.jobs import JobResult

        found = {}
        for row in self._unaltered(keys):
            losses = torch.frombuffer(bytearray(row["losses"]), dtype=torch.float32).view(row["epochs"], row["batches"])
            job = Job(row["scheme"], row["seed"], TrainSettings.from_plain(json.loads(row["settings"])))
            stats = row["layer_stats"]
            found[row["key"]] = JobResult(job, losses, json.loads(row["val_acc_per_epoch"]), row["test_acc"],
                                          row["diverged_at"], None, None, None if stats is None else json.loads(stats))
        return [found[k] for k in keys]

    def info(self) -> dict[str, str]:
        return self._sql(lambda: dict(self.db.execute("SELECT name, value FROM info")))

    def record_current(self, scheme_code: Mapping[str, str]) -> None:
        """Record each scheme's canonical name (``scheme_code``: as given -> canonical) as this
        sweep resolved it: the version of its rows a report shows (``versions``); the schemes
        of earlier sweeps into the store keep theirs."""
        def record() -> None:
            with self.db:
                self.db.execute("INSERT OR REPLACE INTO info VALUES ('current', ?)",
                                (json.dumps(self.current() | dict(scheme_code), sort_keys=True),))

        self._sql(record)

    def current(self) -> dict[str, str]:
        """Each scheme's canonical name as the last sweep recorded it (``record_current``)."""
        return json.loads(self.info().get("current", "{}"))

    def versions(self, all_versions: bool = False) -> tuple[pd.DataFrame, list[Version]]:
        """The rows a report shows: each scheme's current version (its code as the last sweep
        recorded it, this initbench's random streams; ``current_rows``) and the other versions
        the store keeps, or with ``all_versions`` every row, each version of a scheme named
        apart: ``half (code 1a2b3c4d)``, ``half (code 9f8e7d6c, earlier)`` (``all_versions_of``)."""
        frame = self.frame()
        if not all_versions:
            return current_rows(frame, self.current())
        tagged = all_versions_of(frame, self.current())
        return tagged.assign(name=[f"{name} ({tag})" if tag else name
                                   for name, tag in zip(tagged["name"], tagged.pop("version"))]), []

    def weights_row(self, file: str) -> dict[str, Any] | None:
        """The row that names the weights file ``file`` (relative to the folder), checked against
        its digest (an edited row raises), or None if no row names it."""
        (key,) = self._sql(lambda: self.db.execute("SELECT key FROM jobs WHERE weights_file = ?", (file,)).fetchone()
                           or (None,))
        return None if key is None else self._unaltered([key])[0]

    def _sql(self, work: Callable[[], T]) -> T:
        """``work``'s answer; a SQLite error as what is the matter, in words."""
        try:
            return work()
        except sqlite3.Error as e:
            raise failure(self.path, e) from None

    def _checked(self, keys: Iterable[str] | None = None) -> Checked:
        """The rows (of ``keys``: all when None), each checked against its digest."""
        columns = [c for (_, c, *_) in self._sql(lambda: self.db.execute("PRAGMA table_info(jobs)").fetchall())]
        select = f"SELECT {', '.join(columns)} FROM jobs"
        wanted = None if keys is None else list(keys)
        parts = [None] if wanted is None else [wanted[i:i + 500] for i in range(0, len(wanted), 500)]  # SQLite's limit
        # A version-1 store (read as it is: writing migrates it) has no digests to match.
        digested = self.info()["version"] != "1"
        checked = Checked([], [])
        for part in parts:
            query = (select, ()) if part is None else (f"{select} WHERE key IN ({', '.join('?' * len(part))})", part)
            for values in self._sql(lambda: self.db.execute(*query).fetchall()):
                row = {c: None for c in COLUMNS} | dict(zip(columns, values))  # a version-1 store lacks three
                canonical = _canonical(row)
                if canonical is None or (digested and row["row_sha256"] != _key(canonical)):
                    checked.edited.append(str(row["key"]))
                    continue
                checked.rows.append(row)
        return checked

    def _unaltered(self, keys: Sequence[str] | None) -> list[dict[str, Any]]:
        """The rows (of ``keys``: all when None), refusing any edited by hand: such a row is
        never reported as a result. Rows of a version-1 store (without digests) are read."""
        checked = self._checked(keys)
        if checked.edited:
            first = checked.edited[0]
            raise InitbenchError(
                f"The store {self.path} holds {_rows(len(checked.edited))} whose values do not match the digest "
                f"recorded with them, or are not values initbench writes (edited by hand, or written by another "
                f"program): {_named(checked.edited)} (the first 16 characters of their keys). They are not reported "
                "as results. Run the sweep or compare that trained them again: it trains them anew and replaces "
                f"their rows; or delete them, e.g. sqlite3 {self.path} \"DELETE FROM jobs WHERE key LIKE "
                f"'{first[:16]}%'\".")
        return checked.rows


@dataclass(frozen=True)
class Version:
    """One version of a scheme's rows in a store: its name, its code where the name has
    several (``scheme``: the canonical name, a user's ``function@<SHA-256 of its code>``; ""
    where the name has one code, or one per seed as a transfer run's pretrained starts), and
    the random streams' design (``streams.VERSION``), so that rows of one version never mix
    with another's in a table."""

    name: str  # as tables call the scheme
    scheme: str
    streams: int
    rows: int = 0
    chunk: int = 0  # the store's latest transaction that wrote one of its rows
    trained: str = ""  # when that was (ISO 8601)

    @property
    def code(self) -> str:
        """Its code as messages name it: the first 8 digits of its SHA-256 (a user's scheme, a
        file's by its content), else its canonical name."""
        digest = self.scheme.partition("@")[2] or self.scheme.partition(":")[2]
        return digest[:8] if re.fullmatch(r"[0-9a-f]{64}(:.*)?", digest) else self.scheme

    def tag(self, others: Sequence[Version]) -> str:
        """What tells it from ``others`` (the other versions of its name), in a few words."""
        parts = ([f"code {self.code}"] if any(o.scheme != self.scheme for o in others) else []) + (
            [f"streams {self.streams}"] if any(o.streams != self.streams for o in others) else [])
        return ", ".join(parts)


def described(older: Sequence[Version], shown_streams: int) -> str:
    """Versions a table leaves out, in words: each scheme's other code by its digest, and the
    schemes of other random streams together, with how many rows and when trained."""
    def when(versions: Sequence[Version]) -> str:
        trained = max(v.trained for v in versions)[:16].replace("T", " ")
        return f"{_rows(sum(v.rows for v in versions))}, trained {trained}"

    parts = [f"{v.name}'s other code {v.code} ({when([v])})" for v in older if v.streams == shown_streams]
    for version in sorted({v.streams for v in older} - {shown_streams}):
        same = [v for v in older if v.streams == version]
        parts.append(f"{', '.join(dict.fromkeys(v.name for v in same))} under random streams version {version} "
                     f"({when(same)}"
                     + ("; each scheme then drew its own initial weights and dropout masks" if version == 1 else "")
                     + ")")
    return "; ".join(parts)


def _versions(frame: pd.DataFrame, current: Mapping[str, str]) -> tuple[list[str], dict[str, list[Version]]]:
    """Each row's version, and each name's versions, the current one first. The current
    version: of the newest random streams the store holds (one table, one streams version),
    the code ``current`` names (as the last sweep resolved it), else the code trained last.
    A name has several codes where it is a user's scheme (its canonical name keys its code)
    or where one job (seed and settings) was trained under two canonical names (a file
    scheme's file changed); else its rows are one version, whatever their canonical names
    (a transfer run's pretrained starts: one file per seed)."""
    jobs = [json.dumps({k: v for k, v in json.loads(i).items() if k not in ("scheme", "streams")}, sort_keys=True)
            for i in frame["identity"]]
    twice = frame.assign(job=jobs).groupby(["name", "job", "streams"])["scheme"].nunique()
    coded = set(twice[twice > 1].index.get_level_values("name")) | {
        name for name, scheme in zip(frame["name"], frame["scheme"]) if "@" in scheme}
    keys = [f"{scheme if name in coded else ''}" for name, scheme in zip(frame["name"], frame["scheme"])]
    found: dict[str, list[Version]] = {}
    for (name, code, version), rows in frame.assign(code=keys).groupby(["name", "code", "streams"], sort=False):
        latest = rows.loc[rows["chunk"].idxmax()]
        found.setdefault(name, []).append(Version(name, code, int(version), len(rows), int(latest["chunk"]),
                                                  str(latest["finished"])))
    newest = int(frame["streams"].max()) if len(frame) else streams.VERSION

    def rank(v: Version) -> tuple[bool, bool, int]:
        return v.streams == newest, current.get(v.name) == v.scheme, v.chunk

    return keys, {name: sorted(versions, key=rank, reverse=True) for name, versions in found.items()}


def current_rows(frame: pd.DataFrame, current: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, list[Version]]:
    """The rows of the current version (see ``_versions``) and the other versions the store
    keeps (a user scheme's other code, rows of other random streams): what a report shows by
    default, and what its note names. A scheme with rows of older streams only is left out
    and named: a table never mixes two streams' rows."""
    keys, by_name = _versions(frame, current or {})
    newest = max((v[0].streams for v in by_name.values()), default=streams.VERSION)
    shown = {(v[0].name, v[0].scheme, v[0].streams) for v in by_name.values() if v[0].streams == newest}
    keep = [(n, k, v) in shown for n, k, v in zip(frame["name"], keys, frame["streams"])]
    older = [v for versions in by_name.values() for v in versions if (v.name, v.scheme, v.streams) not in shown]
    return frame.loc[keep].reset_index(drop=True), older  # .loc: an empty list selects no row, not no column


def all_versions_of(frame: pd.DataFrame, current: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``frame`` (store rows) with what tells each version of a scheme that has several from
    the others (``version``: "code 1a2b3c4d", "streams 1, earlier"; "" for a scheme of one
    version)."""
    keys, by_name = _versions(frame, current or {})
    tags = {}
    for versions in by_name.values():
        for i, v in enumerate(versions):
            others = versions[:i] + versions[i + 1:]
            tags[v.name, v.scheme, v.streams] = f"{v.tag(others)}{', earlier' if i else ''}" if others else ""
    return frame.assign(version=[tags[key] for key in zip(frame["name"], keys, frame["streams"])])


def _real(value: float) -> float | None:
    return value if math.isfinite(value) else None


def exists(folder: Path) -> bool:
    return (folder / FILE).is_file()


def kind(folder: Path) -> str | None:
    """"run" or "sweep" for a folder with a store; None without one. A compare run's folder
    (it has run.json) is a run even when its store cannot be read (locked, damaged, not
    initbench's): its report reads the run's CSVs, not the store."""
    if not exists(folder):
        return None
    try:
        with open_store(folder, write=False) as st:
            return st.info().get("kind")
    except InitbenchError:
        if (folder / "run.json").is_file():
            return "run"
        raise


@dataclass(frozen=True)
class FileCheck:
    """What could be checked of a weights file's origin, in words, and why it is not the
    file that was trained, when it is not."""

    checked: str
    problem: str | None = None


def check_weights_file(path: Path, sha256: str) -> FileCheck:
    """A weights file (of SHA-256 ``sha256``) against the store of the folder it is in
    (FOLDER/weights/NAME): the SHA-256 recorded when it was written. A file's own tensors
    digest proves it whole, not that it is what was trained: anyone can recompute it."""
    own = "the file's own digest only"
    inside = path.parent.name == "weights" or (path.parent.name == "init" and path.parent.parent.name == "weights")
    folder = path.parent.parent if path.parent.name == "weights" else path.parent.parent.parent
    if not inside or not exists(folder):
        return FileCheck(f"{own}: no run or sweep store beside it")
    if path.parent.name == "init":
        return FileCheck(f"{own}: the store records final weights only")
    with open_store(folder, write=False) as st:
        row = st.weights_row(f"weights/{path.name}")
    if row is None:
        return FileCheck(f"{own}: the store beside it names no such file")
    if row["weights_sha256"] is None:
        return FileCheck(f"{own}: its store was written before stores recorded files' digests")
    if row["weights_sha256"] != sha256:
        return FileCheck("NOT the file the store recorded",
                         f"its SHA-256 is not the one the store in {folder} recorded when it was trained (the file "
                         "was changed or replaced since, even if its own tensors digest was made to fit)")
    return FileCheck("matches the store's record (its SHA-256 when trained)")


def check_folder(folder: Path, kind: str) -> None:
    """Refuse, before any work, a folder that cannot hold this store: a file, a folder that
    holds files but no store (another run's, or anything else), or one whose store is not
    initbench's, of another version or of another kind (read, never written)."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"The output folder {folder} is a file. Choose another with --out.")
    if folder.is_dir() and not exists(folder) and any(folder.iterdir()):
        raise UsageError(f"The output folder {folder} holds files but no {kind} store ({FILE}): it is not a "
                         f"folder initbench {kind} wrote. Choose another with --out.")
    if exists(folder):
        with open_store(folder, kind, write=False):
            pass


@contextmanager
def open_store(folder: Path, kind: str | None = None, write: bool = True) -> Iterator[Store]:
    """The store in ``folder`` (made if absent, when writing), of ``kind`` ("run" or
    "sweep"; None when reading: either). Writing takes an exclusive lock on the folder for
    as long as the store is open (a second writer is refused with a clear error) and keeps
    the file in WAL mode meanwhile; on closing, the file goes back to a single file
    (rollback journal), which a reader opens read-only without leaving files behind."""
    path = folder / FILE
    lock = _lock(folder) if write else None
    if not write and not path.is_file():
        raise UsageError(f"{folder} has no {FILE}: it was not written by initbench sweep or compare.")
    try:
        db = _connect(path, kind, write)
    except BaseException:
        if lock is not None:
            os.close(lock)
        raise
    try:
        yield Store(path, db)
    finally:
        if write:
            try:
                db.execute("PRAGMA journal_mode=DELETE")  # needs no reader in the file: else it stays WAL
            except sqlite3.OperationalError:
                pass
        db.close()
        if lock is not None:
            os.close(lock)  # releases the flock


def _lock(folder: Path) -> int:
    lock = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return lock
    except OSError as e:
        os.close(lock)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise UsageError(f"Another initbench process is writing to {folder} (its store is locked). Wait for it "
                             "to finish, or stop it first (a stopped sweep resumes where it stopped); two writers "
                             "would train the same jobs twice.") from None
        raise InitbenchError(f"Cannot lock {folder} ({e.strerror}): its file system does not support the lock that "
                             "keeps two processes from writing one store. Use a folder on a local disk.") from None


def _connect(path: Path, kind: str | None, write: bool) -> sqlite3.Connection:
    """An open, checked connection: WAL and full syncs when writing, read-only otherwise.
    The file's marker, version and kind are checked before anything is written: a SQLite
    file that initbench did not make is left as it was."""
    try:
        db = sqlite3.connect(path if write else path.resolve().as_uri() + "?mode=ro", uri=not write,
                             isolation_level=None)
    except sqlite3.Error as e:
        raise failure(path, e) from None
    try:
        found = _marker(db, path, kind, write)
        if write:
            if db.execute("PRAGMA journal_mode=WAL").fetchone() != ("wal",):
                raise InitbenchError(f"The store {path} cannot use SQLite's WAL mode on this file system, which "
                                     "keeps it whole if the process is killed. Use a folder on a local disk.")
            db.execute("PRAGMA synchronous=FULL")
            if found is None:  # a new store: its tables and its marker in one transaction, or none of them
                db.executescript(f"BEGIN; {SCHEMA} INSERT INTO info VALUES ('version', '{VERSION}'), "
                                 f"('kind', '{kind or 'run'}'); COMMIT;")
            elif found["version"] != str(VERSION):
                _migrate(db, path)
        db.isolation_level = ""  # `with db:` then opens and commits one transaction
    except sqlite3.Error as e:
        db.close()
        raise failure(path, e) from None
    except BaseException:
        db.close()
        raise
    return db


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """A version-1 store brought to this version in one transaction: the three columns it
    lacks added, and each row's digests computed from what it holds now (its weights file as
    it is now), so that an earlier sweep resumes where it stopped instead of training every
    job again. A row that is not what initbench writes gets no digest: it counts as edited."""
    have = {c for (_, c, *_) in db.execute("PRAGMA table_info(jobs)")}
    db.execute("BEGIN IMMEDIATE")
    try:
        for column, kind in COLUMNS.items():
            if column not in have:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        for values in db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs").fetchall():
            row = dict(zip(COLUMNS, values))
            file = None if row["weights_file"] is None else path.parent / row["weights_file"]
            if file is not None and file.is_file():
                row["weights_bytes"], row["weights_sha256"] = _file_record(file)
            canonical = _canonical(row)
            if canonical is not None:
                db.execute("UPDATE jobs SET weights_bytes = ?, weights_sha256 = ?, row_sha256 = ? WHERE key = ?",
                           (row["weights_bytes"], row["weights_sha256"], _key(canonical), row["key"]))
        db.execute("UPDATE info SET value = ? WHERE name = 'version'", (str(VERSION),))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _marker(db: sqlite3.Connection, path: Path, kind: str | None, write: bool) -> dict[str, str] | None:
    """The store's info, checked (its version one this initbench reads, its kind ``kind``),
    or None for a file without tables (a new store, when writing). Only reads: a SQLite file
    without initbench's marker (an info table with its version and kind, and a jobs table)
    is refused."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables and write:
        return None
    found: dict[str, str] = {}
    if "info" in tables:
        try:
            found = dict(db.execute("SELECT name, value FROM info"))
        except sqlite3.OperationalError:  # an info table of other columns
            pass
    if not {"version", "kind"} <= found.keys() or "jobs" not in tables:
        raise UsageError(f"{path} is not a store initbench made: it is a SQLite file without initbench's marker (an "
                         "info table naming its version and kind), another program's perhaps. initbench neither "
                         "writes into it nor reads it as results, and left it as it was. Move it elsewhere, or use "
                         "another folder.")
    if found["version"] not in READS:
        raise InitbenchError(f"{path} is a store of version {found['version']}; this initbench reads versions "
                             f"{' and '.join(READS)}. Use the initbench version that wrote it.")
    if kind is not None and found["kind"] != kind:
        raise UsageError(f"{path.parent} holds a {found['kind']} folder's store, not a {kind}'s. Give another "
                         "--out (or `initbench report` to read it).")
    return found


def failure(path: Path, e: sqlite3.Error) -> InitbenchError:
    """What is the matter with a store SQLite refused, in words, and what to do. Only real
    damage is worth moving the file away: every job in it would be trained again."""
    code = getattr(e, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF  # extended codes keep the primary one in their low byte
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return InitbenchError(f"The store {path} is locked by another process (one that holds it open in a "
                              "transaction: sqlite3, a database browser, a backup tool). Nothing was changed. Wait "
                              "until it is done, or close it, and run the same command again.")
    if primary == sqlite3.SQLITE_READONLY:
        return InitbenchError(f"The store {path} is read-only for this process: the file or its folder lacks write "
                              "permission, or its file system is mounted read-only. Nothing was changed. Give write "
                              "permission (e.g. chmod u+w on the file and its folder), or write to another --out; "
                              "`initbench report` reads it as it is.")
    if primary == sqlite3.SQLITE_FULL:
        return InitbenchError(f"The disk holding the store {path} is full (or a file-size limit was reached): "
                              "nothing more was written to it. Free some space and run the same command again.")
    if primary == sqlite3.SQLITE_CANTOPEN:
        return InitbenchError(f"Cannot open the store {path} ({e}): its folder was removed, or you may not read and "
                              "write it. Check the folder and its permissions, or use another one.")
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        rows = _countable(path)
        return InitbenchError(f"The store {path} is damaged ({e}). Move it away and run the same command again: "
                              + ("its jobs" if rows is None else f"the {_jobs(rows)} it held") + " will be trained "
                              "anew.")
    return InitbenchError(f"Cannot use the store {path}: {e}.")


def _countable(path: Path) -> int | None:
    """The rows a damaged store still lets one count, if any."""
    try:
        with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    except sqlite3.Error:
        return None
