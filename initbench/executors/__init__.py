"""Where chunks of jobs are trained: in this process (``local``), or as tasks on a Ray
cluster (``ray``), or by an executor of one's own, behind one contract.

An executor measures what its workers can hold and how fast they step (so that the
sweep can cut the jobs into chunks and estimate the time), then trains the chunks it
is given and yields each one's results as it finishes, with the machine that trained
it (``base.Executor``: ``max_models``, ``step_seconds``, ``train``, and what it says of
itself). It never writes: the caller commits every chunk to the store, in this process
alone, so resuming is the same whichever executor trained the rows.

Each is registered as a ``Backend``: its name (what ``--executor`` takes), the context
manager that connects to it (``connect(placement, activity)``, yielding the executor and
closing what it opened), its own settings, the check of them before any work, and the
environment it needs before its module is imported. Executors own their settings: a
dataclass whose fields are declared as every setting is (``settings.setting``; Ray's in
``raysettings``), which ``config`` reads from files and options and hands over as
``placement.settings`` (nothing here imports ``config``). An executor of one's own::

    # my_executor.py
    from contextlib import contextmanager
    from dataclasses import dataclass

    from initbench.executors.local import Local
    from initbench.parsing import whole
    from initbench.settings import setting

    class Logged(Local):  # trains here, and says so
        @property
        def description(self):
            return "logged " + super().description

    @dataclass(frozen=True)
    class LoggedSettings:
        log_every: int = setting(1, "With --executor logged: say every Nth chunk.", parse=whole(1), metavar="N")

    @contextmanager
    def connect(placement, activity):
        yield Logged(placement)  # placement.settings: its LoggedSettings

    from initbench import executors
    executors.register(executors.Backend("logged", "my_executor:connect", LoggedSettings))

and ``initbench compare --executor logged --log-every 2``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from initbench.choices import Registry, loaded
from initbench.executors import raysettings
from initbench.executors.base import DataKey, Executor, Finished, Placement

if TYPE_CHECKING:
    from initbench.jobs import Activity

__all__ = ["EXECUTORS", "Backend", "DataKey", "Executor", "Finished", "Placement", "connect", "register"]


@dataclass(frozen=True)
class Backend:
    """An executor: its name, ``"module:function"`` of its ``connect(placement, activity)``
    (a context manager yielding an ``Executor``), the dataclass of its own settings (None:
    it has none), the check of a placement's settings before any work, and environment
    variables set before its module is first imported."""

    name: str
    connector: str
    settings: type | None = None
    check: Callable[[Placement], None] = lambda placement: None
    environment: Mapping[str, str] = field(default_factory=dict)

    def connect(self, placement: Placement, activity: Activity) -> AbstractContextManager[Executor]:
        for key, value in self.environment.items():
            os.environ.setdefault(key, value)
        return loaded(self.connector)(placement, activity)


EXECUTORS: Registry[Backend] = Registry("executor")
register = EXECUTORS.register
register(Backend("local", "initbench.executors.local:connect"))
# Ray's C++ core, once ray.init has started it here, catches SIGTERM with abseil's failure handler: a stack
# dump, then an abort 3 s later whatever the shutdown is doing (exit 134). raytasks takes SIGTERM back after
# ray.init, but not during it. Read when Ray is imported, for this process and the runtime it starts.
register(Backend("ray", "initbench.executors.raytasks:connect", raysettings.RaySettings,
                 check=lambda placement: raysettings.check(placement.settings, placement.device),
                 environment={"RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1"}))


@contextmanager
def connect(placement: Placement, activity: Activity) -> Iterator[Executor]:
    """``placement``'s executor, ready to train (a Ray runtime started, or joined, for the run)."""
    with EXECUTORS.find(placement.executor).connect(placement, activity) as executor:
        yield executor
