"""The one exception the CLI turns into a clean message and a non-zero exit."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a batch system's timeout, a closed terminal), handled like Ctrl-C:
    the run stops, nothing half-written stays, the exit status is 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class InitbenchError(Exception):
    """A problem the user can fix (bad input, missing data, unwritable folder).

    The message is shown as one paragraph, without a traceback, and the command
    exits with status 1.
    """
