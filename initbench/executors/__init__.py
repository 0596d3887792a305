"""Where chunks of jobs are trained: in this process (``local``), or as tasks on a Ray
cluster (``ray``).

An executor measures what its workers can hold and how fast they step (so that the
sweep can cut the jobs into chunks and estimate the time), then trains the chunks it
is given and yields each one's results as it finishes, with the machine that trained
it. It never writes: the caller commits every chunk to the store, in this process
alone, so resuming is the same whichever executor trained the rows.

Executors own their settings (``Placement``, in ``base`` with what every executor shares;
Ray's in ``raysettings``): ``config`` reads them from files and options, and nothing here
imports it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from initbench.executors.base import DataKey, Executor, Finished, Placement

if TYPE_CHECKING:
    from initbench.jobs import Activity

__all__ = ["EXECUTORS", "DataKey", "Executor", "Finished", "Placement", "connect"]

EXECUTORS = ("local", "ray")


@contextmanager
def connect(placement: Placement, activity: Activity) -> Iterator[Executor]:
    """``placement``'s executor, ready to train (a Ray runtime started, or joined, for the run)."""
    if placement.executor == "ray":
        # Else Ray's C++ core, once ray.init has started it here, catches SIGTERM with abseil's failure handler: a
        # stack dump, then an abort 3 s later whatever the shutdown is doing (exit 134). raytasks takes SIGTERM back
        # after ray.init, but not during it. Read when Ray is imported, for this process and the runtime it starts.
        os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
        from initbench.executors import raytasks

        with raytasks.connect(placement, activity) as executor:
            yield executor
    else:
        from initbench.executors.local import Local

        yield Local(placement)
