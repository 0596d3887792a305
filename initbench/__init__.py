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
``initbench.views``, the functions in ``initbench.api``. From a shell: ``initbench --help``.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any

__version__ = "0.1.0"


def busy() -> str | None:
    """This machine's load where other work keeps every CPU this process may use busy
    already ("load 6.1 on 2 CPUs"), else None (or where the system does not say)."""
    try:
        load, cpus = os.getloadavg()[0], len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    return f"load {load:.1f} on {cpus} CPU{'s' * (cpus != 1)}" if load >= cpus else None


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

_API = ("compare", "sweep", "transfer", "inspect", "evaluate", "export", "diff", "schemes", "scheme")
_VIEWS = ("open", "Run", "TransferRun", "Sweep", "SweepPlan", "Inspection", "Evaluation")
__all__ = [*_API, *_VIEWS]


def __getattr__(name: str) -> Any:
    """The API, imported when first used: ``import initbench`` loads no torch (the command
    line checks what was typed before torch loads)."""
    if name in ("sweep", "schemes", "diff"):  # submodules too, which are called as the API's functions
        return importlib.import_module(f"initbench.{name}")
    if name in _API:
        return getattr(importlib.import_module("initbench.api"), name)
    if name in _VIEWS:
        return getattr(importlib.import_module("initbench.views"), name)
    raise AttributeError(f"module 'initbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _CalledAsApi(types.ModuleType):
    """A submodule named as an API function (``initbench.sweep``, ``initbench.schemes``):
    one attribute of the package is both, so the module, called, is the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function(*args, **kwargs)

    @property
    def __signature__(self) -> Any:  # for help() and completion
        import inspect

        return inspect.signature(self._function)

    @property
    def _function(self) -> Any:
        return getattr(importlib.import_module("initbench.api"), self.__name__.rpartition(".")[2])


def called_as_api(module: str) -> None:
    """Make the submodule ``module`` callable as the API function of its name."""
    sys.modules[module].__class__ = _CalledAsApi
