"""Ends what is left of a Ray runtime that initbench started, once the run is over or its
process is gone, however it went.

``ray.init`` starts the runtime's processes as children of the run's process, and Ray does
not end all of them with it: killed (SIGKILL, the out-of-memory killer), the run takes its
GCS and raylet along (Ray asks the kernel to, PR_SET_PDEATHSIG), but the raylet's own
children, ``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent``, spend a minute trying to tell
the dead GCS about it, and Ray never removes the runtime's folder of logs and sockets.
Nothing can be done from the killed process itself, so it starts this one first.

The run gives the runtime a folder of its own (``ray.init(_temp_dir=...)``) and starts this
script with that folder and a pipe on its standard input. The script reads the pipe until the
run closes it (the run is over and has shut Ray down) or the kernel does (the run died); then
every process holding a file open in the folder is the runtime's (each one writes its logs
there; no other process has a reason to), and is ended: SIGTERM, then SIGKILL after GRACE
seconds; and the folder is removed. It runs in a session of its own, so that a terminal's
Ctrl-C, sent to the run's whole process group, does not stop it before its work; and it
imports nothing heavy, starting in milliseconds beside a run that may be short of memory.
Processes are found through /proc (Linux, where Ray's clusters run); elsewhere only the
folder is removed.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

GRACE = 2.0  # seconds between SIGTERM and SIGKILL
LIMIT = 10.0  # seconds after which a process that will not die (stuck in the kernel) is left


def holding(folder: Path, spare: set[int]) -> list[int]:
    """The processes, other than ``spare``, with a file open in ``folder``."""
    prefix = f"{folder}{os.sep}"
    found = []
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit() or int(entry.name) in spare:
            continue
        try:
            fds = list(os.scandir(f"{entry.path}/fd"))
        except OSError:  # gone, or another user's
            continue
        if any(_target(fd.path).startswith(prefix) for fd in fds):
            found.append(int(entry.name))
    return found


def _target(link: str) -> str:
    try:
        return os.readlink(link)
    except OSError:  # closed meanwhile
        return ""


def stop(folder: Path, spare: set[int]) -> None:
    """End the processes holding files in ``folder`` (SIGTERM, SIGKILL after GRACE), then remove it."""
    start, termed, quiet = time.monotonic(), set(), 0
    while quiet < 3 and time.monotonic() - start < LIMIT:  # three looks at none: none was starting either
        pids = holding(folder, spare)
        quiet = 0 if pids else quiet + 1
        late = time.monotonic() - start > GRACE
        for pid in pids:
            if late or pid not in termed:
                try:
                    os.kill(pid, signal.SIGKILL if late else signal.SIGTERM)
                except OSError:  # ended meanwhile
                    pass
                termed.add(pid)
        time.sleep(0.05)
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    folder, run = Path(sys.argv[1]), os.getppid()
    sys.stdin.buffer.read()  # until the run closes the pipe, or dies
    stop(folder, {os.getpid(), run})  # the run, when it closed the pipe, still holds its own log there


if __name__ == "__main__":
    main()
