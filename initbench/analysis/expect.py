"""Expectations: conditions on a run's validation accuracy that a CI pipeline gates on
(``--expect "rule > uniform"``, ``expect = [...]`` in a config file, ``expect=`` in Python).

A condition compares two schemes the run trains, or a scheme with an accuracy::

    rule > uniform          rule scores higher than uniform
    default >= 0.80         default scores at least 80% (also written 80%)
    kaiming_normal ~ lsuv   the two cannot be told apart

with the operators ``>``, ``>=``, ``<``, ``<=`` and ``~``. A scheme is named as the run
names it, or by any name the registry resolves to the same scheme (an alias, another
spelling of its parameters; a user's scheme by the file, module or name the run gives it:
conditions are checked before any user code runs). The metric is the validation accuracy
after the last epoch, as the run's table shows it. How a condition is judged (its line says
which):

- With two or more seeds, on the 95% t-interval over seeds (``stats.paired``) of the
  per-seed differences: between the two schemes (paired by seed: within a seed every
  scheme sees the same batches), or between the scheme's accuracy and the threshold (the
  t-interval of its mean). ``>`` and ``<`` ask for evidence: they hold only when the whole
  interval lies on their side. ``>=`` and ``<=`` hold unless there is evidence against
  them: they fail only when the whole interval lies on the other side. ``~`` holds when
  the interval contains 0 (the threshold).
- With one seed there is no interval: the point values are compared (``>=`` holds on a
  tie, ``>`` does not). ``~`` cannot be judged from one seed and is refused before any
  training, as is a condition naming a scheme the run does not train.
- In a sweep, each condition is judged in every grid cell, on its own.

Nothing here imports torch or pandas: conditions are checked before any work.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from initbench import initializers as scheme_registry, tasks
from initbench.analysis import stats
from initbench.errors import UsageError

OPERATORS = (">=", "<=", ">", "<", "~")  # two-character ones first: ">=" is not ">" and "="
_SPACED = re.compile(r"\s+(>=|<=|>|<|~)\s+")  # an operator between spaces: a name may hold one (pretrained:~/w.pt)
_BARE = re.compile(r"(>=|<=|>|<|~)")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?%?")
ONE_SEED = "1 seed: point values, no interval"


@dataclass(frozen=True)
class Condition:
    left: str  # a scheme
    op: str
    right: str  # a scheme, or the threshold as written
    threshold: float | None = None  # the right side as an accuracy (0..1), when it is one

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


def parse(text: str) -> Condition:
    """One condition, its syntax checked (the schemes are checked against a run by ``check``);
    a ValueError says what is wrong, for the caller to name where it was written."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError('must be a condition such as "rule > uniform" or "default >= 0.80"')
    parts = _SPACED.split(text.strip())
    if len(parts) == 1:
        parts = _BARE.split(text.strip())
    if len(parts) != 3 or not parts[0].strip() or not parts[2].strip():
        raise ValueError(f"must be SCHEME OP SCHEME or SCHEME OP ACCURACY with one operator of {', '.join(OPERATORS)}"
                         ' (~: cannot be told apart), e.g. "rule > uniform" or "default >= 0.80"')
    left, op, right = (p.strip() for p in parts)
    if _NUMBER.fullmatch(left):
        flipped = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "~": "~"}[op]
        raise ValueError(f"must name the scheme first: SCHEME OP ACCURACY, here \"{right} {flipped} {left}\"")
    if "=" in left[-1:] + right[:1] or right[:1] in "<>~":  # "==", "=>", "<>": no such operator
        raise ValueError(f"has an operator initbench does not know: the operators are {', '.join(OPERATORS)}")
    if not _NUMBER.fullmatch(right):
        return Condition(left, op, right)
    value = float(right.removesuffix("%")) / (100 if right.endswith("%") else 1)
    if not 0 <= value <= 1:
        hint = f": write {value / 100:g} or {right}%" if 0 < value <= 100 and not right.endswith("%") else ""
        raise ValueError(f"compares with {right}, but an accuracy is a fraction from 0 to 1 (or a percentage){hint}")
    return Condition(left, op, right, value)


