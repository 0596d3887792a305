"""A user's scheme cannot end, hang or bend a run (schemes/user.py's ``_user_code``, around
every file executed, module imported and scheme called; errors.foreign): what would end
the command quietly is an error naming the code; real stop signals stay interruptions,
even where the code swallows them; torch's global settings are set back; what it prints
goes to stderr; and a scheme named only in an --expect condition never runs. Real files,
real subprocesses, real signals, real data."""

import csv
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import initbench as ib
from initbench.analysis import expect

from .test_faults_cli import initbench, one_paragraph

TINY = ["--epochs", "1", "--train-samples", "600", "--hidden", "16"]
FILL = "weight.normal_(0, 0.05, generator=generator); bias.zero_()"


def scheme_file(folder: Path, body: str, top: str = "", name: str = "s.py", function: str = "f") -> str:
    """A scheme file: ``top`` at its top level, ``body`` in the function; its spec."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(f"import sys, time\nimport torch\n{top}\n\n"
                               f"def {function}(weight, bias, generator):\n    {body}\n")
    return f"{folder / name}:{function}"


def started(args: list[str], mark: Path) -> subprocess.Popen:
    """``initbench ARGS`` running, once the scheme under test has written ``mark``."""
    process = subprocess.Popen([sys.executable, "-m", "initbench", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not mark.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return process


def ended(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    """Its exit status, stdout and stderr; killed (and the test failed) if it does not end."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"still running {timeout} s later; stderr: {stderr}")
    return process.returncode, stdout, stderr


# --- 1. SystemExit, KeyboardInterrupt and GeneratorExit are errors naming the code


ENDINGS = ["sys.exit(0)", "raise KeyboardInterrupt", "raise GeneratorExit"]


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("where", ["call", "top level"])
def test_a_scheme_cannot_end_the_command_quietly(where: str, ending: str, data_dir: Path, tmp_path: Path) -> None:
    """The issue's command exited 0, with no table, no XML and no folder, so a CI gate passed
    unjudged. At call time the work failed (exit 1); at the file's top level the scheme named
    cannot be used, as for any error there (exit 2, found before any work)."""
    spec = (scheme_file(tmp_path, ending) if where == "call" else scheme_file(tmp_path, FILL, top=ending))
    out = tmp_path / "out"
    done = initbench("compare", "rule", spec, "zeros", "--seeds", "2", "--expect", "rule > zeros", "-f", "junit",
                     *TINY, "--data-dir", str(data_dir), "--out", str(out))
    exception = ending.split()[-1].replace("sys.exit(0)", "SystemExit")
    if where == "call":
        one_paragraph(done, 1, f"The scheme {spec} failed: f raised {exception} at", "s.py:6", "Fix the function")
    else:
        one_paragraph(done, 2, f"running {tmp_path / 's.py'} failed: {exception} at", "s.py:3", "Fix the file")
    assert done.stdout == "" and not out.exists() and "Interrupted" not in done.stderr


def test_a_sweep_stops_with_an_error_naming_the_function(data_dir: Path, tmp_path: Path) -> None:
    """It exited 0 with 1 of 2 jobs stored and no views."""
    spec = scheme_file(tmp_path, "sys.exit(0)")
    grid = tmp_path / "grid.toml"
    grid.write_text(f'schemes = ["rule", "{spec}"]\nseeds = 1\nepochs = 1\ntrain_samples = 600\n'
                    f'data_dir = "{data_dir}"\n\n[grid]\nhidden = ["16", "8"]\n')
    done = initbench("sweep", str(grid), "--out", str(tmp_path / "sweep"), "-f", "csv")
    one_paragraph(done, 1, f"The scheme {spec} failed: f raised SystemExit at", "s.py:6")
    assert done.stdout == ""


# A real stop signal while a scheme runs is an interruption, whatever the scheme does with it.
IGNORING = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)"
REACTIONS = [("SIGTERM", "", "sys.exit(0)"), ("SIGINT", "", "pass"), ("SIGTERM", "", "raise ValueError('stopped')"),
             ("SIGTERM", IGNORING, "pass")]


