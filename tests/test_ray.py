"""Sweeps and runs on Ray: a real local Ray runtime (2 CPUs) started by these tests, real
worker processes training real chunks, and the same store the local executor writes."""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import torch

from initbench.storage import store

from .test_cli import assert_clean_error
from .test_sweep import NUMBERS, rows, sweep, sweep_file

# A task's numbers equal this process's when it trains with as many threads (MKL's GEMMs
# sum in an order that depends on the thread count); with fewer they agree to rounding.
THREADS = torch.get_num_threads()


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray runtime for this module: the command line joins it (and leaves it running)."""
    ray.init(num_cpus=max(2, THREADS), logging_level=logging.ERROR, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, Path]:
    """The small grid (2 cells x 2 schemes x 2 seeds) and its folder, swept by the local executor."""
    tmp = tmp_path_factory.mktemp("grid")
    path = sweep_file(tmp, data_dir=str(data_dir), train_samples=3000)
    result = sweep(str(path), "--out", str(tmp / "local"), "--format", "csv", "--set", "save_weights=true")
    assert result.exit_code == 0, result.output
    return path, tmp / "local"


@pytest.fixture(scope="module")
def slow_grid(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, Path]:
    """One cell of 4 jobs whose chunks train for about a second (long enough to be killed
    in the middle), and its folder, swept by the local executor."""
    tmp = tmp_path_factory.mktemp("slow")
    path = sweep_file(tmp, 'hidden = ["64x4"]', data_dir=str(data_dir), train_samples=12000, epochs=2)
    result = sweep(str(path), "--out", str(tmp / "local"), "--format", "csv")
    assert result.exit_code == 0, result.output
    return path, tmp / "local"


def on_ray(*args: str):
    return sweep(*args, "--executor", "ray", "--cpus-per-task", str(THREADS))


def test_a_sweep_on_ray_equals_the_local_sweep(cluster: None, grid: tuple[Path, Path], tmp_path: Path) -> None:
    path, local = grid
    out = tmp_path / "ray"
    result = on_ray(str(path), "--out", str(out), "--format", "csv", "--set", "save_weights=true")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "Ray cluster of 1 node" in said and "In the store: 0; to train: 8" in said
    assert "Training on Ray: 8 of 8 jobs" in said
    assert rows(out) == rows(local)  # every number, bit for bit
    with store.open_store(out, write=False) as st:
        frame = st.frame()
    assert set(frame["device_name"].str.endswith(f"({THREADS} threads)")) == {True}
    # the driver wrote each chunk's weights, named by key, as the local sweep did
    assert sorted(p.name for p in (out / "weights").iterdir()) == sorted(p.name for p in (local / "weights").iterdir())
    assert (out / "cells.csv").read_text() == (local / "cells.csv").read_text()


def test_tasks_with_fewer_threads_agree_to_rounding(cluster: None, grid: tuple[Path, Path], tmp_path: Path) -> None:
    """Two one-thread tasks at once: the same jobs, and the losses equal to rounding."""
    path, local = grid
    out = tmp_path / "ray1"
    result = sweep(str(path), "--out", str(out), "--executor", "ray", "--cpus-per-task", "1")
    assert result.exit_code == 0, result.output
    assert "2 tasks at once, each on 1 CPU" in " ".join(result.output.split())
    here, there = rows(local), rows(out)
    assert [r[:6] for r in here] == [r[:6] for r in there]  # key, identity, name, scheme, seed, settings
    for a, b in zip(here, there):
        losses_a, losses_b = (torch.frombuffer(bytearray(r[-1]), dtype=torch.float32) for r in (a, b))
        torch.testing.assert_close(losses_b, losses_a, rtol=1e-4, atol=1e-5)
        assert abs(a[6] - b[6]) <= 0.002  # validation accuracy: a few images at most


def test_a_resumed_ray_sweep_trains_only_what_is_missing(cluster: None, grid: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    path, local = grid
    out = tmp_path / "resumed"
    first = on_ray(str(path), "--out", str(out), "--set", "seeds=[1]")
    assert first.exit_code == 0, first.output
    before = rows(out, NUMBERS + ["chunk", "finished"])
    assert len(before) == 4
    result = on_ray(str(path), "--out", str(out), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert "In the store: 4; to train: 4" in " ".join(result.output.split())
    assert set(before) <= set(rows(out, NUMBERS + ["chunk", "finished"]))  # not retrained
    assert rows(out) == rows(local)


def _kill_chunk_tasks(killed: list[int], deadline: float, times: int = 1) -> None:
    """SIGKILL the first ``times`` worker processes seen training a chunk, each once it has
    run for a moment; a 0 appended to ``killed`` stops it."""
    seen: dict[int, float] = {}
    while time.monotonic() < deadline and len(killed) < times and 0 not in killed:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                title = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::_train_chunk"):
                first = seen.setdefault(int(entry), time.monotonic())
                if int(entry) not in killed and time.monotonic() - first > 0.2:  # training, its start recorded
                    os.kill(int(entry), signal.SIGKILL)
                    killed.append(int(entry))
        time.sleep(0.01)


def test_a_task_whose_worker_is_killed_is_run_again_and_said(cluster: None, slow_grid: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    path, local = slow_grid
    out = tmp_path / "killed"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_chunk_tasks, args=(killed, time.monotonic() + 120))
    killer.start()
    try:
        result = on_ray(str(path), "--out", str(out))  # one chunk, of about a second
    finally:
        killed.append(0)  # stops the killer if it found nothing
        killer.join()
    assert killed[0] != 0, "no chunk task was seen running"
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert f"was run again after its worker died (pid {killed[0]} on" in said and "at attempt 2" in said, said
    assert rows(out) == rows(local)  # nothing lost, nothing trained twice into the store


def test_a_chunk_whose_workers_keep_dying_is_reported(cluster: None, slow_grid: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    """One cell, so one chunk (one task at once); its worker killed at each of its 1 + 3
    attempts: exit 1, one paragraph saying what failed and to run again, nothing left behind."""
    path, _ = slow_grid
    out = tmp_path / "failing"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_chunk_tasks, args=(killed, time.monotonic() + 300, 4))
    killer.start()
    try:
        result = on_ray(str(path), "--out", str(out))
    finally:
        killed.append(0)
        killer.join()
    assert len(killed) == 5, killed  # 4 kills, then the stop
    assert_clean_error(result, "1 chunk of 1 (4 jobs) failed on the Ray cluster. First failure: its worker died "
                       "4 times. Run the same command again to train what is missing.")
    assert not out.exists()  # no job was committed: the sweep's new folder is removed


def test_compare_on_ray_equals_compare_here(cluster: None, data_dir: Path, tmp_path: Path) -> None:
    from .test_cli import compare

    outs = {}
    for executor in ("local", "ray"):
        outs[executor] = tmp_path / executor
        result = compare("rule", "zeros", "--epochs", "1", "--train-samples", "600", "--seeds", "2",
                         "--data-dir", str(data_dir), "--out", str(outs[executor]), "--executor", executor,
                         "--cpus-per-task", str(THREADS), "--format", "csv")
        assert result.exit_code == 0, result.output
    assert rows(outs["ray"]) == rows(outs["local"])
    assert (outs["ray"] / "runs.csv").read_text() == (outs["local"] / "runs.csv").read_text()
    assert "Ray cluster of 1 node" in (outs["ray"] / "run.json").read_text()


def test_a_task_that_needs_a_gpu_the_cluster_lacks_is_a_clear_error(cluster: None, grid: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    path, _ = grid
    result = sweep(str(path), "--out", str(tmp_path / "gpu"), "--executor", "ray", "--gpus-per-task", "0.5")
    assert_clean_error(result, "The Ray cluster has 0 GPUs, not enough for one task of 0.5 (--gpus-per-task)")
    assert not (tmp_path / "gpu").exists()


@pytest.mark.parametrize(("options", "fragment"), [
    (["--gpus-per-task", "2"], "must be a number from 0 to 1 (a task trains on one GPU; 0.25 lets four share one)"),
    (["--ray-address", "somewhere"], "must be auto, local, HOST:PORT or ray://HOST:PORT"),
    (["--set", "device=\"cuda:1\""], "on Ray, each task is given its GPU by Ray"),
    (["--set", "device=cpu", "--gpus-per-task", "1"], "the tasks would hold GPUs and not use them"),
    (["--cpus-per-task", "0"], "Invalid --cpus-per-task: must be at least 1"),
])
def test_ray_options_are_checked_before_any_work(grid: tuple[Path, Path], tmp_path: Path, options: list[str],
                                                fragment: str) -> None:
    path, _ = grid
    result = sweep(str(path), "--out", str(tmp_path / "bad"), "--executor", "ray", *options)
    assert_clean_error(result, fragment, code=2)
    assert not (tmp_path / "bad").exists()


def test_an_address_where_no_cluster_listens_is_a_clear_error(grid: tuple[Path, Path], tmp_path: Path) -> None:
    path, _ = grid
    result = subprocess.run([sys.executable, "-m", "initbench", "sweep", str(path), "--out", str(tmp_path / "x"),
                             "--executor", "ray", "--ray-address", "127.0.0.1:9"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Could not connect to a Ray cluster at 127.0.0.1:9" in " ".join(result.stderr.split())
    assert "ray start --head" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_without_ray_installed_the_executor_says_how_to_install_it(grid: tuple[Path, Path], tmp_path: Path) -> None:
    """Ray made unimportable (as where it is not installed): a usage error before any work."""
    path, _ = grid
    code = ("import sys; sys.modules['ray'] = None; sys.argv = ['initbench', 'sweep', sys.argv[1], '--out', "
            "sys.argv[2], '--executor', 'ray']; from initbench.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "x")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    said = " ".join(result.stderr.split())
    assert "--executor ray needs Ray, which is not installed here" in said
    assert "pip install 'initbench[ray]'" in said and "Traceback" not in said
    assert not (tmp_path / "x").exists()


def test_a_workers_own_error_reaches_the_user_and_leaves_no_folder(cluster: None, grid: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    """A model too large for the worker: said as the worker said it, no traceback, nothing made."""
    path, _ = grid
    result = on_ray(str(path), "--out", str(tmp_path / "huge"), "--set", "hidden=200000x4")
    assert_clean_error(result, "On a Ray worker: One model with these settings needs about", "GiB")
    assert not (tmp_path / "huge").exists()
