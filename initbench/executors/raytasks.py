"""Chunks as Ray tasks: a grid spread over a cluster's CPUs or GPUs.

Ray core, not Ray Tune. A Tune trial carries its own actor, result reporting and
bookkeeping, and with thousands of small trials that overhead is most of the time.
Here one task is a chunk of many models trained in one batched step, so what a task
costs Ray (tens of milliseconds) is paid once per chunk, not once per model.

This process, the driver, loads each data split once and puts it in Ray's object
store (``ray.put``); the tasks read it there, without a copy on a worker's own node.
Each task trains its chunk on its worker's device and returns the results: the driver
alone writes the store, chunk by chunk, so a resumed sweep is the same as a local one.
Users' own schemes travel with each task by content (``initializers.user.Shipment``): a
worker runs the code this process keyed, never a file of its own machine.
A worker that dies (killed, out of memory, its node lost) has its chunk run again, up
to MAX_RETRIES times, and the driver says so; a chunk that still fails is reported at
the end, after every other chunk has been committed.

A run ends on Ray as it ends here: an address where no cluster answers is refused in
seconds, SIGTERM and Ctrl-C reach the command line as they do without Ray, and a runtime
the run starts itself (no cluster given or found) ends with it, however it ends: it
keeps its files in a folder of its own, which ``raywatch`` clears of processes and
removes once the run is over or gone.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import grpc
import ray
import torch
from ray._private import services, utils as ray_utils
from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc, ray_client_pb2, ray_client_pb2_grpc

from initbench import data
from initbench.data import Splits
from initbench.errors import InitbenchError
from initbench.executors import raywatch
from initbench.executors.base import DataKey, Finished, Placement
from initbench.executors.local import machine
from initbench.executors.raysettings import RAY_ADDRESS, ray_address
from initbench.initializers import user
from initbench.jobs import Activity, Job, JobResult, Keep, StepTime
from initbench.settings import TrainSettings
from initbench.training import engines
from initbench.words import plural

MAX_RETRIES = 3  # runs of a chunk after its worker died
CONNECT_SECONDS = 5  # to reach a cluster's address, and for it to answer there (Ray itself retries for minutes)
AUTH_MODE, AUTH_TOKEN, AUTH_TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"  # Ray's own variables
RUNTIME_ROOM = 16 * 2**20  # bytes free for a runtime's folder (its logs take a few hundred KB a run)
RECORDED = "recorded"  # an address's source: the cluster `ray start` recorded on this machine
ADVICE = {  # what else to do, by where the address came from
    RAY_ADDRESS: " Or unset RAY_ADDRESS to start a Ray runtime for this run only.",
    RECORDED: " If that cluster is gone, `ray stop` clears its record; or give --ray-address local to start a Ray "
              "runtime for this run only.",
}


@contextmanager
def connect(placement: Placement, activity: Activity) -> Iterator[RayExecutor]:
    """The cluster at ``placement.settings.ray_address`` or $RAY_ADDRESS (auto: the one started on this
    machine; None: that one if there is one, else a runtime started for this run only, which
    ends with it, however it ends), or the runtime this process already joined (left running)."""
    if ray.is_initialized():
        yield RayExecutor(placement, activity, shared=True)
        return
    with ExitStack() as stack:
        stack.callback(_auth_mode_set_back, os.environ.get(AUTH_MODE))
        address, named, source = _cluster(placement.settings.ray_address)
        if address is None:
            activity.stage("Starting a Ray runtime for this run")
            folder = stack.enter_context(_runtime_folder())
            # No dashboard: nobody looks at it during a run, and it is a process (and a port) fewer to start.
            options: dict[str, Any] = {"address": "local", "_temp_dir": str(folder), "include_dashboard": False}
        else:
            activity.stage(f"Connecting to Ray at {named}")
            options = {"address": address}
        try:
            stack.enter_context(_ray(**options))
        except (OSError, RuntimeError, ValueError) as e:  # ConnectionError is an OSError
            why = str(e).rstrip(".")
            if address is None:
                raise InitbenchError(f"Could not start a Ray runtime here: {why}. Run again; if it fails again, give "
                                     "--executor local.") from None
            raise _unreachable(named, why, source) from None
        yield RayExecutor(placement, activity, shared=False)


def _cluster(option: str | None) -> tuple[str | None, str, str]:
    """Where ``ray.init`` connects for ``option`` (None: it starts a runtime), that address in
    words, and where it came from; checked to answer as a Ray cluster does, in seconds: where
    nothing listens, or something else does, Ray retries for minutes, deaf to SIGTERM."""
    given, source = ray_address(option)
    named = f"{given} (from {RAY_ADDRESS})" if source == RAY_ADDRESS else str(given)
    address = given
    if given is None or "://" not in given:
        try:  # as ray.init reads it: auto, `ray start`'s record, localhost as this machine's address
            address = services.canonicalize_bootstrap_address(given)
        except ConnectionError:
            raise _unreachable(named, "no Ray cluster runs on this machine (without an address, a run starts a "
                               "Ray runtime of its own)", source) from None
        if address is None:
            return None, "a runtime for this run", source
        if given is None:
            named, source = f"{address} (the cluster `ray start` recorded on this machine)", RECORDED
        elif address != given:  # localhost: Ray goes to this machine's own address, which another server may not
            named += f", which Ray reaches as {address}"
    _check(address, named, source)
    return address, named, source


def _check(address: str, named: str, source: str) -> None:
    """That ``address`` answers as a Ray cluster does, to this process: the first call a driver
    makes (a GCS's cluster ID, a Ray Client server's ping), with a token where the cluster asks
    for one (``_authenticate``)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:  # the socket's own words for what is wrong: refused, no route, nothing within the time
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except TimeoutError:
        raise _unreachable(named, f"nothing answered there within {CONNECT_SECONDS} s", source) from None
    except OSError as e:
        raise _unreachable(named, (e.strerror or str(e)).rstrip("."), source) from None
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):  # the probe's channel is not TLS: reaching it is
        return  # all
    answer = _call(address, {})
    if answer == grpc.StatusCode.UNAUTHENTICATED:
        _authenticate(address, named)
    elif answer != grpc.StatusCode.OK:  # an HTTP server (the dashboard's), a proxy, a port that accepts and is silent
        raise _unreachable(named, "something listens there, but it is not a Ray cluster (give the head's GCS port: "
                           "6379 unless `ray start --port` chose another; the dashboard's 8265 is not it)", source)