@pytest.mark.parametrize(("name", "top", "reaction"), REACTIONS, ids=["exits", "swallows", "replaces", "ignores"])
def test_a_real_stop_signal_stays_an_interruption(name: str, top: str, reaction: str, data_dir: Path,
                                                  tmp_path: Path) -> None:
    """A scheme that turns the signal into sys.exit(0) made the command exit 0; one that
    swallows it and returns, or whose file ignores SIGTERM, let the run go on to the end,
    as if never stopped."""
    mark = tmp_path / "running"
    body = (f"try:\n        open({str(mark)!r}, 'w').close()\n        time.sleep(30)\n"  # a signal meets the try
            f"    except BaseException:\n        {reaction}\n    {FILL}")
    out = tmp_path / "out"
    process = started(["compare", scheme_file(tmp_path / "code", body, top=top), "rule", *TINY,
                       "--data-dir", str(data_dir), "--out", str(out)], mark)
    signum = signal.Signals[name]
    process.send_signal(signum)
    code, stdout, stderr = ended(process)
    assert code == 128 + signum, stderr
    assert f"Interrupted by {name}: no result files were written." in stderr, stderr
    assert "Traceback" not in stderr and "Error" not in stderr and stdout == ""
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["code", "running"]


# --- 3. a scheme that swallows every signal


def test_a_second_stop_signal_ends_a_scheme_that_swallows_them(data_dir: Path, tmp_path: Path) -> None:
    """The first SIGTERM was eaten and later ones ignored: only SIGKILL ended it. The second
    ends it at once, exit 143, in one line; the folder it staged is removed by the next run
    in the same place, which a later run says."""
    mark = tmp_path / "running"
    body = (f"while True:\n        try:\n            open({str(mark)!r}, 'w').close()\n            time.sleep(0.05)\n"
            "        except BaseException:\n            pass")
    out = tmp_path / "runs" / "out"
    args = ["--seeds", "1", *TINY, "--data-dir", str(data_dir), "--out", str(out)]
    process = started(["compare", scheme_file(tmp_path, body), "rule", *args], mark)
    process.send_signal(signal.SIGTERM)
    time.sleep(1)
    assert process.poll() is None  # the scheme went on
    process.send_signal(signal.SIGTERM)
    code, stdout, stderr = ended(process)
    assert code == 128 + signal.SIGTERM, stderr
    last = stderr.splitlines()[-1]  # after the progress lines: one line
    assert last.startswith("Interrupted by SIGTERM a second time") and f"the scheme {tmp_path / 's.py'}:f ran" in last
    assert "Traceback" not in stderr and stdout == "" and not out.exists()
    (staged,) = (tmp_path / "runs").iterdir()  # no result: a hidden staging folder
    assert staged.name.startswith(".out.partial-")
    later = initbench("compare", "rule", *args)
    assert later.returncode == 0 and "Removed 1 unfinished run folder" in later.stderr, later.stderr
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["out"]


# --- 4. what a scheme prints goes to stderr


def test_what_a_scheme_prints_goes_to_stderr(data_dir: Path, tmp_path: Path) -> None:
    spec = scheme_file(tmp_path, f"print('filling', tuple(weight.shape)); {FILL}", top="print('loading the file')")
    done = initbench("compare", spec, "rule", "--seeds", "1", *TINY, "--data-dir", str(data_dir),
                     "--out", str(tmp_path / "out"), "-f", "csv")
    assert done.returncode == 0, done.stderr
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert sorted(row["scheme"] for row in table) == sorted([spec, "rule"]), done.stdout
    assert "loading the file" in done.stderr and "filling (16, 784)" in done.stderr


# --- 5. conditions are checked before any user code runs


@pytest.mark.parametrize(("condition", "fragment"), [
    ("{other} > rule", "which this run does not train"),
    ("{mine} = rule", "with one operator of"),
])
def test_conditions_are_checked_before_any_user_code_runs(condition: str, fragment: str, tmp_path: Path) -> None:
    """A file named only in a condition was imported (its top level run) before the condition
    was refused; so was the run's own file when the condition could not be read."""
    mark = tmp_path / "ran"
    top = f"open({str(mark)!r}, 'a').write('{{}} ran'.format(__file__))"
    mine, other = (scheme_file(tmp_path, FILL, top=top, name=name) for name in ("mine.py", "other.py"))
    done = initbench("compare", mine, "rule", "--expect", condition.format(mine=mine, other=other),
                     "--out", str(tmp_path / "out"))
    one_paragraph(done, 2, fragment)
    assert not mark.exists(), mark.read_text()