def parse_all(value: Any) -> tuple[str, ...]:
    """The ``expect`` setting: one condition or a list of them, each as ``parse`` reads it,
    written back as ``LEFT OP RIGHT``. In a file, either ``expect = [...]`` at the top or an
    ``[expect]`` table with ``conditions = [...]`` (which may stand anywhere, even after a
    sweep's ``[grid]``)."""
    if isinstance(value, Mapping):
        if set(value) != {"conditions"}:
            raise ValueError('as a table holds one key, conditions: [expect] then conditions = ["rule > uniform", '
                             '"default >= 0.80"] (or expect = [...] at the top of the file)')
        value = value["conditions"]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError('must be a list of conditions, e.g. ["rule > uniform", "default >= 0.80"]')
    conditions: list[str] = []
    for text in value:
        try:
            conditions.append(str(parse(text)))
        except ValueError as e:  # which of the list it is
            raise ValueError(f"{text!r} {e}" if isinstance(text, str) else str(e)) from None
    if len(set(conditions)) != len(conditions):
        raise ValueError("names a condition twice")
    return tuple(conditions)


def check(conditions: Iterable[str], schemes: Sequence[str], seeds: int) -> None:
    """Refuse, before any work, a condition that names a scheme the run does not train, that
    compares a scheme with itself, or that asks ``~`` of a single seed."""
    for text in conditions:
        condition = parse(text)
        names = [condition.left] + ([] if condition.threshold is not None else [condition.right])
        found = [_of_run(name, schemes) for name in names]
        for name, run_name in zip(names, found):
            if run_name is None:
                raise UsageError(f"The expectation {text!r} names {name}, which this run does not train: it trains "
                                 f"{', '.join(schemes)}. {_closest(name, schemes)}")
        if len(found) == 2 and found[0] == found[1]:
            raise UsageError(f"The expectation {text!r} compares {found[0]} with itself. Name two different schemes.")
        if condition.op == "~" and seeds < 2:
            raise UsageError(f"The expectation {text!r} asks whether the two cannot be told apart, which one seed "
                             "cannot say (the verdict needs an interval over seeds). Train two or more seeds "
                             "(--seeds 3), or leave it out.")


def _closest(name: str, schemes: Sequence[str]) -> str:
    """What to do about ``name``, which the run does not train: the closest of its schemes
    (a typo: "rul" for rule), or adding it (a built-in name may be meant as written)."""
    lower = {s.lower(): s for s in reversed(schemes)}
    close = difflib.get_close_matches(name.lower(), lower, n=1, cutoff=0.6)
    if not close:
        return f"Add {name} to the schemes, or name one of those."
    return f"Did you mean {lower[close[0]]}?" + (f" Or add {name} to the schemes." if built_in(name) else "")


def _of_run(name: str, schemes: Iterable[str]) -> str | None:
    """The run's name of the scheme ``name`` stands for (the same name, or one the registry
    resolves to the same scheme), or None when the run does not train it. Resolving a user's
    scheme runs its code: only a name of a file, module or function the run trains is resolved
    (another spelling of its parameters), so a condition runs no code the run would not."""
    known = list(schemes)
    if name in known:
        return name
    head = name.partition(":")[0]
    alike = [s for s in known if built_in(s)] if built_in(name) else [
        s for s in known if s.partition(":")[0] == head]
    if not alike:
        return None
    try:
        canonical = scheme_registry.get(name).name
    except UsageError:  # an unknown name: not one of the run's, which the message lists
        return None
    return next((s for s in alike if scheme_registry.get(s).name == canonical), None)


def built_in(name: str) -> bool:
    """Whether ``name`` is a built-in scheme's (or alias's), told from the text alone."""
    head = name.partition(":")[0]
    return head in scheme_registry.names() or head in scheme_registry.ALIASES


