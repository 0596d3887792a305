"""The command line under faults a hostile or unlucky user brings: values that only look
valid, data that cannot fit, a full disk, a closed pipe, signals at any moment. Each ends
in one paragraph (or one line) and the documented exit status, and leaves nothing behind."""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT


def initbench(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE} | kwargs
    return subprocess.run([sys.executable, "-m", "initbench", *args], text=True, timeout=timeout, **streams)


def one_paragraph(done: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and "Unexpected error" not in done.stderr, done.stderr
    said = " ".join(done.stderr.split())
    for fragment in fragments:
        assert fragment in said, said


@pytest.mark.parametrize("classes", ["-1,2", "1,-2", "+1,2", "1,2,10"])
def test_a_class_number_is_taken_as_written(classes: str, tmp_path: Path) -> None:
    """"-1" was read as class 1 (its dash ignored, as in a name like "t-shirt")."""
    one_paragraph(initbench("compare", "rule", f"--classes={classes}", "--out", str(tmp_path / "r")), 2,
                  "Invalid --classes")
    config = tmp_path / "c.toml"
    config.write_text(f'classes = "{classes}"\n')
    one_paragraph(initbench("compare", "--config", str(config), "--out", str(tmp_path / "r")), 2,
                  f"'classes' in {config}")
    assert not (tmp_path / "r").exists()


def test_transfer_leaves_task_a_at_least_two_classes(tmp_path: Path) -> None:
    one_paragraph(initbench("transfer", "--classes", "0,1,2,3,4,5,6,7,8,9", "--out", str(tmp_path / "t")), 2,
                  "leaves none for task A")
    one_paragraph(initbench("transfer", "--classes", "0,1,2,3,4,5,6,7,8", "--out", str(tmp_path / "t")), 2,
                  "leaves 9 ankle boot for task A")
    assert not list(tmp_path.iterdir())


def test_a_sweep_config_cannot_ask_to_overwrite(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text('schemes = ["rule"]\noverwrite = true\n[grid]\nlr = [0.001, 0.01]\n')
    one_paragraph(initbench("sweep", str(config), "--out", str(tmp_path / "s")), 2,
                  "a sweep resumes and extends its folder's store")
    assert not (tmp_path / "s").exists()


def test_a_cell_too_large_for_its_data_is_refused_before_any_work(data_dir: Path, tmp_path: Path) -> None:
    """Two classes hold fewer than 10,000 training images; eight hold more: the first cell
    is valid, the second not, and nothing may train before that is said."""
    config = tmp_path / "cells.toml"
    config.write_text(f'schemes = ["rule"]\nepochs = 1\ntrain_samples = 10000\ndata_dir = "{data_dir}"\n'
                      "[grid]\nclasses = [[0, 1, 2, 3, 4, 7, 8, 9], [5, 6]]\n")
    for extra in ((), ("--dry-run",)):
        done = initbench("sweep", str(config), "--out", str(tmp_path / "s"), *extra)
        one_paragraph(done, 2, "In the grid's cell classes = (5, 6): train_samples is 10,000",
                      "images of classes 5 sandal, 6 shirt")
        assert "--train-samples" not in done.stderr and not (tmp_path / "s").exists()


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_while_decompressing_is_called_so(tmp_path: Path) -> None:
    """It said "Reinstall the system copy", which is not the matter."""
    done = initbench("compare", "rule", "--epochs", "1", "--train-samples", "600", "--data-dir",
                     str(tmp_path / "data"), "--out", str(tmp_path / "r"), preexec_fn=_file_size_limit(2**20))
    one_paragraph(done, 1, "Cannot decompress FashionMNIST into", "File too large", "Free some space there")
    assert "Reinstall" not in done.stderr
    assert not (tmp_path / "r").exists()
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file()]  # no partial file kept


@pytest.mark.parametrize("args", [["schemes"], ["schemes", "-f", "csv"],
                                  ["sweep", str(ROOT / "configs" / "sweep-smoke.toml"), "--dry-run"]])
def test_a_closed_output_pipe_ends_quietly(args: list[str], tmp_path: Path) -> None:
    """`initbench ... | head`: the reader went away; like any Unix tool, no message, 141."""
    read, write = os.pipe()
    os.close(read)
    if args[0] == "sweep":
        args = [*args, "--out", str(tmp_path / "none")]
    done = initbench(*args, stdout=write)
    os.close(write)
    assert done.returncode == 128 + signal.SIGPIPE, done.stderr
    assert "Error" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_an_interruption_python_wrapped_is_still_an_interruption() -> None:
    """A signal during a class's creation (importing rich, at start-up) reaches the command
    line inside the RuntimeError Python wraps __set_name__'s exceptions in (3.11); it is
    still an interruption, never an unexpected error with a traceback."""
    from initbench.errors import Terminated, interruption

    class Stops:
        def __set_name__(self, owner: type, name: str) -> None:
            raise Terminated(signal.SIGTERM)

    with pytest.raises(BaseException) as caught:
        type("Owner", (), {"field": Stops()})
    stop = interruption(caught.value)
    assert isinstance(stop, Terminated) and stop.signum == signal.SIGTERM
    assert interruption(RuntimeError("no signal here")) is None


def _interrupted(done_code: int, stderr: str) -> None:
    # Death by the signal itself (before Python handles signals at all) is what a shell shows as 130 too.
    assert done_code in (130, -signal.SIGINT), stderr
    assert "Traceback" not in stderr and "Unexpected" not in stderr, stderr


@pytest.mark.parametrize("delay", [0.1, 0.15, 0.2, 0.3, 0.5])
def test_ctrl_c_while_starting_ends_in_one_line(delay: float, tmp_path: Path) -> None:
    """While the command line is imported (typer, rich, torch), before a command runs. The
    delay counts from when Python has started: a Ctrl-C during the interpreter's own start
    (its site module, before any of initbench's code runs) is Python's to answer ("Fatal
    Python error"), and on a loaded machine 0.1 s can fall there."""
    started = "import sys; print('started', file=sys.stderr, flush=True); import runpy; sys.argv[0] = 'initbench'; "
    process = subprocess.Popen([sys.executable, "-c", started + "runpy.run_module('initbench', run_name='__main__')",
                                "compare", "rule", "--epochs", "1", "--train-samples", "600",
                                "--out", str(tmp_path / "r")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None and process.stderr.readline() == "started\n"
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    _interrupted(process.returncode, stderr)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("gap", [0.005, 0.015, 0.03, 0.045, 0.06])
def test_ctrl_c_twice_ends_in_one_line_and_leaves_nothing(gap: float, data_dir: Path, tmp_path: Path) -> None:
    """A second Ctrl-C while the first one's cleanup runs does not cut it short (it did, with
    a traceback, for about half of such gaps)."""
    out = tmp_path / "r"
    process = subprocess.Popen([sys.executable, "-m", "initbench", "compare", "rule", "default", "--epochs", "3",
                                "--train-samples", "6000", "--data-dir", str(data_dir), "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".r.partial-*/store.sqlite")) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # training
    process.send_signal(signal.SIGINT)
    time.sleep(gap)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    _interrupted(process.returncode, stderr)
    assert "Interrupted by SIGINT" in stderr
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())


@pytest.mark.parametrize(("argv", "code"), [(["schemes", "--format", "json"], 0), (["compare", "--epochs", "0"], 2)])
def test_a_finished_command_skips_the_teardown_but_not_what_an_exit_must_do(argv: list[str], code: int) -> None:
    """Once torch is imported, the console script ends a finished command without the
    interpreter's teardown (``launch._end``: 0.7 s and more): an object of the main module
    is never finalized, yet the output arrives whole through a pipe, atexit handlers run,
    and the exit status is the command's."""
    script = ("import atexit, sys, torch\n"
              "class Torn:\n"
              "    def __del__(self): print('torn down', file=sys.stderr)\n"
              "kept = Torn()\n"
              "atexit.register(lambda: print('atexit ran', file=sys.stderr))\n"
              f"sys.argv = ['initbench', *{argv!r}]\n"
              "from initbench.launch import main\n"
              "main()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    assert done.stderr.rstrip().endswith("atexit ran") and "torn down" not in done.stderr, done.stderr
    if code == 0:
        assert {row["name"] for row in json.loads(done.stdout)} >= {"rule", "kaiming_normal"}
    else:
        assert "Invalid" in done.stderr and "Traceback" not in done.stderr
