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
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import math
import os
import socket
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench import data, schemes
from initbench.errors import InitbenchError, UsageError
from initbench.jobs import Job, Keep, TrainSettings

if TYPE_CHECKING:
    import pandas as pd

    from initbench.jobs import JobResult

FILE = "store.sqlite"
VERSION = 1  # of the schema; a store of another version is refused, not misread
SCHEMA = """
CREATE TABLE IF NOT EXISTS info (       -- what the store is: 'version', 'kind' (run or sweep)
    name TEXT PRIMARY KEY,
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
    finished TEXT NOT NULL              -- ISO 8601 time of the commit
);
"""


def identity(job: Job) -> dict[str, Any]:
    """What decides a job's numbers, canonically: scheme names as the registry keys them
    (aliases and parameter spellings agree; a file by its SHA-256), and momentum only
    where the optimizer uses it, head_init only for a file scheme, lesson_eval only with dropout."""
    scheme, s = schemes.get(job.scheme), job.settings
    settings = plain_settings(s)
    settings["lesson_eval"] = s.eval_dropout  # without dropout, scoring is the same either way
    if s.optimizer != "sgd":
        del settings["momentum"]
    if scheme.takes_file:  # the output layer pretrained cannot load
        settings["head_init"] = schemes.get(s.head_init).name
    else:
        del settings["head_init"]
    return {"scheme": scheme.name, "seed": job.seed, "settings": settings, "data_files_sha256": data.SHA256}


def _encoded(ident: dict[str, Any]) -> str:
    """An identity as canonical JSON (sorted keys, no spaces): what its key hashes."""
    return json.dumps(ident, sort_keys=True, separators=(",", ":"), allow_nan=False)


def key(job: Job) -> str:
    """The SHA-256 of the job's identity as canonical JSON."""
    return _key(_encoded(identity(job)))


def _key(encoded: str) -> str:
    return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass(frozen=True)
class Machine:
    """Where results were trained: recorded on every row."""

    engine: str
    device: str
    device_name: str
    initbench: str
    torch: str
    host: str = socket.gethostname()