def _call(address: str, header: Mapping[str, str]) -> grpc.StatusCode:
    """What the first call a driver makes gets at ``address``, sending ``header``: OK,
    UNAUTHENTICATED (a cluster that asks for a token), or what else gRPC says."""
    client = address.startswith("ray://")
    # Ray's own channels go around an HTTP proxy unless RAY_grpc_enable_http_proxy says otherwise.
    proxy = int(os.environ.get("RAY_grpc_enable_http_proxy", "0").lower() in ("1", "true"))
    with grpc.insecure_channel(address.removeprefix("ray://"), options=[("grpc.enable_http_proxy", proxy)]) as channel:
        try:
            if client:
                ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(
                    ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING),
                    timeout=CONNECT_SECONDS, metadata=list(header.items()))
            else:
                gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                    gcs_service_pb2.GetClusterIdRequest(), timeout=CONNECT_SECONDS, metadata=list(header.items()))
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def _authenticate(address: str, named: str) -> None:
    """Token authentication for a cluster that asks for a token, settled before ``ray.init``,
    which would try a missing or wrong token for 20 s, a warning a second. With RAY_AUTH_MODE
    unset, a cluster on this machine gets this machine's token, as Ray's own `auto` gives it one
    it finds here (`ray start` read the token from the same place); a cluster elsewhere gets one
    only where RAY_AUTH_MODE=token says so, as with Ray itself, so a token is never sent to an
    address it may not belong to. Otherwise one paragraph says what to set."""
    mode = os.environ.get(AUTH_MODE)
    try:  # token authentication came with Ray 2.52
        from ray._private.authentication.authentication_token_setup import _enable_token_auth
        from ray._raylet import AuthenticationTokenLoader
    except ImportError:
        why = f"Ray {ray.__version__} here cannot send one (token authentication came with Ray 2.52)"
    else:
        try:
            header = AuthenticationTokenLoader.instance().get_token_for_http_header(ignore_auth_mode=True)
        except ray.exceptions.AuthenticationError:  # RAY_AUTH_TOKEN_PATH names a file it cannot read
            header = {}
        where = _token_source()
        if not header:
            why = f"this machine has no token (none in {where})"
        elif mode is not None and mode.lower() != "token":
            why = f"{AUTH_MODE} is {mode!r} here"
        elif mode is None and not _here(address):
            why = (f"{AUTH_MODE} is not set here, and without it this machine's token ({where}) goes to a cluster on "
                   "this machine only")
        elif _call(address, header) != grpc.StatusCode.OK:
            why = f"it refused the token in {where}"
        else:
            if mode is None:
                _enable_token_auth()  # for this process and what it starts, as ray.init does for a cluster found here
            return
    raise InitbenchError(
        f"Could not connect to the Ray cluster at {named}: it uses token authentication, and {why}. Set "
        f"{AUTH_MODE}=token here and give the cluster's token: {AUTH_TOKEN}=<token> (`ray get-auth-token` on its head "
        f"prints it), or a copy of the head's ~/.ray/auth_token in ~/.ray/auth_token here (or in the file "
        f"{AUTH_TOKEN_PATH} names).")


