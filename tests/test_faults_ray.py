"""Ray misconfigured, and Ray runs stopped: an address where no cluster answers (given, from
RAY_ADDRESS, or recorded by a `ray start` long gone) is refused in seconds; a port out of range
is a usage error before torch loads; SIGTERM and Ctrl-C end a run on Ray as they end a local
one; and a runtime initbench starts does not outlive it, even killed with SIGKILL. Real
processes throughout: the command line in a subprocess, the Ray runtime it starts, /proc."""

import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_sweep import sweep_file

# What Ray prints when its C++ core handles a signal or fails a check, and Python's tracebacks.
NOISE = ("***", "logging.cc", "Check failed", "Traceback", "StackTrace", "Aborted", "core dumped")


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """RAY_TMPDIR for the runs of a test: where Ray (and initbench's runtime) keep their files,
    away from other runtimes on this machine. Short: Ray's sockets live below it (107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="ibray-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def grid(tmp_path: Path, data_dir: Path) -> Path:
    return sweep_file(tmp_path, data_dir=str(data_dir))


def _env(ray_tmp: Path, **variables: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": str(ray_tmp)} | variables


def _sweep(grid: Path, out: Path, ray_tmp: Path, *options: str, timeout: float = 60,
           **variables: str) -> tuple[subprocess.CompletedProcess, float]:
    """The command line in a subprocess, and its seconds."""
    tic = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "initbench", "sweep", str(grid), "--out", str(out),
                           "--executor", "ray", *options], env=_env(ray_tmp, **variables), capture_output=True,
                          text=True, timeout=timeout)
    return done, time.monotonic() - tic


def _assert_refused(done: subprocess.CompletedProcess, seconds: float, out: Path, *fragments: str) -> None:
    said = " ".join(done.stderr.split())
    assert done.returncode == 1, done.stderr
    assert "Error: Could not connect to a Ray cluster at" in said, done.stderr
    for fragment in fragments:
        assert fragment in said, done.stderr
    assert not any(noise in done.stderr for noise in NOISE), done.stderr
    assert not out.exists()
    print(f"refused in {seconds:.1f} s")  # the command line's start and torch's import included
    assert seconds < 30


# --- addresses


def test_a_ray_address_variable_where_nothing_listens_is_refused_in_seconds(grid: Path, tmp_path: Path,
                                                                            ray_tmp: Path) -> None:
    """Ray itself would retry for minutes, deaf to SIGTERM."""
    done, seconds = _sweep(grid, tmp_path / "x", ray_tmp, RAY_ADDRESS="127.0.0.1:1")
    _assert_refused(done, seconds, tmp_path / "x", "127.0.0.1:1 (from RAY_ADDRESS)", "unset RAY_ADDRESS")


def test_a_stale_record_of_a_cluster_here_is_refused_in_seconds(grid: Path, tmp_path: Path, ray_tmp: Path) -> None:
    """`ray start` records its address; a run without one joins that cluster, if it still runs."""
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")
    done, seconds = _sweep(grid, tmp_path / "x", ray_tmp)
    _assert_refused(done, seconds, tmp_path / "x", "(the cluster `ray start` recorded on this machine)",
                    "`ray stop` clears its record")


def test_auto_where_no_cluster_runs_is_refused_in_initbench_words(grid: Path, tmp_path: Path, ray_tmp: Path) -> None:
    if "gcs_server" in _commands():
        pytest.skip("a Ray runtime runs on this machine (another test's): auto would find it")
    done, seconds = _sweep(grid, tmp_path / "x", ray_tmp, "--ray-address", "auto")
    _assert_refused(done, seconds, tmp_path / "x", "at auto: no Ray cluster runs on this machine")
    assert "--address` flag" not in done.stderr  # Ray's own option, not initbench's


@pytest.fixture
def not_ray() -> Iterator[int]:
    """The port of a server that is not a Ray cluster (an HTTP server, as the dashboard's is)."""
    server = http.server.ThreadingHTTPServer(("", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_an_address_where_something_else_listens_is_refused_in_seconds(grid: Path, tmp_path: Path, ray_tmp: Path,
                                                                       not_ray: int) -> None:
    done, seconds = _sweep(grid, tmp_path / "x", ray_tmp, "--ray-address", f"127.0.0.1:{not_ray}")
    _assert_refused(done, seconds, tmp_path / "x", "something listens there, but it is not a Ray cluster")


@pytest.mark.parametrize(("options", "variables", "fragment"), [
    (["--ray-address", "127.0.0.1:99999"], {}, "Invalid --ray-address: the port must be from 1 to 65535"),
    (["--ray-address", "ray://head:0"], {}, "Invalid --ray-address: the port must be from 1 to 65535"),
    ([], {"RAY_ADDRESS": "127.0.0.1:65536"}, "RAY_ADDRESS ('127.0.0.1:65536')"),
    (["--ray-address", "auto"], {"RAY_ADDRESS": "http://127.0.0.1:8265"}, "not the dashboard's http:// address"),
])
def test_a_ray_address_that_cannot_be_one_is_a_usage_error_before_torch_loads(
        grid: Path, tmp_path: Path, ray_tmp: Path, options: list[str], variables: dict[str, str],
        fragment: str) -> None:
    code = ("import sys; from initbench.cli import main; sys.argv = ['initbench', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert 'torch' not in sys.modules; raise")
    out = tmp_path / "x"
    done = subprocess.run([sys.executable, "-c", code, "sweep", str(grid), "--out", str(out), "--executor", "ray",
                           *options], env=_env(ray_tmp, **variables), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.split())
    assert "Error:" in said and fragment in said and "Traceback" not in said, done.stderr
    assert not out.exists()


def test_a_ray_folder_that_cannot_be_made_is_said(grid: Path, tmp_path: Path, ray_tmp: Path) -> None:
    blocker = ray_tmp / "a-file"
    blocker.write_text("")
    done, _ = _sweep(grid, tmp_path / "x", ray_tmp, RAY_TMPDIR=str(blocker))
    assert done.returncode == 1, done.stderr
    said = " ".join(done.stderr.split())
    assert (f"Error: Cannot start a Ray runtime in {blocker}: Not a directory. Set RAY_TMPDIR to a writable folder"
            in said), done.stderr
    assert not any(noise in done.stderr for noise in NOISE), done.stderr
    assert not (tmp_path / "x").exists()


# --- stopping a run on a runtime it started


def _started(pid: int) -> str:
    """A process's start time (against a reused pid), '' if it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return ""
    return "" if fields[0] in "ZX" else fields[19]


def _descendants(root: int) -> dict[int, str]:
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = _started(pid)
        todo += children.get(pid, [])
    return found


def _commands() -> set[str]:
    """The names of the processes running here."""
    names = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            names.add(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return names


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0][-60:].decode()
    except OSError:
        return "(gone)"


def _holding(folder: Path) -> set[int]:
    """The processes with a file open below ``folder``."""
    found = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = [os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd")]
        except OSError:
            continue
        if any(link.startswith(f"{folder}/") for link in links):
            found.add(int(entry))
    return found


def _left(processes: dict[int, str], folder: Path) -> tuple[list[int], list[str]]:
    """What is left of a runtime: its processes still running, and the files in its folder."""
    alive = {pid for pid, started in processes.items() if started and _started(pid) == started}
    return sorted(alive | _holding(folder)), sorted(p.name for p in folder.iterdir())


def _assert_gone(processes: dict[int, str], folder: Path, within: float) -> float:
    """Nothing of the runtime left within ``within`` seconds (what is left is killed, then the
    test fails); the seconds it took."""
    tic = time.monotonic()
    while any(_left(processes, folder)) and time.monotonic() - tic < within:
        time.sleep(0.1)
    pids, files = _left(processes, folder)
    names = [_name(pid) for pid in pids]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert not pids and not files, (f"left running: {names}", files)
    return time.monotonic() - tic


@pytest.fixture
def training(tmp_path: Path, data_dir: Path, ray_tmp: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A sweep on a Ray runtime it started, in a session of its own (its process group is what a
    terminal signals), once its chunks are training; and its stderr. Chunks of tens of seconds."""
    path = sweep_file(tmp_path, 'hidden = ["64x4"]', data_dir=str(data_dir), train_samples=12000, epochs=20)
    log = tmp_path / "stderr"
    with log.open("w") as err:
        run = subprocess.Popen([sys.executable, "-m", "initbench", "sweep", str(path), "--out", str(tmp_path / "out"),
                                "--executor", "ray"], env=_env(ray_tmp), stdout=subprocess.DEVNULL, stderr=err,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "Training on Ray" not in log.read_text():
            assert run.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield run, log
    finally:
        if run.poll() is None:
            run.kill()
        run.wait()


@pytest.mark.parametrize(("signum", "group"), [(signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_ends_a_ray_sweep_as_it_ends_a_local_one(training: tuple[subprocess.Popen, Path], ray_tmp: Path,
                                                          signum: int, group: bool) -> None:
    """SIGTERM to the run (a batch system's), or SIGINT to its process group (a terminal's
    Ctrl-C, which reaches Ray's processes too): exit 128 + N, the interruption said in a line,
    no dump from Ray's C++ core, and the runtime shut down and its folder removed."""
    run, log = training
    processes = _descendants(run.pid)
    tic = time.monotonic()
    if group:
        os.killpg(run.pid, signum)
    else:
        os.kill(run.pid, signum)
    code = run.wait(timeout=60)
    seconds = time.monotonic() - tic
    said = log.read_text()
    assert code == 128 + signum, said
    assert f"Interrupted by {signal.Signals(signum).name}" in said.split("Training on Ray", 1)[1], said
    assert not any(noise in said for noise in NOISE), said
    gone = _assert_gone(processes, ray_tmp, within=5)
    print(f"exit {seconds:.1f} s after {signal.Signals(signum).name}, runtime gone {gone:.1f} s later")
    assert seconds < 30


def test_a_killed_ray_sweep_leaves_no_runtime_behind(training: tuple[subprocess.Popen, Path], ray_tmp: Path) -> None:
    """kill -9 of the run: its Ray processes (the raylet's agents too) end, its folder goes."""
    run, _ = training
    processes = _descendants(run.pid)
    assert len(processes) > 2  # GCS, raylet, agents, workers
    run.kill()
    run.wait()
    gone = _assert_gone(processes, ray_tmp, within=20)
    print(f"runtime gone {gone:.1f} s after SIGKILL")