@dataclass(frozen=True)
class Outcome:
    """A condition judged (in a sweep's cell): whether it held, and the numbers it was judged
    on, as fractions: the mean difference left - right over seeds, or the left scheme's mean
    accuracy against a threshold, with the 95% t-interval (None with one seed)."""

    condition: str
    held: bool
    seeds: int
    mean: float
    low: float | None
    high: float | None
    threshold: float | None = None
    cell: dict[str, str] | None = None  # a sweep's grid values, as its table shows them

    @property
    def verdict(self) -> str:
        """What the interval says: better, worse or indistinguishable (above, below or
        indistinguishable from a threshold); "" with one seed."""
        if self.low is None or self.high is None:
            return ""
        above, below = self.low > (self.threshold or 0), self.high < (self.threshold or 0)
        if self.threshold is None:
            return "better" if above else "worse" if below else "indistinguishable"
        bound = f"{100 * self.threshold:g}%"
        return f"above {bound}" if above else f"below {bound}" if below else f"indistinguishable from {bound}"

    @property
    def name(self) -> str:
        """The condition, and in a sweep the cell it was judged in: "rule > uniform at lr=0.1"."""
        return self.condition + ("" if not self.cell else " at " + ", ".join(f"{k}={v}" for k, v in self.cell.items()))

    def __str__(self) -> str:
        """One line: the condition (and cell) and the numbers it was judged on."""
        if self.threshold is None:
            value, interval = f"{100 * self.mean:+.2f} points", "[{:+.2f}, {:+.2f}]"
        else:
            value, interval = f"{100 * self.mean:.2f}%", "[{:.2f}, {:.2f}]"
        if self.low is None or self.high is None:
            return f"{self.name}: {value} ({ONE_SEED})"
        return (f"{self.name}: {value} {interval.format(100 * self.low, 100 * self.high)} over "
                f"{self.seeds} seeds ({self.verdict})")

    @property
    def line(self) -> str:
        """What the command line prints on stderr."""
        return f"Expectation {'held' if self.held else 'failed'}: {self}"

    def record(self) -> dict[str, Any]:
        """As run.json and sweep.json keep it."""
        return {"condition": self.condition, "cell": self.cell, "held": self.held, "seeds": self.seeds,
                "mean": self.mean, "low": self.low, "high": self.high, "threshold": self.threshold,
                "verdict": self.verdict, "line": self.line}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Outcome:
        return cls(record["condition"], record["held"], record["seeds"], record["mean"], record["low"],
                   record["high"], record["threshold"], record["cell"])


def evaluate(conditions: Iterable[str], accuracies: Mapping[str, Mapping[int, float]],
             cell: dict[str, str] | None = None) -> list[Outcome]:
    """Each condition judged on ``accuracies`` (the validation metric by the run's scheme
    name, then by seed: ``scores``); a condition naming a scheme that ``accuracies`` lacks (a
    sweep's cell without it) is left out."""
    outcomes = []
    for text in conditions:
        condition = parse(text)
        left = _of_run(condition.left, accuracies)
        if left is None:
            continue
        if condition.threshold is not None:  # a scheme whose accuracy is the threshold at every seed
            versus: Mapping[int, float] | None = dict.fromkeys(accuracies[left], condition.threshold)
        else:
            right = _of_run(condition.right, accuracies)
            versus = None if right is None else accuracies[right]
        seeds = [] if versus is None else sorted(set(accuracies[left]) & set(versus))
        if versus is None or not seeds:
            continue
        paired = stats.paired([accuracies[left][s] - versus[s] for s in seeds])
        low, high = (None, None) if math.isnan(paired.low) else (paired.low, paired.high)
        shift = condition.threshold or 0.0  # a threshold's numbers are the accuracy itself, not its difference
        outcomes.append(Outcome(str(condition), _holds(condition.op, paired), paired.seeds, paired.mean + shift,
                                None if low is None else low + shift, None if high is None else high + shift,
                                condition.threshold, cell))
    return outcomes


def _holds(op: str, d: stats.Paired) -> bool:
    """Whether the differences ``d`` (left - right) bear out ``op``: on the interval, or on the
    point value with one seed (where ``~`` never comes: ``check`` refuses it)."""
    low, high = (d.mean, d.mean) if math.isnan(d.low) else (d.low, d.high)
    return {">": low > 0, "<": high < 0, ">=": not high < 0, "<=": not low > 0, "~": low <= 0 <= high}[op]


def scores(frame: Any, metric: tasks.Metric, name: str = "scheme") -> dict[str, dict[int, float]]:
    """The task's validation ``metric`` (the accuracy) by scheme name (column ``name``) and
    seed, from a runs frame: what conditions are judged on."""
    return {scheme: dict(zip(rows["seed"].tolist(), rows[metric.key].tolist()))
            for scheme, rows in frame.groupby(name, sort=False)}