def _auth_mode_set_back(mode: str | None) -> None:
    """RAY_AUTH_MODE as it was before a run that turned token authentication on for a cluster
    on this machine (``_authenticate``): under the Python API a later run in the process may
    go to a cluster elsewhere, which must not get this machine's token unasked."""
    if os.environ.get(AUTH_MODE) == mode:
        return
    if mode is None:
        os.environ.pop(AUTH_MODE, None)
    else:
        os.environ[AUTH_MODE] = mode
    with suppress(ImportError):  # Ray caches the mode it read: read again, as _enable_token_auth does
        from ray._raylet import Config

        Config.initialize("")


def _token_source() -> str:
    """Where Ray reads its token, in words: RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH
    names, else ~/.ray/auth_token (Ray's order)."""
    if os.environ.get(AUTH_TOKEN):
        return AUTH_TOKEN
    if path := os.environ.get(AUTH_TOKEN_PATH):
        return f"{path}, from {AUTH_TOKEN_PATH}"
    return "~/.ray/auth_token"


def _here(address: str) -> bool:
    """Whether ``address``'s host is this machine: one of its own addresses can be bound."""
    host = address.removeprefix("ray://").rpartition(":")[0]
    try:
        with socket.socket() as s:
            s.bind((host, 0))
    except OSError:
        return False
    return True


def _unreachable(named: str, why: str, source: str) -> InitbenchError:
    return InitbenchError(
        f"Could not connect to a Ray cluster at {named}: {why}. Start one with `ray start --head` on the head "
        "machine (and `ray start --address=HEAD:6379` on each other machine), then give --ray-address auto on the "
        "head, or HEAD:6379 on another machine." + ADVICE.get(source, ""))


