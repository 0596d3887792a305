"""A cluster begun by `ray start --head`, as a user's is: token authentication on (its token in
~/.ray/auth_token, here under a home folder of the module's own), its address recorded under
RAY_TMPDIR. A run joins it by --ray-address auto, by RAY_ADDRESS or by default; a run that
lacks the cluster's token, or has another, is refused in seconds in one paragraph that says
what to set; so is an address where no cluster answers, without Ray's own warnings. Real
processes throughout: `ray start`, the command line in a subprocess."""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from initbench.executors import raywatch

from .test_faults_ray import NOISE
from .test_sweep import rows, sweep_file

# What Ray's C++ core prints while it retries a cluster that refuses it.
RETRIES = ("gcs_client.cc", "InvalidAuthToken", "Failed to get cluster ID")
# `ray start --head`'s ports, each given a free one: a fixed default (6379, 10001, ...) may be
# another runtime's on this machine.
PORTS = ("--port", "--node-manager-port", "--object-manager-port", "--ray-client-server-port",
         "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
         "--metrics-export-port")


@dataclass(frozen=True)
class Head:
    folder: Path  # RAY_TMPDIR: the cluster's files, and its record, below it
    home: Path  # HOME: ~/.ray/auth_token, the token `ray start` read
    address: str  # HOST:PORT, as `ray start` recorded it

    def env(self, **variables: str) -> dict[str, str]:
        """This process's environment less Ray's own variables, on this head's machine."""
        kept = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        return kept | {"HOME": str(self.home), "RAY_TMPDIR": str(self.folder)} | variables


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    """`ray start --head` with a token of its own, on free ports, in a folder of its own (short:
    Ray's sockets live below it); ended after the module by ending the processes that hold files
    in that folder, which are the cluster's alone (`ray stop` would end every Ray process of this
    machine, other runs' and a user's own cluster too), and removing it."""
    if shutil.which("ray") is None:
        pytest.skip("needs Ray's `ray` command")
    folder = Path(tempfile.mkdtemp(prefix="ibhead-", dir="/tmp"))
    home = folder / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    options = [str(part) for pair in zip(PORTS, _free_ports(len(PORTS))) for part in pair]
    try:
        started = subprocess.run(["ray", "start", "--head", *options, "--include-dashboard", "false", "--num-cpus",
                                  "2", "--disable-usage-stats"], env=Head(folder, home, "").env(),
                                 capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        yield Head(folder, home, (folder / "ray" / "ray_current_cluster").read_text().strip())
    finally:
        raywatch.stop(folder, {os.getpid()})


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """One cell of 2 schemes x 2 seeds: 4 jobs."""
    return sweep_file(tmp_path_factory.mktemp("grid"), 'hidden = ["32"]', data_dir=str(data_dir))


def _sweep(grid: Path, out: Path, env: dict[str, str], *options: str) -> tuple[subprocess.CompletedProcess, float]:
    tic = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "initbench", "sweep", str(grid), "--out", str(out), "--executor",
                           "ray", *options], env=env, capture_output=True, text=True, timeout=300)
    return done, time.monotonic() - tic


def _quiet(stderr: str) -> bool:
    return not any(noise in stderr for noise in (*NOISE, *RETRIES))


@pytest.mark.parametrize("how", ["--ray-address auto", "RAY_ADDRESS", "by default"])
def test_a_run_joins_a_cluster_that_ray_start_began_with_token_authentication(head: Head, grid: Path,
                                                                             tmp_path: Path, how: str) -> None:
    """On the head, as `ray start` told the user to connect: this machine's token is the cluster's."""
    options, variables = {"--ray-address auto": (["--ray-address", "auto"], {}),
                          "RAY_ADDRESS": ([], {"RAY_ADDRESS": head.address}),
                          "by default": ([], {})}[how]
    done, seconds = _sweep(grid, tmp_path / "out", head.env(**variables), *options)
    assert done.returncode == 0, done.stderr
    assert "Connecting to Ray at" in done.stderr and "Ray cluster of 1 node" in done.stderr, done.stderr
    assert _quiet(done.stderr), done.stderr
    assert len(rows(tmp_path / "out")) == 4
    print(f"{how}: {seconds:.1f} s")


@pytest.mark.parametrize(("variables", "why"), [
    ({"HOME": "elsewhere"}, "this machine has no token (none in ~/.ray/auth_token)"),
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not-the-token"}, "it refused the token in RAY_AUTH_TOKEN"),
    ({"RAY_AUTH_MODE": "disabled"}, "RAY_AUTH_MODE is 'disabled' here"),
], ids=["no token", "another token", "authentication disabled"])
def test_a_run_without_the_clusters_token_is_told_what_to_set_in_seconds(head: Head, grid: Path, tmp_path: Path,
                                                                          variables: dict[str, str], why: str) -> None:
    """Ray itself would retry for 20 s, a warning a second, and then blame port 6379."""
    if variables.get("HOME") == "elsewhere":  # a home without a token
        (tmp_path / "home").mkdir()
        variables = variables | {"HOME": str(tmp_path / "home")}
    done, seconds = _sweep(grid, tmp_path / "out", head.env(RAY_ADDRESS=head.address, **variables))
    said = " ".join(done.stderr.split())
    assert done.returncode == 1, done.stderr
    assert (f"Error: Could not connect to the Ray cluster at {head.address} (from RAY_ADDRESS): it uses token "
            f"authentication, and {why}. Set RAY_AUTH_MODE=token here and give the cluster's token: "
            "RAY_AUTH_TOKEN=<token>") in said, done.stderr
    assert said.count("Error:") == 1 and _quiet(done.stderr), done.stderr
    assert not (tmp_path / "out").exists()
    print(f"refused in {seconds:.1f} s")  # the command line's start and torch's import included
    assert seconds < 15


def test_an_address_where_no_cluster_answers_is_refused_quietly_in_seconds(grid: Path, tmp_path: Path) -> None:
    """A private address no machine holds: a firewall drops what is sent (nothing answers), or a
    proxy answers for it (not as a Ray cluster); Ray itself retried for 25 s, warning each second."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done, seconds = _sweep(grid, tmp_path / "out", kept, "--ray-address", "10.255.255.1:6379")
    said = " ".join(done.stderr.split())
    assert done.returncode == 1, done.stderr
    assert "Error: Could not connect to a Ray cluster at 10.255.255.1:6379: " in said, done.stderr
    assert said.count("Error:") == 1 and _quiet(done.stderr), done.stderr
    assert not (tmp_path / "out").exists()
    print(f"refused in {seconds:.1f} s: {said}")
    assert seconds < 15
