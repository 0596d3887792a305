"""This machine as initbench's scheduling sees it: whether other work keeps its CPUs busy.

Imported by the package itself, before torch loads (``initbench/__init__.py`` sets
OpenMP's waiting policy by it), so it imports nothing of initbench.
"""

from __future__ import annotations

import os


def busy() -> str | None:
    """This machine's load where other work keeps every CPU this process may use busy
    already ("load 6.1 on 2 CPUs"), else None (or where the system does not say)."""
    try:
        load, cpus = os.getloadavg()[0], len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    return f"load {load:.1f} on {cpus} CPU{'s' * (cpus != 1)}" if load >= cpus else None
