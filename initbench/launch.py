"""The ``initbench`` console script: signals handled from its first instant.

Importing the command line (typer, rich, initbench's modules) takes a tenth of a second or
more, before any command can catch a Ctrl-C; here the stop signals are handled before that
import, so an interruption at any moment ends in one line and exit status 128 + the signal,
never in a traceback.
"""

import atexit
import os
import signal
import sys
import threading

from initbench.errors import handle_stop_signals, interruption


def main() -> None:
    handle_stop_signals()
    try:
        from initbench import cli

        cli.main()
    except SystemExit as e:  # how every command ends (Click's standalone mode)
        _end(e.code)
        raise
    except BaseException as e:  # outside a command (while starting or finishing): nothing was written
        stop = interruption(e)
        if stop is None:
            raise
        signum = getattr(stop, "signum", signal.SIGINT)
        print(f"Interrupted by {signal.Signals(signum).name}.", file=sys.stderr)
        sys.exit(128 + signum)


def _end(code: object) -> None:
    """End a finished command's process without the interpreter's teardown. Once torch is
    imported, freeing every module's objects one by one takes 0.7 s or more (measured on the
    project's 2-core Xeon: ``import torch`` alone exits 0.77 s sooner this way), and a finished
    command needs none of it: every file it wrote is closed. What an exit must still do is done:
    the atexit handlers run and stdout and stderr are flushed. Where another thread still runs,
    a flush fails (a reader gone), or a profiler, debugger or tracer is attached (``python -m
    cProfile``, pdb, coverage: they write what they gathered after the command returns), the
    normal exit takes over."""
    if "torch" not in sys.modules or not (code is None or isinstance(code, int)):
        return
    if sys.gettrace() is not None or sys.getprofile() is not None:
        return
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    if not _flushed():
        return
    atexit._run_exitfuncs()  # what the normal exit runs first, and clears
    if _flushed():
        os._exit(code or 0)


def _flushed() -> bool:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a reader gone, a stream closed
        return False
    return True
