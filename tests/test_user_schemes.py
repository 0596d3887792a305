"""Users' own schemes (schemes/user.py): real files, modules, registered functions and an
installed package's entry point, trained on real data from the command line; their keys
follow their code; careless code stays reproducible; bad code is one clean paragraph."""

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from initbench import initializers
from initbench.errors import InitbenchError, UsageError
from initbench.initializers import user
from initbench.jobs import Job
from initbench.settings import TrainSettings
from initbench.storage import store
from initbench.training import engines
from initbench.training.streams import start

from .conftest import ROOT
from .test_cli import assert_clean_error, compare
from .test_sweep import NUMBERS, rows, sweep, sweep_file

CPU = torch.device("cpu")
EXAMPLE = ROOT / "examples" / "my_inits.py"
CARELESS = '''
import torch


def careless_(weight, bias, generator, *, scale=0.05):
    """Draws from torch's global generator, not the one it is given."""
    weight.copy_(torch.randn(weight.shape) * scale)
    bias.copy_(torch.rand(bias.shape) * scale)
'''
SMALL = TrainSettings.of(hidden=(32,), epochs=1)


def written(folder: Path, text: str, name: str = "inits.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def python(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.fixture
def registered() -> Iterator[None]:
    """Functions registered in a test are forgotten after it (other tests list the catalogue)."""
    before = dict(user._REGISTERED)
    yield
    user._REGISTERED.clear()
    user._REGISTERED.update(before)


def test_the_example_from_the_command_line(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's own command, from a folder holding examples/my_inits.py: the table and
    files name the scheme as given; the folder and weights files by its file and function."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    result = compare("examples/my_inits.py:scaled_normal_", "kaiming_normal", "--seeds", "3", "--epochs", "1",
                     "--train-samples", "2000", "--data-dir", str(data_dir), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert "examples/my_inits.py:scaled_normal_," in result.output  # the table's row
    (folder,) = (tmp_path / "results").iterdir()
    assert folder.name.endswith("-my_inits.scaled_normal_-kaiming_normal")
    assert {"loss_curves.png", "loss_full.png", "accuracy.csv"} <= {p.name for p in folder.iterdir()}
    assert sorted(p.name for p in (folder / "weights").iterdir()) == [
        *(f"kaiming_normal-seed{s}.safetensors" for s in range(3)),
        *(f"my_inits.scaled_normal_-seed{s}.safetensors" for s in range(3))]
    runs = (folder / "runs.csv").read_text()
    assert runs.count("examples/my_inits.py:scaled_normal_,") == 3


def test_parameters_identity_and_what_is_shown(tmp_path: Path) -> None:
    """Numbers set the function's keyword parameters in order; the key follows the file's
    bytes and the parameters, not the path; the docstring's lines are shown."""
    copy = tmp_path / "elsewhere" / "same.py"
    copy.parent.mkdir()
    shutil.copy(EXAMPLE, copy)
    example = initializers.get(f"{EXAMPLE}:scaled_normal_")
    assert example.params == ("scale",) and example.formula.startswith("W ~ N(0, (scale")
    assert "He et al. 2015" in example.reference and example.origin == f"file {EXAMPLE}"
    key = store.key(Job(f"{EXAMPLE}:scaled_normal_", 0, SMALL))
    assert store.key(Job(f"{copy}:scaled_normal_", 0, SMALL)) == key  # moved, the same code
    assert store.key(Job(f"{EXAMPLE}:scaled_normal_:1", 0, SMALL)) == store.key(
        Job(f"{EXAMPLE}:scaled_normal_:1.0", 0, SMALL)) != key
    copy.write_text(EXAMPLE.read_text() + "\n# edited\n")
    assert store.key(Job(f"{copy}:scaled_normal_", 0, SMALL)) != key
    # the same numbers as kaiming_normal's formula, drawn alike: scale=1 is its variance
    model, sources = start(Job(f"{EXAMPLE}:scaled_normal_:0.5", 0, SMALL), torch.empty(0, 784))
    assert sources == [f"initialized by {initializers.get(f'{EXAMPLE}:scaled_normal_:0.5').name}"] * 2
    std = model.layers[0].weight.std().item()
    assert abs(std - 0.5 * (2 / 784) ** 0.5) < 0.05 * std and not model.layers[0].bias.any()
    assert initializers.stem(f"{EXAMPLE}:scaled_normal_:0.5,2") == "my_inits.scaled_normal_-0.5_2"
    assert initializers.get("initbench.initializers.layer:rule_").origin == "module initbench.initializers.layer"


def test_careless_code_is_reproducible_alone_and_grouped(tiny, tmp_path: Path) -> None:
    """A function that draws from torch's global generator gets its numbers from the model's
    own stream: the same alone as beside built-ins (batched engine, bit for bit), another
    for another seed, and torch's global state as it was."""
    spec = f"{written(tmp_path, CARELESS)}:careless_"
    jobs = [Job("rule", 0, SMALL), Job(spec, 0, SMALL), Job("kaiming_normal", 0, SMALL), Job(spec, 1, SMALL)]
    together = engines.train(jobs, tiny, CPU, "batched")
    for job in (jobs[1], jobs[3]):
        torch.manual_seed(job.seed + 7)  # whatever the global generator holds
        alone = engines.train([job], tiny, CPU, "batched")[0]
        result = together[jobs.index(job)]
        assert torch.equal(alone.losses, result.losses) and (alone.val_acc, alone.test_acc) == (
            result.val_acc, result.test_acc)
    assert not torch.equal(together[1].losses, together[3].losses)
    layer, state = torch.nn.Linear(784, 32), torch.get_rng_state()
    initializers.get(spec).init_layer(layer, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)


BAD = {  # file text, spec tail, what the one paragraph says
    "missing": (None, ":f", ["the file", "does not exist", "path/to/file.py:function"]),
    "syntax": ("def f(weight, bias, generator)\n    pass\n", ":f", ["line 1 is not valid Python", "Fix the file"]),
    "no function": ("def other_(weight, bias, generator):\n    pass\n", ":f", ["has no function 'f'",
                                                                                "it defines other_"]),
    "not callable": ("f = 3\n", ":f", ["f in the file", "is int, not a function"]),
    "signature": ("def f(weight):\n    pass\n", ":f", ["cannot be a scheme", "fn(weight, bias, generator, ...)"]),
    "parameters": ("def f(weight, bias, generator, *, scale):\n    pass\n", ":f:x",
                   ["write", ":f:SCALE, with finite numbers"]),
    "import fails": ("import no_such_module_here\n", ":f", ["running", "ModuleNotFoundError at", "inits.py:1"]),
    "no module": (None, "no_such_module_here:f", ["Unknown scheme", "cannot import a module"]),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_user_code_is_a_usage_error_before_training(tmp_path: Path, case: str) -> None:
    text, tail, fragments = BAD[case]
    spec = tail if text is None and not tail.startswith(":") else f"{tmp_path / 'inits.py'}{tail}"
    if text is not None:
        written(tmp_path, text)
    out = tmp_path / "out"
    assert_clean_error(compare(spec, "--out", str(out)), *fragments, code=2)
    assert not out.exists()


def test_a_missing_file_is_found_before_torch_is_imported(tmp_path: Path) -> None:
    code = ("import sys; from initbench.cli import main; sys.argv = ['initbench', 'compare', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert 'torch' not in sys.modules; raise")
    done = python("-c", code, f"{tmp_path}/gone.py:f", "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "does not exist" in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr


FAILING = {  # the function's last line, what the message says (naming the layer where weights are wrong)
    "raises": ("raise ValueError('no good\\n at all')", ["failed: f raised ValueError at",
                                                         "inits.py:3: no good at all"]),
    "rebinds": ("weight = torch.zeros(3)", ["left the weight of layers.0 (784 -> 32 units) with NaN",
                                           "not weight = ..."]),
    "shape": ("weight.data = torch.zeros(3, 3); bias.zero_()", ["weight of layers.0", "shape [3, 3], not [32, 784]"]),
    "dtype": ("weight.data = weight.data.double().zero_(); bias.zero_()", ["of dtype torch.float64"]),
    "infinite": ("weight.fill_(float('inf')); bias.zero_()", ["NaN or infinite values"]),
}


@pytest.mark.parametrize("case", FAILING)
def test_failing_user_code_names_function_line_and_layer(tmp_path: Path, case: str) -> None:
    line, fragments = FAILING[case]
    spec = f"{written(tmp_path, f'import torch{os.linesep}def f(weight, bias, generator):{os.linesep}    {line}')}:f"
    with pytest.raises(InitbenchError) as raised:
        start(Job(spec, 0, SMALL), torch.empty(0, 784))
    assert type(raised.value) is InitbenchError
    said = " ".join(str(raised.value).split())
    assert all(f in said for f in fragments), said


def test_an_error_inside_exits_1_and_debug_shows_the_traceback(data_dir: Path, tmp_path: Path) -> None:
    file = written(tmp_path, "def f(weight, bias, generator):\n    return 1 / 0\n")
    spec = f"{file}:f"
    args = [spec, "--epochs", "1", "--train-samples", "600", "--data-dir", str(data_dir), "--out", str(tmp_path / "o")]
    assert_clean_error(compare(*args), "The scheme", ":f failed", "ZeroDivisionError at",
                       "inits.py:2: division by zero", "--debug", code=1)
    debug = compare(*args, "--debug")
    assert isinstance(debug.exception, InitbenchError) and isinstance(debug.exception.__cause__, ZeroDivisionError)


def test_registered_functions_and_whole_model_schemes(registered: None) -> None:
    def halved_(weight, bias, generator, activation_gain, *, factor=0.5):
        """Half of Kaiming's normal.

        Formula: W ~ N(0, (factor * gain / sqrt(fan_in))^2); b = 0
        """
        weight.normal_(0, factor * activation_gain / weight.shape[1] ** 0.5, generator=generator)
        bias.zero_()

    def orthogonal_all(model, context, *, gain=1.0):
        for layer in model.layers:
            torch.nn.init.orthogonal_(layer.weight, gain, generator=context.generator)
            layer.bias.zero_()
        return [f"orthogonal x{gain:g}"] * len(model.layers)

    assert user.register_function(halved_) == "halved_"
    assert user.register_function(orthogonal_all, "whole") == "whole"
    with pytest.raises(UsageError, match="built-in scheme's name"):
        user.register_function(halved_, "rule")
    key = store.key(Job("halved_:0.25", 0, SMALL))
    assert initializers.get("halved_:0.25").formula.startswith("W ~ N(0, (factor")
    model, sources = start(Job("whole:2", 3, SMALL), torch.randn(600, 784))
    assert sources == ["orthogonal x2", "orthogonal x2"]
    weight = model.layers[1].weight
    torch.testing.assert_close(weight @ weight.T, 4 * torch.eye(10))
    listed = {row["name"]: row for row in initializers.catalogue()}
    assert listed["halved_"]["usage"] == "halved_[:FACTOR]" and listed["whole"]["data_dependent"]
    assert listed["halved_"]["origin"].startswith("registered in Python (tests.test_user_schemes.")

    def halved_(weight, bias, generator, activation_gain, *, factor=0.5):  # edited: another key
        weight.normal_(0, factor / weight.shape[1] ** 0.5, generator=generator)
        bias.zero_()

    user.register_function(halved_)
    assert store.key(Job("halved_:0.25", 0, SMALL)) != key


def test_an_installed_packages_scheme_is_listed_and_trains(data_dir: Path, tmp_path: Path) -> None:
    """A real dist-info folder (METADATA, entry_points.txt) on PYTHONPATH, the real CLI."""
    site = tmp_path / "site"
    written(site / "initbench_demo", (EXAMPLE.read_text().replace("scaled_normal_", "spread_")), "__init__.py")
    written(site / "initbench_demo-0.3.dist-info", "Metadata-Version: 2.1\nName: initbench-demo\nVersion: 0.3\n",
            "METADATA")
    written(site / "initbench_demo-0.3.dist-info",  # a built-in's name keeps its meaning
            "[initbench.schemes]\nspread = initbench_demo:spread_\nrule = initbench_demo:spread_\n", "entry_points.txt")
    env = {"PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    listed = python("-m", "initbench", "schemes", "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    catalogue = [(r["name"], r) for r in json.loads(listed.stdout)]
    row = dict(catalogue)["spread"]
    assert row["origin"] == "package initbench-demo 0.3 (entry point initbench_demo:spread_)"
    assert row["usage"] == "spread[:SCALE]" and "He et al. 2015" in row["reference"]
    shadowed = [r for name, r in catalogue if name == "rule"]
    assert [r["origin"] for r in shadowed] == ["initbench", "package initbench-demo 0.3 (entry point "
                                                            "initbench_demo:spread_)"]
    assert "a built-in scheme has this name" in shadowed[1]["summary"]
    out = tmp_path / "out"
    trained = python("-m", "initbench", "compare", "spread:0.5", "rule", "--seeds", "1", "--epochs", "1",
                     "--train-samples", "600", "--data-dir", str(data_dir), "--out", str(out), "-q", "-f", "csv",
                     env=env)
    assert trained.returncode == 0, trained.stderr
    assert "spread:0.5," in trained.stdout and (out / "weights" / "spread_0.5-seed0.safetensors").is_file()


def test_editing_the_function_retrains_exactly_its_jobs(data_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a short name: the messages say it whole
    file = written(tmp_path, EXAMPLE.read_text())
    spec = "inits.py:scaled_normal_"
    grid = sweep_file(tmp_path, schemes=[spec, "rule"], seeds=1, data_dir=str(data_dir))
    out = tmp_path / "sweep"
    first = sweep(str(grid), "--out", str(out), "--format", "csv")
    assert first.exit_code == 0, first.output
    before = [row for row in rows(out, ["name", "key", "chunk", "finished"]) if row[0] == "rule"]
    file.write_text(file.read_text().replace("bias.zero_()", "bias.zero_()  # edited"))
    dry = sweep(str(grid), "--out", str(out), "--dry-run", "--format", "csv")
    said = " ".join(dry.output.split())
    assert dry.exit_code == 0 and "to train: 2" in said, dry.output
    assert f"2 jobs are new because the code of {spec} changed" in said
    again = sweep(str(grid), "--out", str(out), "--format", "csv")
    assert again.exit_code == 0 and "to train: 2" in " ".join(again.output.split()), again.output
    after = rows(out, ["name", "key", "chunk", "finished"])
    assert len(after) == 6 and [row for row in after if row[0] == "rule"] == before
    assert "In the store: 4; to train: 0" in " ".join(sweep(str(grid), "--out", str(out), "--dry-run").output.split())


# --- on Ray


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    import ray

    from .test_ray import THREADS

    ray.init(num_cpus=max(2, THREADS), logging_level=logging.ERROR, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_workers_run_the_code_the_task_carries(cluster: None, data_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is at ~/inits.py here only: this process's HOME is not the workers' (Ray
    started them before it changed). The workers train from the content the tasks carry,
    to the numbers of a local sweep of the same file elsewhere (the same keys)."""
    from .test_ray import THREADS

    home = tmp_path / "home"
    written(home, CARELESS)
    local_file = written(tmp_path / "local", CARELESS)
    monkeypatch.setenv("HOME", str(home))
    local = sweep_file(tmp_path / "local", schemes=[f"{local_file}:careless_", "rule"], seeds=1,
                       data_dir=str(data_dir))
    assert sweep(str(local), "--out", str(tmp_path / "l"), "--format", "csv").exit_code == 0
    on_ray = sweep_file(tmp_path, schemes=["~/inits.py:careless_", "rule"], seeds=1, data_dir=str(data_dir))
    result = sweep(str(on_ray), "--out", str(tmp_path / "r"), "--format", "csv", "--executor", "ray",
                   "--cpus-per-task", str(THREADS))
    assert result.exit_code == 0, result.output
    numbers = [c for c in NUMBERS if c != "name"]
    assert rows(tmp_path / "r", numbers) == rows(tmp_path / "l", numbers)
    with sqlite3.connect(tmp_path / "r" / store.FILE) as db:
        assert {name for (name,) in db.execute("SELECT name FROM jobs")} == {"~/inits.py:careless_", "rule"}