@contextmanager
def _runtime_folder() -> Iterator[Path]:
    """A folder of its own for the runtime this run starts, watched by ``raywatch``: when this
    process closes the pipe (after ray.shutdown) or dies, whatever of the runtime still runs is
    ended and the folder removed. Ray would leave its agents running for a minute after a
    SIGKILL, and its folders (/tmp/ray/session_*) for ever."""
    parent = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()  # where Ray itself would put it
    try:
        if (free := shutil.disk_usage(parent).free) < RUNTIME_ROOM:  # Ray would wait half a minute for files it
            raise OSError(errno.ENOSPC, f"the disk is full ({free / 2**20:.1f} MiB free)")  # cannot write
        folder = Path(tempfile.mkdtemp(prefix="initbench-ray-", dir=parent))
    except OSError as e:
        raise InitbenchError(f"Cannot start a Ray runtime in {parent}: {e.strerror}. Set RAY_TMPDIR to a writable "
                             f"folder with {RUNTIME_ROOM // 2**20} MiB free or more (Ray keeps its logs, sockets and "
                             "spilled objects there while the run lasts), or make room there.") from None
    watcher = subprocess.Popen([sys.executable, "-m", "initbench.executors.raywatch", str(folder)],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # a terminal's Ctrl-C is sent to this process group only
    try:
        yield folder
    finally:
        watcher.stdin.close()  # type: ignore[union-attr]
        with suppress(subprocess.TimeoutExpired):  # else it goes on alone
            watcher.wait(raywatch.LIMIT + 1)


@contextmanager
def _ray(**options: Any) -> Iterator[None]:
    """ray.init, then ray.shutdown (after a failed start too: what it started ends), with this
    process's own signal handlers throughout. ray.init would set SIGTERM's to sys.exit, and an
    exception raised anywhere in ray.init leaves Ray half started (the process crashes at exit):
    while it runs, a signal is held back, and delivered once it is done. Setting the handlers
    again after it also takes SIGTERM back from Ray's C++ core where it took it (see
    executors.connect). What a handler raises in a Ray call (errors.Terminated for SIGTERM)
    reaches the caller as a bare KeyboardInterrupt, as if from Ctrl-C: it is remembered here
    and raised as it was."""
    main = threading.current_thread() is threading.main_thread()  # the only thread that sets handlers
    kept = {signum: handler for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
            if main and (handler := signal.getsignal(signum)) is not None}  # None: set outside Python
    held: list[int] = []
    raised: list[BaseException] = []

    def remembered(handler: Callable[[int, Any], Any]) -> Callable[[int, Any], Any]:
        def handle(signum: int, frame: Any) -> Any:
            try:
                return handler(signum, frame)
            except BaseException as e:
                raised.append(e)
                raise
        return handle

    def set_handlers(handlers: Mapping[int, Any]) -> None:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)

    set_handlers({signum: lambda signum, frame: held.append(signum) for signum in kept})
    # ray.init's own SIGTERM handler (sys.exit) is not set: a private function of Ray's, so
    # where a version lacks it, the handlers set again below take SIGTERM back all the same.
    sets_handler = getattr(ray_utils, "set_sigterm_handler", None)
    if sets_handler is not None:
        ray_utils.set_sigterm_handler = lambda handler: None
    try:
        try:
            ray.init(logging_level=logging.ERROR, log_to_driver=False, **options)
        finally:
            if sets_handler is not None:
                ray_utils.set_sigterm_handler = sets_handler
            set_handlers({signum: remembered(h) if callable(h) else h for signum, h in kept.items()})
            for signum in held[:1]:  # now, to its own handler
                signal.raise_signal(signum)
        yield
    except KeyboardInterrupt as e:
        if type(e) is KeyboardInterrupt and raised:
            raise raised[-1] from None
        raise
    finally:
        try:
            ray.shutdown()
        finally:
            set_handlers(kept)


