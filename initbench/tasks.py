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
names it (``tests/test_layout.py`` registers one from outside the package). Next-token
prediction (``NEXT_TOKEN``, a text's) is scored by its loss in nats per character, lower
being better (``Metric.higher``). An engine returns a job's validation and test metrics in
``JobResult.val_acc`` and ``test_acc`` whatever they are (the stores' columns of those names
hold them: accuracy for classification, the loss for next-token); the frames, CSV files and
tables name them by the task's keys. Nothing here imports torch.
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
    higher: bool = True  # whether a higher value is better (accuracy), or a lower (a loss)
    # The same number in another unit, as a table's extra column shows it: its header and factor
    # (a loss in nats per character is also in bits: 1/ln 2).
    also: tuple[str, str, float] | None = None  # (header, unit, factor)

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

    @property
    def scale(self) -> float:
        """What a value is multiplied by to be shown in its unit (a fraction as a percentage: 100)."""
        return 100.0 if self.unit == "%" else 1.0

    def shown(self, mean: float, std: float = math.nan) -> str:
        """A value (and its std over seeds) as tables show it: "86.44% ± 0.12", "1.923 ± 0.004";
        a loss no seed scored (every one diverged): "diverged"."""
        if not math.isfinite(mean):
            return "diverged"
        if self.unit == "%":
            return f"{100 * mean:.2f}%" + ("" if math.isnan(std) else f" ± {100 * std:.2f}")
        return f"{mean:.3f}" + ("" if math.isnan(std) else f" ± {std:.3f}")

    def difference(self, value: float) -> str:
        """A difference of two values as tables show it: in points for a percentage (+1.23), else
        in the unit (+0.012)."""
        return f"{100 * value:+.2f}" if self.unit == "%" else f"{value:+.3f}"

    @property
    def difference_unit(self) -> str:
        """What differences are in, in words: "percentage points", "nats"."""
        return "percentage points" if self.unit == "%" else self.unit

    def best(self, values: Iterable[float]) -> float:
        """The best of ``values``: the highest, or the lowest of a loss."""
        return max(values) if self.higher else min(values)


@dataclass(frozen=True)
class Task:
    """A task: its name, its loss, and the metrics a job is scored by."""

    name: str
    loss: str  # what training minimizes, in words: "cross-entropy"
    validation: Metric  # what ranks schemes, and what expectations, diffs and the paired statistics judge
    test: Metric

    def chance(self, outputs: int) -> float:
        """The validation metric of a model that knows nothing: an even guess's accuracy (1/outputs), or its loss."""
        return 1 / outputs if self.validation.higher else self.chance_loss(outputs)

    def chance_loss(self, outputs: int) -> float:
        """The loss of a model that spreads its guess evenly over its ``outputs`` (classes, or
        tokens): ln(outputs), for a cross-entropy."""
        return math.log(outputs)


CLASSIFICATION = Task("classification", "cross-entropy",
                      Metric("val_acc", "validation accuracy", "Validation\naccuracy", "accuracy/val"),
                      Metric("test_acc", "test accuracy", "Test\naccuracy", "accuracy/test"))

# Next-token prediction (a text, data.text): scored by the loss itself, in nats per character (lower is better).
NEXT_TOKEN = Task("next-token", "cross-entropy",
                  Metric("val_loss", "validation loss", "Validation\nloss (nats)", "loss/val", "nats", higher=False,
                         also=("Validation\nbits/char", "bits per character", 1 / math.log(2))),
                  Metric("test_loss", "test loss", "Test\nloss (nats)", "loss/test", "nats", higher=False))

TASKS: Registry[Task] = Registry("task")
register = TASKS.register
get = TASKS.find
register(CLASSIFICATION)
register(NEXT_TOKEN)


def one(found: Iterable[Task], holding: str, advice: str) -> Task:
    """The one task of ``found`` (the tasks of what a table, a pairing or an export holds);
    several are refused: ``holding`` says what holds their jobs ("These runs hold"),
    ``advice`` what to do instead."""
    distinct = set(found)
    if len(distinct) > 1:
        raise UsageError(f"{holding} jobs of different tasks ({', '.join(sorted(t.name for t in distinct))}), scored "
                         f"by different metrics. {advice}")
    return distinct.pop()