class Store:
    """An open store. Use ``open_store``; ``add`` needs it opened for writing."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self.db = connection

    def done(self, keys: Iterable[str] | None = None, keep: Keep = Keep()) -> set[str]:
        """The keys of finished jobs (of ``keys``, when given) whose rows hold what ``keep``
        asks for (layer statistics, a weights file): a row without them is trained again."""
        wanted = [f"{column} IS NOT NULL" for column, asked in (("layer_stats", keep.layer_stats),
                                                                 ("weights_file", keep.weights)) if asked]
        found = {k for (k,) in self.db.execute("SELECT key FROM jobs" + "".join(f" AND {w}" for w in wanted)
                                               .replace(" AND", " WHERE", 1))}
        return found if keys is None else found & set(keys)

    def check_trained_by(self, engine: str, device: str) -> None:
        """Refuse to add to a store whose jobs another engine or kind of device trained: their
        numbers round differently, and a cell's paired comparisons would mix them."""
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO info VALUES ('engine', ?), ('device', ?)", (engine, device))
        found = self.info()
        if (found["engine"], found["device"]) != (engine, device):
            raise UsageError(f"The store in {self.path.parent} holds jobs trained by the {found['engine']} engine on "
                             f"{found['device']}; this sweep would train with the {engine} engine on {device}, and "
                             "their numbers would mix in one comparison. Use the same engine and device, or "
                             "another --out.")

    def add(self, results: Sequence[JobResult], names: Mapping[Job, str], seconds: float, machine: Machine,
            weights_files: Mapping[Job, str] | None = None) -> None:
        """One chunk's results, in one transaction: all of its rows or none."""
        (chunk,) = self.db.execute("SELECT coalesce(max(chunk), 0) + 1 FROM jobs").fetchone()
        finished = datetime.now().astimezone().isoformat(timespec="seconds")
        rows = []
        for r in results:
            ident = identity(r.job)
            encoded = _encoded(ident)
            losses = r.losses.float().contiguous()
            last = losses[-1]
            rows.append((
                _key(encoded), encoded, names[r.job],
                ident["scheme"], r.job.seed, json.dumps(plain_settings(r.job.settings)), r.val_acc[-1], r.test_acc,
                json.dumps(r.val_acc), _real(float(last[-1])), _real(float(last.mean())), r.diverged_at,
                losses.shape[0], losses.shape[1], losses.numpy().astype("<f4").tobytes(),
                None if r.layer_stats is None else json.dumps(r.layer_stats),
                (weights_files or {}).get(r.job), chunk, len(results), seconds / len(results), machine.engine,
                machine.device, machine.device_name, machine.host, machine.initbench, machine.torch, finished))
        try:
            with self.db:  # BEGIN ... COMMIT, or ROLLBACK on any error
                self.db.executemany(f"INSERT OR REPLACE INTO jobs VALUES ({', '.join('?' * len(rows[0]))})", rows)
        except sqlite3.OperationalError as e:  # a full disk, a quota, a folder removed under the sweep
            raise InitbenchError(f"Could not write to the store {self.path}: {e}. Its earlier chunks are kept: free "
                                 "some space and run the same command again, it resumes.") from None

    def frame(self, keys: Iterable[str] | None = None) -> pd.DataFrame:
        """The rows (of ``keys``, in their order, when given) as a DataFrame, settings spread
        into columns of their own, NULL losses as NaN, without the losses blob."""
        import pandas as pd

        columns = [c for (_, c, *_) in self.db.execute("PRAGMA table_info(jobs)") if c not in ("losses",)]
        rows = self.db.execute(f"SELECT {', '.join(columns)} FROM jobs").fetchall()
        frame = pd.DataFrame(rows, columns=columns)
        if keys is not None:
            frame = frame.set_index("key").loc[list(keys)].reset_index()
        settings = pd.DataFrame([json.loads(s) for s in frame["settings"]], index=frame.index)
        frame = pd.concat([frame.drop(columns=["settings", "epochs"]), settings], axis=1)  # epochs: a setting
        for column in ("last_batch_loss", "last_epoch_loss"):
            frame[column] = frame[column].astype(float)
        frame["diverged_at"] = frame["diverged_at"].astype("Int64")
        return frame

    def results(self, keys: Sequence[str]) -> list[JobResult]:
        """The stored results of ``keys``, in that order, as the engine returned them (less
        weights: losses, accuracies, divergence, layer statistics), each job under its
        scheme's canonical name (a row's ``name`` is in ``frame``)."""
        import torch

        from initbench.jobs import JobResult

        found = {}
        query = ("SELECT key, scheme, seed, settings, losses, epochs, batches, val_acc_per_epoch, test_acc, "
                 "diverged_at, layer_stats FROM jobs WHERE key IN ({})")
        for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters
            part = keys[start:start + 500]
            for k, scheme, seed, settings, blob, epochs, batches, val, test, diverged, stats in self.db.execute(
                    query.format(", ".join("?" * len(part))), part):
                losses = torch.frombuffer(bytearray(blob), dtype=torch.float32).view(epochs, batches)
                job = Job(scheme, seed, TrainSettings(**{k: tuple(v) if isinstance(v, list) else v
                                                       for k, v in json.loads(settings).items()}))
                found[k] = JobResult(job, losses, json.loads(val), test, diverged, None, None,
                                     None if stats is None else json.loads(stats))
        return [found[k] for k in keys]

    def info(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT name, value FROM info"))


def plain_settings(s: TrainSettings) -> dict[str, Any]:
    """The settings as JSON-ready values (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(s).items()}


def _real(value: float) -> float | None:
    return value if math.isfinite(value) else None


def exists(folder: Path) -> bool:
    return (folder / FILE).is_file()


def kind(folder: Path) -> str | None:
    """"run" or "sweep" for a folder with a store; None without one."""
    if not exists(folder):
        return None
    with open_store(folder, write=False) as st:
        return st.info().get("kind")


def check_folder(folder: Path, kind: str) -> None:
    """Refuse, before any work, a folder that cannot hold this store: a file, or a folder
    that holds files but no store (another run's, or anything else)."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"The output folder {folder} is a file. Choose another with --out.")
    if folder.is_dir() and not exists(folder) and any(folder.iterdir()):
        raise UsageError(f"The output folder {folder} holds files but no {kind} store ({FILE}): it is not a "
                         f"folder initbench {kind} wrote. Choose another with --out.")


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
    """An open, checked connection: WAL and full syncs when writing, read-only otherwise."""
    try:
        db = sqlite3.connect(path if write else path.resolve().as_uri() + "?mode=ro", uri=not write,
                             isolation_level=None)
    except sqlite3.Error as e:
        raise InitbenchError(f"Cannot open the store {path}: {e}.") from None
    try:
        if write:
            if db.execute("PRAGMA journal_mode=WAL").fetchone() != ("wal",):
                raise InitbenchError(f"The store {path} cannot use SQLite's WAL mode on this file system, which "
                                     "keeps it whole if the process is killed. Use a folder on a local disk.")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO info VALUES ('version', ?), ('kind', ?)", (str(VERSION), kind or "run"))
        db.isolation_level = ""  # `with db:` then opens and commits one transaction
        found = dict(db.execute("SELECT name, value FROM info"))
    except sqlite3.DatabaseError as e:  # not a database, or damaged
        db.close()
        raise InitbenchError(f"Cannot use the store {path}: {e}. If the file was damaged, move it away and run "
                             "again: its jobs will be trained anew.") from None
    except BaseException:
        db.close()
        raise
    if found.get("version") != str(VERSION) or (kind is not None and found.get("kind") != kind):
        db.close()
        if found.get("version") != str(VERSION):
            raise InitbenchError(f"{path} is a store of version {found.get('version')}; this initbench reads "
                                 f"version {VERSION}. Use the initbench version that wrote it.")
        raise UsageError(f"{path.parent} holds a {found.get('kind')} folder's store, not a {kind}'s. Give another "
                         "--out (or `initbench report` to read it).")
    return db
