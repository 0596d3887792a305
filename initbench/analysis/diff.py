"""``initbench diff A B``: two run or sweep folders compared job by job, B against A
(before and after a code change, or with a setting changed), read from their stores.

Jobs pair by what they are: the store's identity (scheme, seed, settings, data files),
less the settings in which B differs from A as a whole, those that hold one value in each
folder and a different one in each (``lr 0.001 -> 0.5``): so a run pairs with its re-run
after a code change, whose jobs have the same keys, and with its re-run under a changed
setting. The random streams' version counts as such a setting (``random_streams 1 -> 2``).
A user's scheme whose code differs between the folders pairs by its name, and the change
of its code is judged as any other (the rows name both digests). Settings that vary
within a folder (a sweep's grid) name its cells.

Per scheme (and cell): the change B - A in validation accuracy over the paired seeds, with
the paired 95% t-interval over seeds (``stats.paired``: within a seed both see the same
batches) and a verdict: "unchanged" when every paired accuracy is the same to the bit;
otherwise "better" or "worse" when the interval excludes 0, "indistinguishable" when it
holds it; with one seed, "better" or "worse" by the point value (no interval). A scheme
in one folder only is "only in A" or "only in B".

Nothing here imports torch: a diff reads two stores and takes a second.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench import data, paths, tasks
from initbench.analysis import stats
from initbench.analysis.expect import ONE_SEED
from initbench.errors import UsageError
from initbench.settings import ADDED, shown
from initbench.storage import store
from initbench.words import plural

if TYPE_CHECKING:
    import pandas as pd

FAIL_ON = ("worse", "change")
FAIL_ON_HELP = {"worse": "any scheme (in any cell) is worse in B: its interval lies below 0 (with one seed: lower)",
                "change": "anything differs at all: any paired validation accuracy not the same to the bit, or a job "
                          "in one folder only"}
DATA_FILES = "data_files_sha256"  # of a job's identity: changed with the dataset, or its files


# Of a job's identity: streams.VERSION (1 where a row names none), paired across like a setting.
STREAMS = "random_streams"


@dataclass(frozen=True)
class _Job:
    scheme: str  # what pairs: its canonical name, or the name as given of a user's edited scheme
    code: str  # the canonical name: a user's scheme's code by its SHA-256
    name: str  # as the folder's tables call it
    seed: int
    settings: dict[str, str]  # each as canonical JSON (None: not set), the data files' digests among them
    val_acc: float


def _read(folder: Path, side: str) -> list[_Job]:
    """A folder's jobs, from its store; a folder that is not a run's or a sweep's is refused."""
    why = paths.problem(folder, "folder")
    if why is not None:
        raise UsageError(f"{side} ({folder}) {why}. Give two folders written by initbench compare or initbench sweep.")
    if not store.exists(folder):
        raise UsageError(f"{side} ({folder}) is neither a run folder nor a sweep folder: it has no {store.FILE}. "
                         "Give two folders written by initbench compare or initbench sweep (a run folder, not its "
                         "weights/).")
    with store.open_store(folder, write=False) as st:
        frame = st.versions()[0]  # each scheme's current version, as a report shows it
    if frame.empty:
        raise UsageError(f"The store of {side} ({folder}) holds no finished job yet. Run its sweep first (it resumes).")
    jobs = []
    for row in frame.itertuples():
        identity = json.loads(row.identity)
        settings = ADDED | identity["settings"] | {DATA_FILES: identity[DATA_FILES],
                                                   STREAMS: identity.get("streams", 1)}
        jobs.append(_Job(identity["scheme"], identity["scheme"], row.name, identity["seed"],
                         {k: json.dumps(v, sort_keys=True) for k, v in settings.items()}, row.val_acc))
    return jobs


def _paired_by(jobs: list[_Job], shared: set[str]) -> list[_Job]:
    """``jobs`` paired by their code (an alias or a moved file pairs with itself), but by their
    name where a name is of several codes in its folder (a transfer run's pretrained starts,
    one file per seed), or a user's scheme (``function@<SHA-256 of its code>``) whose code the
    other folder does not hold, so that its edited code is a change judged like any other."""
    codes: dict[str, set[str]] = {}
    for job in jobs:
        codes.setdefault(job.name, set()).add(job.code)
    return [dataclasses.replace(job, scheme=job.name)
            if len(codes[job.name]) > 1 or ("@" in job.code and job.code not in shared) else job for job in jobs]


def _values(jobs: Iterable[_Job], key: str) -> list[str | None]:
    return list(dict.fromkeys(job.settings.get(key) for job in jobs))


