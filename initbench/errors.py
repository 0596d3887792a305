"""The exceptions the CLI turns into a clean message and an exit status."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a batch system's timeout, a closed terminal), handled like Ctrl-C:
    the run stops, nothing half-written stays, the exit status is 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class InitbenchError(Exception):
    """A problem the user can fix that stopped the work (missing or corrupted data,
    an unwritable folder, a full disk, a model too large for memory).

    The message is shown as one paragraph, without a traceback, and the command
    exits with ``exit_code``.
    """

    exit_code = 1


class UsageError(InitbenchError):
    """The command as typed cannot run: a bad option value, scheme name or config file,
    or an output folder that is taken. Found before any work (and before torch is
    imported); exit status 2, as for the options the command line parser refuses."""

    exit_code = 2
