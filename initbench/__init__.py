"""initbench: compare how initial weights decide how a network trains.

In Python, each command is a function that trains on real FashionMNIST, writes a run
folder, and returns what it made as an object; nothing is printed (a notebook shows a
progress bar)::

    import initbench as ib

    run = ib.compare(["zeros", "rule", "default"], seeds=2, epochs=1)
    run.table                        # per scheme: accuracies (%) and losses, as a DataFrame
    run.figures()["loss_curves"]     # matplotlib Figures
    run                              # in a notebook: the table; print(run): as Markdown

    @ib.scheme("half_rule")          # a scheme of your own, for this process
    def half_rule(weight, bias, generator):
        bound = 0.5 / weight.shape[1] ** 0.5
        weight.uniform_(-bound, bound, generator=generator)
        bias.zero_()

    ib.compare(["rule", "half_rule"], epochs=1)
    ib.open("results/...")           # a finished run, read again

``compare``, ``sweep``, ``transfer``, ``inspect`` and ``evaluate`` take the command
line's options as keywords named as in a config file (``train_samples=1000``,
``seeds=3``), with its defaults and its checks; ``schemes()`` lists the schemes;
``export(*folders, tensorboard="logs")`` writes finished runs as TensorBoard's logs;
``diff(a, b)`` compares two run or sweep folders job by job. The
objects (``Run``, ``TransferRun``, ``Sweep``, ``Inspection``, ``Evaluation``) are in
``initbench.views.finished``, the functions in ``initbench.api``. From a shell: ``initbench --help``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from initbench.host import busy
from initbench.version import VERSION as __version__  # noqa: F401  (initbench.__version__)

# torch's OpenMP threads (and MKL's) spin while they wait for one another. Where other work
# already keeps every CPU busy, a spinning thread takes the CPU the thread it waits for
# needs, and every step waits a time slice: on a 2-core AMD EPYC under load, a sweep's
# steps took 15 to 50 times as long (configs/sweep-depth.toml: planned at 56 minutes, and
# training at that pace; 3.5 minutes with passive waiting). OpenMP reads the policy once, when torch
# loads, so it is set here, before; a user's own setting stays. How threads wait changes no
# number; on an idle machine spinning is the faster (passive: about 35% slower a step), so
# it is left to spin there.
if "OMP_WAIT_POLICY" not in os.environ and busy():
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

_API = ("compare", "sweep", "transfer", "inspect", "coordcheck", "evaluate", "export", "diff", "schemes", "scheme")
_VIEWS = ("open", "Run", "TransferRun", "Sweep", "SweepPlan", "Inspection", "CoordCheck", "Evaluation")
__all__ = [*_API, *_VIEWS]


def __getattr__(name: str) -> Any:
    """The API, imported when first used: ``import initbench`` loads no torch (the command
    line checks what was typed before torch loads)."""
    if name in _API:
        return getattr(importlib.import_module("initbench.api"), name)
    if name in _VIEWS:
        return getattr(importlib.import_module("initbench.views.finished"), name)
    raise AttributeError(f"module 'initbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