def _shown(key: str, value: str | None) -> str:
    """A setting's value (canonical JSON) as tables show it; data files by their digests' digest."""
    if key == DATA_FILES and value is not None:
        return "files " + hashlib.sha256(value.encode()).hexdigest()[:8]
    return "unset" if value is None else shown(key, json.loads(value))


def _changes(a: list[_Job], b: list[_Job]) -> dict[str, tuple[str | None, str | None]]:
    """The settings in which B differs from A as a whole: one value in each folder, not the same."""
    keys = dict.fromkeys(k for job in a + b for k in job.settings)
    changed = {}
    for key in keys:
        in_a, in_b = _values(a, key), _values(b, key)
        if len(in_a) == 1 and len(in_b) == 1 and in_a != in_b:
            changed[key] = (in_a[0], in_b[0])
    return changed


def _paired_key(job: _Job, changed: Iterable[str]) -> tuple[Any, ...]:
    return job.scheme, job.seed, tuple(sorted((k, v) for k, v in job.settings.items() if k not in changed))


@dataclass(eq=False)
class Pairing:
    """B against A, job by job (``views.finished.Diff`` shows it): ``rows`` per cell and
    scheme (the change in the task's validation metric, fractions, with its interval and
    verdict), ``task``, ``changed`` (the settings B changed, as tables show them), ``varied``
    (the settings that name cells); ``table``: the rows in percent; ``failing(fail_on)``:
    the rows that fail ``--fail-on``."""

    a: Path
    b: Path
    rows: list[dict[str, Any]]
    task: tasks.Task  # what the jobs learned: its validation metric is what is compared
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    varied: list[str] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        import pandas as pd

        frame = pd.DataFrame(self.rows)
        scaled = [c for c in frame.columns if "acc" in c or c.startswith("diff_")]
        return frame.assign(**{c: frame[c] * 100 for c in scaled}).rename(
            columns={c: c.removesuffix("_mean") + "_pct" for c in scaled})

    def failing(self, fail_on: str | None) -> list[dict[str, Any]]:
        """The rows that fail ``fail_on`` (one of FAIL_ON; None: none fail)."""
        if fail_on == "worse":
            return [r for r in self.rows if r["verdict"] == "worse"]
        if fail_on == "change":
            return [r for r in self.rows if r["verdict"] != "unchanged" or r["only_in_a"] or r["only_in_b"]]
        return []


def diff(a: Path, b: Path) -> Pairing:
    """B's jobs against A's, paired (see the module's docstring); refused in words when the
    folders are not run or sweep folders, or share no job."""
    a, b = Path(a), Path(b)
    jobs_a, jobs_b = _read(a, "A"), _read(b, "B")
    shared = {job.code for job in jobs_a} & {job.code for job in jobs_b}
    jobs_a, jobs_b = _paired_by(jobs_a, shared), _paired_by(jobs_b, shared)
    changed = _changes(jobs_a, jobs_b)
    by_key_b = {_paired_key(job, changed): job for job in jobs_b}
    if not any(_paired_key(job, changed) in by_key_b for job in jobs_a):
        raise UsageError(_nothing_shared(a, b, jobs_a, jobs_b, changed))
    both = jobs_a + jobs_b
    varied = [k for k in dict.fromkeys(k for job in both for k in job.settings)
              if k not in changed and len(_values(both, k)) > 1]
    groups: dict[tuple[Any, ...], dict[str, dict[int, _Job]]] = {}
    for side, jobs in (("a", jobs_a), ("b", jobs_b)):
        for job in jobs:
            cell = tuple(job.settings.get(k) for k in varied)
            groups.setdefault((cell, job.scheme), {"a": {}, "b": {}})[side][job.seed] = job
    order = {cell: i for i, cell in enumerate(dict.fromkeys(cell for cell, _ in groups))}  # A's cells first, then B's
    task = tasks.one((data.task(json.loads(job.settings["dataset"])) for job in both), f"A ({a}) and B ({b}) hold",
                     "There is nothing to pair: compare folders of one task.")
    rows = [_row(dict(zip(varied, (_shown(k, v) for k, v in zip(varied, cell)))), found["a"], found["b"], task)
            for (cell, _), found in sorted(groups.items(), key=lambda item: order[item[0][0]])]
    return Pairing(a, b, rows, task, {k: (_shown(k, va), _shown(k, vb)) for k, (va, vb) in changed.items()},
                   varied)


