"""What a job learns and how it is scored: its task. A dataset names its task
(``data.Dataset.task``); tables, pictures, expectations, diffs, JUnit and TensorBoard take
the names of what they show from it rather than from the word "accuracy".

A task holds its loss (what training minimizes, and its value for a model that knows
nothing: ``chance_loss``) and two metrics, each under the key stores and CSV files keep it
by: ``validation`` (what ranks the schemes, and what ``--expect``, ``diff`` and the paired
statistics judge) and ``test``. Image classification is the one task so far::

    CLASSIFICATION = Task("classification", "cross-entropy",
                          Metric("val_acc", "validation accuracy", "Validation\\naccuracy", "accuracy/val"),
                          Metric("test_acc", "test accuracy", "Test\\naccuracy", "accuracy/test"))

A task of one's own is such a record and a line, ``tasks.register(...)``, and a dataset that
names it (``tests/test_layout.py`` registers one from outside the package). What the
engines compute is still classification's, higher being better: the fraction right, in
the stores' ``val_acc`` and ``test_acc`` columns, and the cross-entropy; a task scored
otherwise (next-token prediction's loss in nats, lower better) brings its scoring, its
columns and its direction with it. Nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from initbench.choices import Registry
from initbench.errors import UsageError


@dataclass(frozen=True)
class Metric:
    """One number a job is scored by."""

    key: str  # as stores and CSV files keep it: "val_acc" (its mean over seeds: "val_acc_mean")
    name: str  # as sentences say it, the split then what is measured: "validation accuracy"
    header: str  # as a table's column says it (a line break keeps the column narrow)
    tag: str  # as TensorBoard's scalars name it: "accuracy/val"
    unit: str = "%"  # "%": a fraction shown as a percentage (differences in points); else the unit shown

    @property
    def quantity(self) -> str:
        """What is measured, without the split: "accuracy"."""
        return self.name.partition(" ")[2]

    @property
    def title(self) -> str:
        """As a picture's axis or a title begins with it: "Validation accuracy"."""
        return self.name[:1].upper() + self.name[1:]

    @property
    def axis(self) -> str:
        """As a picture's axis says it, with its unit: "Validation accuracy (%)"."""
        return f"{self.title} ({self.unit})"


@dataclass(frozen=True)
class Task:
    """A task: its name, its loss, and the metrics a job is scored by."""

    name: str
    loss: str  # what training minimizes, in words: "cross-entropy"
    validation: Metric  # what ranks schemes, and what expectations, diffs and the paired statistics judge
    test: Metric

    def chance_loss(self, outputs: int) -> float:
        """The loss of a model that spreads its guess evenly over its ``outputs`` (classes, or
        tokens): ln(outputs), for a cross-entropy."""
        return math.log(outputs)


CLASSIFICATION = Task("classification", "cross-entropy",
                      Metric("val_acc", "validation accuracy", "Validation\naccuracy", "accuracy/val"),
                      Metric("test_acc", "test accuracy", "Test\naccuracy", "accuracy/test"))

TASKS: Registry[Task] = Registry("task")
register = TASKS.register
get = TASKS.find
register(CLASSIFICATION)


def one(found: Iterable[Task], holding: str, advice: str) -> Task:
    """The one task of ``found`` (the tasks of what a table, a pairing or an export holds);
    several are refused: ``holding`` says what holds their jobs ("These runs hold"),
    ``advice`` what to do instead."""
    distinct = set(found)
    if len(distinct) > 1:
        raise UsageError(f"{holding} jobs of different tasks ({', '.join(sorted(t.name for t in distinct))}), scored "
                         f"by different metrics. {advice}")
    return distinct.pop()
