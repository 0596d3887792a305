"""The exceptions the CLI turns into a clean message and an exit status, and the signals
it turns into one of them."""

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, a batch system's timeout, a closed terminal
_received: list[int] = []  # the stop signal this command got, once handled (handle_stop_signals)
_foreign: list[str] = []  # what code initbench did not write runs now, in words (``foreign``)


class Terminated(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, handled alike: the run stops, nothing half-written stays,
    the exit status is 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def handle_stop_signals() -> None:
    """Turn the stop signals into ``Terminated`` (in the main thread), for a command about to run."""
    _received.clear()
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)


def _stop(signum: int, frame: object) -> None:
    if not _received:
        _received.append(signum)
        raise Terminated(signum)
    if _foreign:  # it swallowed the first (except BaseException: pass): nothing else would end it but SIGKILL
        os.write(2, f"Interrupted by {signal.Signals(signum).name} a second time while {_foreign[-1]} ran, which went "
                    "on after the first: stopped at once (the next run in the same place removes what this one staged; "
                    "a sweep's store keeps its committed jobs).\n".encode())
        os._exit(128 + signum)
    # Otherwise a second Ctrl-C (or a SIGTERM after it) does nothing: the first one's cleanup
    # runs, and cutting it short would leave a traceback and a staged folder behind.


def received() -> int | None:
    """The stop signal this command got (handle_stop_signals), or None."""
    return _received[0] if _received else None


@contextmanager
def foreign(what: str) -> Iterator[None]:
    """While code initbench did not write runs (``what``, in words: a user's scheme), a stop
    signal still stops the command, whatever that code does with the ``Terminated`` it gets:
    raises something else instead, or swallows it and returns (``Terminated`` is raised then),
    or swallows it and goes on (a second stop signal ends the process at once, exit status 128
    + that signal, with one line on stderr: the next run removes the staged folder, a sweep's
    store is committed a chunk at a time). A stop signal's handler it sets (SIG_IGN) is set back."""
    main = threading.current_thread() is threading.main_thread()  # the only thread that sets handlers
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} if main else {}
    # Through the Python API (a notebook, a script) Python's own handler turns Ctrl-C into a
    # KeyboardInterrupt, which the code could raise itself too: while it runs, a Ctrl-C is noted.
    noting = main and handlers[signal.SIGINT] is signal.default_int_handler
    if noting:
        _received.clear()
        signal.signal(signal.SIGINT, _noted)
    _foreign.append(what)
    try:
        yield
    except BaseException as e:
        if _received and not isinstance(e, Terminated):
            raise Terminated(_received[0]) from e
        raise
    finally:
        _foreign.pop()
        for signum, handler in handlers.items():
            if signal.getsignal(signum) is not handler and handler is not None:  # None: set outside Python
                signal.signal(signum, handler)
        stopped = received()
        if noting:
            _received.clear()  # the API's next call starts afresh
    if stopped is not None:
        raise Terminated(stopped)


def _noted(signum: int, frame: object) -> None:
    """Ctrl-C while a user's code runs under the Python API: an interruption, as Python's own
    handler makes it, and noted as one (``received``)."""
    if not _received:
        _received.append(signum)
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
