"""The ``initbench`` console script: signals handled from its first instant.

Importing the command line (typer, rich, initbench's modules) takes a tenth of a second or
more, before any command can catch a Ctrl-C; here the stop signals are handled before that
import, so an interruption at any moment ends in one line and exit status 128 + the signal,
never in a traceback.
"""

import signal
import sys

from initbench.errors import handle_stop_signals, interruption


def main() -> None:
    handle_stop_signals()
    try:
        from initbench import cli

        cli.main()
    except BaseException as e:  # outside a command (while starting or finishing): nothing was written
        stop = interruption(e)
        if stop is None:
            raise
        signum = getattr(stop, "signum", signal.SIGINT)
        print(f"Interrupted by {signal.Signals(signum).name}.", file=sys.stderr)
        sys.exit(128 + signum)
