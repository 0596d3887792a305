"""JUnit XML (``--format junit`` of compare, sweep and diff), which CI systems show as
test results: one ``<testsuites>`` holding one ``<testsuite>`` of ``<testcase>``s.

What a test case is, so that its failures are exactly what makes the command exit 1:

- compare and sweep given expectations (``--expect``): one per expectation (per grid cell
  in a sweep), failing when it failed, its line as the failure's message;
- compare and sweep without: one per scheme (per cell) that trained, passing, with its
  accuracy as its output: the run succeeded (a model that diverged is a result, not a
  failure), as its exit status says;
- diff: one per scheme (per cell), failing as ``--fail-on`` says; one in one folder only is
  skipped, unless ``--fail-on change`` fails it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from initbench import paths, tasks
from initbench.analysis import diff as diffs
from initbench.analysis.expect import Outcome
from initbench.words import plural

if TYPE_CHECKING:
    from initbench.views.finished import Run, Sweep


@dataclass(frozen=True)
class Case:
    name: str
    classname: str
    failure: str | None = None  # the message, when it failed
    kind: str = ""  # the failure's type
    skipped: str | None = None  # why, when it was not judged
    output: str = ""  # what was found, in words (its system-out)


def document(suite: str, cases: Sequence[Case], seconds: float = 0.0, timestamp: str | None = None) -> str:
    """The XML of one test suite of ``cases``, its counts agreeing with them."""
    failures = sum(c.failure is not None for c in cases)
    skipped = sum(c.skipped is not None and c.failure is None for c in cases)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": str(skipped),
              "time": f"{seconds:.3f}"}
    root = ET.Element("testsuites", {"name": "initbench", **counts})
    # JUnit's schema takes a timestamp without a time zone: the local time it started.
    suite_element = ET.SubElement(root, "testsuite", {"name": suite, **counts}
                                  | ({"timestamp": timestamp[:19]} if timestamp else {}))
    for case in cases:
        element = ET.SubElement(suite_element, "testcase", {"name": case.name, "classname": case.classname,
                                                            "time": "0"})
        if case.failure is not None:
            ET.SubElement(element, "failure", {"message": case.failure, "type": case.kind}).text = case.failure
        elif case.skipped is not None:
            ET.SubElement(element, "skipped", {"message": case.skipped})
        if case.output:
            ET.SubElement(element, "system-out").text = case.output
    for element in root.iter():  # ElementTree writes any character, XML 1.0 holds only some
        element.attrib.update({key: paths.shown(value) for key, value in element.attrib.items()})
        element.text = element.text and paths.shown(element.text)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def of(result: Run | Sweep | diffs.Pairing, fail_on: str | None = None) -> str:
    """The JUnit XML of what compare, sweep or diff (with its ``--fail-on``) returned."""
    if isinstance(result, diffs.Pairing):
        return of_diff(result, fail_on)
    from initbench.views.finished import Sweep

    return of_sweep(result) if isinstance(result, Sweep) else of_run(result)


def _expected(outcomes: Sequence[Outcome], classname: str) -> list[Case]:
    return [Case(o.name, classname, None if o.held else o.line, "expectation failed", output=o.line)
            for o in outcomes]


def _accuracy(row: Any, task: tasks.Task) -> str:
    """A scheme's validation metric, as its test case's output: "validation accuracy 85.61% over 1 seed"."""
    val = task.validation
    spread = "" if row.seeds < 2 else f" ± {100 * getattr(row, f'{val.key}_std'):.2f}"
    return (f"{val.name} {100 * getattr(row, f'{val.key}_mean'):.2f}%{spread} over {plural(row.seeds, 'seed')}"
            + (f"; diverged in {row.diverged_seeds} of them" if row.diverged_seeds else ""))


def of_run(run: Run) -> str:
    """A compare run: its expectations, or each scheme."""
    classname = "initbench.compare"
    cases = _expected(run.expectations, classname + ".expect") or [
        Case(row.scheme, classname + ".scheme", output=_accuracy(row, run.task)) for row in run.summary.itertuples()]
    return document(f"initbench compare {run.folder}", cases, run.info.get("train_seconds", 0.0),
                    run.info.get("started"))


def of_sweep(result: Sweep) -> str:
    """A sweep: its expectations in each cell, or each scheme in each cell."""
    from initbench.analysis.cells import cells_frame
    from initbench.views.sweep import task_of

    classname, info = "initbench.sweep", result.info or {}
    cases = _expected(result.expectations, classname + ".expect")
    if not cases:
        cells, varied = cells_frame(result.runs, task_of(result.runs))
        cases = [Case(row.scheme + ("" if not varied else " at " + ", ".join(f"{k}={getattr(row, k)}" for k in varied)),
                      classname + ".scheme", output=_accuracy(row, task_of(result.runs))) for row in cells.itertuples()]
    return document(f"initbench sweep {result.folder}", cases, info.get("figures", {}).get("train_seconds", 0.0),
                    info.get("started"))


def of_diff(found: diffs.Pairing, fail_on: str | None) -> str:
    """A diff: each scheme (per cell), failing as ``fail_on`` says."""
    failing = {id(row) for row in found.failing(fail_on)}
    cases = []
    for row in found.rows:
        said = diffs.line(row, found.varied, found.task.validation)
        cases.append(Case(diffs.name(row, found.varied), "initbench.diff", said if id(row) in failing else None,
                          fail_on or "", None if row["seeds"] else said, said))
    return document(f"initbench diff {found.a} {found.b}", cases)