class RayExecutor:
    data_device = torch.device("cpu")  # the images go to the object store from here

    def __init__(self, placement: Placement, activity: Activity, shared: bool) -> None:
        device, cpus = placement.device, placement.settings.cpus_per_task
        self.engine, self.threads, self.activity = placement.engine, cpus, activity
        self.shared = shared  # a runtime that outlives the run (joined, not started or connected to by it)
        resources = ray.cluster_resources()
        gpus = placement.settings.gpus_per_task
        if gpus is None:  # a GPU a task when the run asks for CUDA, or may use it and the cluster has some
            gpus = 1.0 if device == "cuda" or (device == "auto" and resources.get("GPU")) else 0.0
        self.gpus = gpus
        kind, each = ("GPU", gpus) if gpus else ("CPU", cpus)
        self.slots = int(resources.get(kind, 0) // each)
        if not self.slots:
            raise InitbenchError(
                f"The Ray cluster has {resources.get(kind, 0):g} {kind}s, not enough for one task of {each:g} "
                f"({'--gpus-per-task' if gpus else '--cpus-per-task'}). Add machines with "
                f"{'GPUs' if gpus else 'more CPUs'} to the cluster, or ask less of each task.")
        self.device_type = "cuda" if gpus else ("cpu" if device == "auto" else device)
        self.options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus,
                                        "max_retries": MAX_RETRIES}
        nodes = sum(1 for node in ray.nodes() if node["Alive"])
        self.description = (f"Ray cluster of {plural(nodes, 'node')}: {plural(self.slots, 'task')} at once, "
                            f"each on {each:g} {kind}{'s' * (each > 1)}, {self.engine} engine on {self.device_type}")

    def _measure(self, what: str, settings: Sequence[TrainSettings]) -> tuple[dict[TrainSettings, Any], float]:
        """``what`` (``fit`` or ``step``) for each of ``settings``, measured by a task on a
        worker; and the share of its node's memory one task may take."""
        self.activity.stage("Measuring a Ray worker: " + ("how many models a chunk can hold" if what == "fit"
                                                         else "how fast a step is"))
        try:
            found, node = ray.get(ray.remote(_measure).options(**self.options).remote(
                what, list(settings), self.device_type, self.threads))
        except ray.exceptions.RayError as e:  # the worker's own error (a model too large for it), as it said it
            raise InitbenchError(f"On a Ray worker: {_reason(e)}") from None
        if self.gpus:
            share = min(self.gpus, 1.0)
        else:
            cpus = next(n["Resources"].get("CPU", 1) for n in ray.nodes() if n["NodeID"] == node)
            share = self.options["num_cpus"] / cpus
        return dict(zip(settings, found)), share

    def max_models(self, settings: Sequence[TrainSettings]) -> dict[TrainSettings, int]:
        fits, share = self._measure("fit", settings)
        return {s: max(1, int(n * share)) for s, n in fits.items()}

    def step_seconds(self, settings: Sequence[TrainSettings]) -> dict[TrainSettings, StepTime]:
        return self._measure("step", settings)[0]

    def train(self, chunks: Mapping[DataKey, list[list[Job]]], load: Callable[[DataKey], Splits], keep: Keep,
              activity: Activity) -> Iterator[Finished]:
        attempts = ray.remote(num_cpus=0)(Attempts).remote()
        ray.get(attempts.ready.remote())  # up before any task: a task's start is recorded before its work
        task = ray.remote(_train_chunk).options(**self.options)
        code = ray.put(user.shipment())  # users' schemes by content: their files need not be on the workers
        pending: dict[ray.ObjectRef, tuple[int, list[Job], int]] = {}  # task -> (number, chunk, model-batches)
        for data_key, group in chunks.items():
            splits = load(data_key)
            images = ray.put(tuple(getattr(splits, f).numpy() for f in Splits.__dataclass_fields__))
            for chunk in group:
                o = chunk[0].settings.optim
                steps = len(chunk) * o.epochs * data.batches(chunk[0].settings, len(splits.y_train))
                pending[task.remote(len(pending), chunk, images, self.engine, keep, self.device_type, self.threads,
                                    attempts, code)] = (len(pending), chunk, steps)
        n_chunks, n_jobs = len(pending), sum(len(chunk) for _, chunk, _ in pending.values())
        done_jobs, failed = 0, []
        activity.advance(0, f"Training on Ray: {plural(n_jobs, 'job')} in {plural(n_chunks, 'chunk')}, "
                            f"{min(n_chunks, self.slots)} at once")
        try:
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                number, chunk, steps = pending.pop(ref)
                what = f"Chunk {number + 1} of {n_chunks} ({plural(len(chunk), 'job')})"
                try:
                    trained, where, seconds, starts = ray.get(ref)
                except ray.exceptions.RayError as e:
                    failed.append((chunk, _reason(e)))
                    activity.note(f"{what} failed: {failed[-1][1]}")
                    continue
                if len(starts) > 1:
                    died = ", ".join(f"pid {pid} on {host}" for host, pid in starts[:-1])
                    activity.note(f"{what} was run again after its worker died ({died}); it finished on "
                                  f"{starts[-1][0]} at attempt {len(starts)}.")
                done_jobs += len(chunk)
                activity.advance(steps, f"Training on Ray: {done_jobs:,} of {n_jobs:,} jobs, "
                                        f"{n_chunks - len(pending)} of {plural(n_chunks, 'chunk')} done")
                yield Finished(trained, where, seconds)
        finally:
            # Stopped early (an error here, Ctrl-C): free the cluster. Only a runtime that outlives the run needs it;
            # otherwise leaving it ends the tasks (a cluster ends a gone driver's), and cancelling races with their
            # replies: Ray then aborts the process on a failed check ("Tried to complete task that was not pending").
            for ref in pending if self.shared else ():
                ray.cancel(ref, force=True)
        if failed:
            jobs = sum(len(chunk) for chunk, _ in failed)
            kept = f"; the other {plural(n_jobs - jobs, 'job')} are in the store" if jobs < n_jobs else ""
            raise InitbenchError(
                f"{plural(len(failed), 'chunk')} of {n_chunks} ({plural(jobs, 'job')}) failed on the Ray cluster"
                f"{kept}. First failure: {failed[0][1]} Run the same command again to train what is missing.")