def test_a_condition_still_resolves_the_runs_own_scheme_spelled_otherwise(tmp_path: Path) -> None:
    file = Path(scheme_file(tmp_path, FILL).rpartition(":")[0])
    file.write_text(file.read_text().replace("generator):", "generator, scale=1.0):"))
    expect.check([f"{file}:f:.5 >= 0.1", "Constant:0.5 < rule"], [f"{file}:f:0.5", "rule", "constant:0.5"], 2)


# --- 2. torch's global settings


def test_torch_settings_a_scheme_changes_are_set_back(data_dir: Path, tmp_path: Path) -> None:
    """Through the Python API, a scheme that changed the default dtype left it float64 for
    the caller's next call; one that set one thread left the run (and the next scheme's
    models) on one thread. Each call of either scheme, per layer or whole model, sees the
    settings as they were; so does the caller after it."""
    seen: list[tuple] = []

    def settings() -> tuple:
        return (torch.get_default_dtype(), torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                torch.get_float32_matmul_precision())

    def disturbing(weight, bias, generator):
        seen.append(settings())
        torch.set_default_dtype(torch.float64)
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        torch.set_float32_matmul_precision("medium")
        weight.normal_(0, 0.05, generator=generator)
        bias.zero_()

    def whole(model, context):
        seen.append(settings())
        for layer in model.layers:
            layer.weight.normal_(0, 0.05, generator=context.generator)
            layer.bias.zero_()
        torch.set_default_dtype(torch.float64)
        torch.set_num_threads(1)
        torch.set_grad_enabled(True)  # it is called under no_grad

    threads = torch.get_num_threads()
    torch.set_num_threads(max(threads, 2))  # one the scheme's 1 differs from, on any machine
    try:
        before = settings()
        run = ib.compare([disturbing, whole, "rule"], seeds=2, out=tmp_path / "run", data_dir=data_dir,
                         epochs=1, train_samples=600, hidden="16", progress=False)
        assert settings() == before and torch.is_grad_enabled()
    finally:
        torch.set_num_threads(threads)
    assert len(seen) == 2 * 2 + 2 and set(seen) == {before}, seen  # per layer: 2 layers a model
    assert set(run.table.index) == {"disturbing", "whole", "rule"} and (run.table["seeds"] == 2).all()


@pytest.mark.parametrize("where", ["call", "top level"])
def test_a_default_dtype_or_device_set_by_a_scheme_does_not_end_the_run(where: str, data_dir: Path,
                                                                         tmp_path: Path) -> None:
    """It ended the run with "Unexpected error: RuntimeError: index_select(): ..."."""
    dtype, device = "torch.set_default_dtype(torch.float64)", "torch.set_default_device('meta')"
    specs = ([scheme_file(tmp_path, f"{change}; {FILL}", name=f"{i}.py") for i, change in enumerate([dtype, device])]
             if where == "call" else
             [scheme_file(tmp_path, FILL, top=change, name=f"{i}.py") for i, change in enumerate([dtype, device])])
    done = initbench("compare", *specs, "rule", "--seeds", "1", *TINY, "--data-dir", str(data_dir),
                     "--out", str(tmp_path / "out"), "-f", "csv")
    assert done.returncode == 0, done.stderr
    assert sorted(row["scheme"] for row in csv.DictReader(io.StringIO(done.stdout))) == sorted([*specs, "rule"])


@pytest.mark.parametrize(("change", "what"), [
    ("torch.device('meta').__enter__()", "default device"),  # a with block's, never left: nothing sets it back
    ("torch.set_num_interop_threads(1)", "number of inter-op threads"),  # once per process
])
def test_a_scheme_that_changes_what_cannot_be_set_back_is_refused(change: str, what: str, data_dir: Path,
                                                                  tmp_path: Path) -> None:
    spec = scheme_file(tmp_path, FILL, top=change)
    done = initbench("compare", spec, "rule", "--seeds", "1", *TINY, "--data-dir", str(data_dir),
                     "--out", str(tmp_path / "out"))
    one_paragraph(done, 1, f"The file {tmp_path / 's.py'} changed torch's {what}", "cannot set back")
    assert not (tmp_path / "out").exists()