def _row(cell: dict[str, str], a: dict[int, _Job], b: dict[int, _Job], task: tasks.Task) -> dict[str, Any]:
    """B against A for one scheme (in one cell): the task's validation metric (a job's
    val_acc: accuracy, or a text's loss) paired by seed; "better" is higher, or a lower loss."""
    seeds = sorted(set(a) & set(b))
    differences = [b[s].val_acc - a[s].val_acc for s in seeds]
    d = stats.paired(differences)
    up, down = ("better", "worse") if task.validation.higher else ("worse", "better")
    if not seeds:
        verdict = "only in A" if a else "only in B"
    elif all(x == 0 for x in differences):
        verdict = "unchanged"
    elif len(seeds) == 1:
        verdict = up if d.mean > 0 else down
    else:
        verdict = up if d.low > 0 else down if d.high < 0 else "indistinguishable"
    key = task.validation.key
    name = next(iter((b or a).values())).name
    codes = [{job.code for job in side.values()} for side in (a, b)]
    code = (f"{_code(codes[0])} -> {_code(codes[1])}" if a and b and codes[0] != codes[1] else "")
    return {**cell, "scheme": name, "seeds": len(seeds), "code_changed": code,
            f"a_{key}_mean": _mean([a[s].val_acc for s in seeds] or [j.val_acc for j in a.values()]),
            f"b_{key}_mean": _mean([b[s].val_acc for s in seeds] or [j.val_acc for j in b.values()]),
            "diff_mean": d.mean, "diff_low": d.low, "diff_high": d.high, "verdict": verdict,
            "only_in_a": sorted(set(a) - set(b)), "only_in_b": sorted(set(b) - set(a))}


def _code(canonical: set[str]) -> str:
    """A user's scheme's code as a diff names it: its SHA-256's first 8 digits (as ``store.Version``)."""
    return ", ".join(sorted(store.Version("", c, 0).code for c in canonical))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def name(row: dict[str, Any], varied: list[str]) -> str:
    """A row's scheme, and its cell where settings vary: "rule at lr=0.1"."""
    return row["scheme"] + ("" if not varied else " at " + ", ".join(f"{k}={row[k]}" for k in varied))


def line(row: dict[str, Any], varied: list[str], metric: tasks.Metric = tasks.CLASSIFICATION.validation) -> str:
    """A row in words: "rule at lr=0.1: -3.20 points [-4.00, -2.40] over 3 seeds (worse)"
    (of a loss: "+0.012 nats ...")."""
    where = name(row, varied)
    if not row["seeds"]:
        return f"{where}: only in {'A' if row['only_in_a'] else 'B'} ({_seeds(row['only_in_a'] or row['only_in_b'])})"
    extra = "".join(f"; {_seeds(row[key])} only in {side}" for key, side in (("only_in_a", "A"), ("only_in_b", "B"))
                    if row[key])
    if row["verdict"] == "unchanged":
        return f"{where}: unchanged over {plural(row['seeds'], 'seed')}{extra}"
    unit = "points" if metric.unit == "%" else metric.unit
    if row["seeds"] == 1:
        return f"{where}: {metric.difference(row['diff_mean'])} {unit} ({ONE_SEED}; {row['verdict']}{extra})"
    return (f"{where}: {metric.difference(row['diff_mean'])} {unit} [{metric.difference(row['diff_low'])}, "
            f"{metric.difference(row['diff_high'])}] over {row['seeds']} seeds ({row['verdict']}{extra})")


def _seeds(seeds: list[int]) -> str:
    return f"seed{'s' * (len(seeds) != 1)} {', '.join(map(str, seeds))}"


def _held(jobs: list[_Job]) -> str:
    names = dict.fromkeys(job.name for job in jobs)
    return f"{', '.join(names)} ({_seeds(sorted({job.seed for job in jobs}))})"


def _nothing_shared(a: Path, b: Path, jobs_a: list[_Job], jobs_b: list[_Job],
                    changed: dict[str, tuple[str | None, str | None]]) -> str:
    keys = dict.fromkeys(k for job in jobs_a + jobs_b for k in job.settings)
    differ = [f"{k} (A: {', '.join(_shown(k, v) for v in _values(jobs_a, k))}; B: "
              f"{', '.join(_shown(k, v) for v in _values(jobs_b, k))})"
              for k in keys if k not in changed and set(_values(jobs_a, k)) != set(_values(jobs_b, k))]
    return (f"A ({a}) and B ({b}) share no job: A holds {_held(jobs_a)}, B holds {_held(jobs_b)}"
            + (f"; their settings differ in {'; '.join(differ)}" if differ else "")
            + ". diff pairs the same scheme and seed under the same settings (a setting may differ, when each "
            "folder holds one value of it). Give two folders of the same schemes, seeds and grid, e.g. a run and "
            "its re-run after a change.")