class Attempts:
    """Where each chunk was started: a chunk started twice was run again after its worker died."""

    def __init__(self) -> None:
        self.starts: dict[int, list[tuple[str, int]]] = {}

    def ready(self) -> None:
        pass

    def start(self, number: int, host: str, pid: int) -> list[tuple[str, int]]:
        self.starts.setdefault(number, []).append((host, pid))
        return self.starts[number]


def _reason(error: ray.exceptions.RayError) -> str:
    """A failed task in a sentence: the worker's own error where it raised one."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, InitbenchError):
        return str(cause)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}."
    if isinstance(error, ray.exceptions.WorkerCrashedError):
        return f"its worker died {MAX_RETRIES + 1} times."
    return f"{type(error).__name__}: {str(error).splitlines()[0]}"


# --- what runs on the workers


def _measure(what: str, settings: list[TrainSettings], device_name: str, threads: int) -> tuple[list[Any], str]:
    torch.set_num_threads(threads)  # a reused worker keeps the threads of its first task otherwise
    device = engines.resolve_device(device_name)
    measure = engines.models_that_fit if what == "fit" else engines.step_seconds
    return [measure(s, device) for s in settings], ray.get_runtime_context().get_node_id()


def _train_chunk(number: int, chunk: list[Job], images: tuple, engine: str, keep: Keep, device_name: str,
                 threads: int, attempts: Any, code: user.Shipment) -> tuple[list[JobResult], Any, float,
                                                                             list[tuple[str, int]]]:
    starts = ray.get(attempts.start.remote(number, socket.gethostname(), os.getpid()))
    user.receive(code)
    torch.set_num_threads(threads)
    device = engines.resolve_device(device_name)
    with warnings.catch_warnings():  # the object store's arrays are read-only; training never writes its images
        warnings.simplefilter("ignore", UserWarning)
        splits = Splits(*(torch.from_numpy(a) for a in images)).to(device)
    tic = time.perf_counter()
    trained = [r for part in engines.train_chunks([chunk], splits, device, engine, keep=keep) for r in part]
    return trained, machine(engine, device), time.perf_counter() - tic, starts
