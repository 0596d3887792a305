"""The exceptions the CLI turns into a clean message and an exit status, and the signals
it turns into one of them."""

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, a batch system's timeout, a closed terminal


class Terminated(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, handled alike: the run stops, nothing half-written stays,
    the exit status is 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def handle_stop_signals() -> None:
    """Turn the stop signals into ``Terminated`` (in the main thread)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)


def _stop(signum: int, frame: object) -> None:
    # Once only: a second Ctrl-C (or a SIGTERM after it) while the first one's cleanup runs
    # would cut that cleanup short, with a traceback and a staged folder left behind.
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise Terminated(signum)


def interruption(e: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or stop signal that ``e`` is, or that Python wrapped: a signal that arrives
    while a class is being made (in a ``__set_name__``, as importing rich does) reaches the
    caller as a RuntimeError whose cause is the interruption."""
    while e is not None and not isinstance(e, KeyboardInterrupt):
        e = e.__cause__
    return e


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


def require(package: str, missing: str) -> None:
    """Raise UsageError(``missing``) unless ``package`` can be imported, found without importing
    it (an optional dependency, checked before any work; a broken installation counts as absent)."""
    import importlib.util

    try:
        installed = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        installed = False
    if not installed:
        raise UsageError(missing)
