"""How the code is laid out: imports run one way (import-linter's contracts), the
settings' groups and their flat keys agree, stored keys do not move, and a dataset or a
network is one new module and a registry line."""

import ast
import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from initbench import data
from initbench.jobs import Job
from initbench.settings import FLAT, TrainSettings
from initbench.storage import store

from .conftest import NO_NETWORK, ROOT

PACKAGE = ROOT / "initbench"


def _lint(root: Path) -> subprocess.CompletedProcess:
    """import-linter's verdict on the contracts in ``root``'s pyproject.toml, for the package there."""
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--no-cache"], cwd=root, capture_output=True, text=True,
                          env=os.environ | {"PYTHONPATH": str(root)}, timeout=120)


def test_imports_run_one_way() -> None:
    """import-linter's contracts (pyproject.toml): the layers, from the command line down to
    the settings, TYPE_CHECKING imports included, and no circle within any part."""
    done = _lint(ROOT)
    assert done.returncode == 0 and "2 kept, 0 broken" in done.stdout, done.stdout + done.stderr


def test_the_contracts_catch_an_import_up_and_a_circle(tmp_path: Path) -> None:
    """A copy of the package where the settings import a view (under TYPE_CHECKING) and two
    networks import each other: both contracts break, naming the imports."""
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    shutil.copytree(PACKAGE, copy / "initbench", ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "initbench" / "settings.py", "a") as f:
        f.write("\nif TYPE_CHECKING:\n    from initbench.views import tables\n")
    with open(copy / "initbench" / "models" / "mlp.py", "a") as f:
        f.write("\nfrom initbench.models import cnn\n")
    done = _lint(copy)
    assert done.returncode == 1 and "0 kept, 2 broken" in done.stdout, done.stdout + done.stderr
    assert "initbench.settings -> initbench.views.tables" in done.stdout and ".mlp -> .cnn" in done.stdout


def test_no_module_imports_the_package_itself() -> None:
    """``import initbench`` or ``from initbench import __version__`` from inside the package
    would tie every part to the package's front door (and its lazy API)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"initbench.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom)
                     and node.module == "initbench" else [])
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names
                      if n == "initbench" or (n.startswith("initbench.") and not (PACKAGE / n.split(".")[1]).exists()
                                              and not (PACKAGE / f"{n.split('.')[1]}.py").exists())]
    assert found == []


def test_every_setting_has_one_flat_key() -> None:
    """FLAT (the config file's keys) names every field of the three groups once, in its group."""
    defaults = TrainSettings()
    fields = {f.name: group.name for group in dataclasses.fields(defaults)
              for f in dataclasses.fields(getattr(defaults, group.name))}
    assert FLAT == {key: fields[key] for key in FLAT} and set(FLAT) == set(fields)
    changed = TrainSettings.of(hidden=(8,), lr=0.5, classes=(1, 2), network="mlp")
    assert changed.network.hidden == (8,) and changed.optim.lr == 0.5 and changed.data.classes == (1, 2)
    assert TrainSettings.of(**changed.flat()) == changed
    assert TrainSettings.from_plain(data.stored(changed)) == changed


# Keys of version 2 of the random streams: a store's rows stay finished jobs only while these stay
# what they are.
PINNED = {
    "3d3f045181f92e02af6255b0e860660e15c455146b9a9620710d7583552caf95": Job("rule", 0, TrainSettings()),
    "afdec233d83d60345000d177bbd5b0f29f04a3df6668dcec78c27e2533f3d04d": Job(
        "default", 1, TrainSettings.of(optimizer="sgd", momentum=0.5)),
    "acfae265ecb83847b072d33654b7847094947a8799024012f33e3cc8c29a524e": Job(
        "xavier_normal", 0, TrainSettings.of(classes=(5, 6), train_samples=200, batch_size=20, epochs=20)),
    "afd595aacb88cc0b8c4ff8c6705ed504938948ad45a7331e69964e11e2daefe5": Job(
        "uniform", 2, TrainSettings.of(lesson_eval=True)),
}
# The same jobs' keys under version 1 of the streams (written before the settings were grouped and the
# dataset and network added): the identity without its streams' version is what those rows hold.
PINNED_V1 = ["69dd8387313cd04700b9c582a470f98c9967a739fe4423e3b319a143a287e01a",
             "7a6b6c5d2c8f44650ed5b66a21846645a1fdf0b5da7dea11354d061ae49b3d7d",
             "5d335193b990c06726cc0db9da29d0c3f7066d793852c6d3bbf1eaec54fb9b75",
             "d6662b7d302bc4712920a8acc9b729a42125a768a539522c7cc0b85e3fbdb7d9"]


def test_stored_keys_do_not_move() -> None:
    assert {store.key(job): job for job in PINNED.values()} == PINNED
    # All ten classes named are the default's data, and the same key.
    assert store.key(Job("rule", 0, TrainSettings.of(classes=tuple(range(10))))) == next(iter(PINNED))
    # Less the streams' version, the identity is what version-1 rows hold, key for key.
    unversioned = [{k: v for k, v in store.identity(job).items() if k != "streams"} for job in PINNED.values()]
    assert [store._key(store._encoded(i)) for i in unversioned] == PINNED_V1


LINEAR = '''
    """A linear classifier: one layer from the inputs to the classes."""
    from torch import nn


    class Linear(nn.Module):
        def __init__(self, inputs, classes):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(inputs, classes)])
            self.activation = nn.Identity()  # between layers: there are none

        def forward(self, x, masks=None):  # no hidden layer, so no dropout mask to apply
            return self.layers[0](x)


    def build(settings, inputs, classes):
        return Linear(inputs, classes)
'''
BLOCKS = '''
    """Blocks: 8x8 images of one bright 4x4 block in a corner (the class), on noise."""
    import hashlib

    from initbench.data import Arrays, Dataset

    CORNERS = {"top left": (0, 0), "top right": (0, 4), "bottom left": (4, 0), "bottom right": (4, 4)}


    def read(data_dir, log):
        import torch

        generator = torch.Generator().manual_seed(0)

        def images(n):
            y = torch.arange(n) % len(CORNERS)
            x = torch.rand(n, 8, 8, generator=generator) * 0.6
            for k, (row, column) in enumerate(CORNERS.values()):
                x[y == k, row:row + 4, column:column + 4] += 0.4
            return x.view(n, 64), y

        return Arrays(*images(400), *images(100))


    BLOCKS = Dataset("blocks", "Blocks", tuple(CORNERS), input_size=64, train_images=400, test_images=100,
                     files_sha256={"made by read": hashlib.sha256(b"blocks 1").hexdigest()}, read=read,
                     task="corner-finding")
'''
CORNER_FINDING = '''
    """Finding the corner: classification, its metrics named as its users name them."""
    from initbench.tasks import Metric, Task

    CORNER_FINDING = Task("corner-finding", "cross-entropy",
                          Metric("val_acc", "validation hit rate", "Validation\\nhit rate", "hits/val"),
                          Metric("test_acc", "test hit rate", "Test\\nhit rate", "hits/test"))
'''
LOGGED = '''
    """An executor that trains here, and says so: with a setting of its own."""
    from contextlib import contextmanager
    from dataclasses import dataclass

    from initbench.executors.local import Local
    from initbench.parsing import whole
    from initbench.settings import setting


    @dataclass(frozen=True)
    class LoggedSettings:
        log_every: int = setting(1, "With --executor logged: say every Nth chunk.", parse=whole(1), metavar="N")


    class Logged(Local):
        @property
        def description(self):
            return "logged " + super().description


    @contextmanager
    def connect(placement, activity):
        activity.note(f"training through the logged executor, saying every {placement.settings.log_every}")
        yield Logged(placement)
'''
LOSSFILES = '''
    """Every job's losses as a CSV file of its own."""
    TITLE, NOTE = "loss CSV", "Each job is a file <scheme>-seed-<k>.csv of its losses, in {dest}."


    def check_installed():
        pass


    def held(folder):
        return None


    def write(jobs, folder, activity):
        import pandas as pd

        for job in jobs:
            pd.Series(job.losses, name="loss").to_csv(folder / f"{job.name}-seed-{job.seed}.csv")
        return pd.DataFrame([{"run": f"{job.name}-seed-{job.seed}", "folder": str(job.source.folder),
                              "kind": job.source.label, "scheme": job.label, "seed": job.seed,
                              "steps": len(job.losses), "epochs": len(job.val_acc)} for job in jobs])
'''
# One line each, through the registries' public functions; here run at start-up (sitecustomize).
REGISTER = '''
    from initbench import data, executors, exporters, models, tasks
    import blocks, corner_finding
    tasks.register(corner_finding.CORNER_FINDING)
    data.register(blocks.BLOCKS)
    models.register(models.Network("linear", "linear:build", depth=lambda settings: 1))
    import logged
    executors.register(executors.Backend("logged", "logged:connect", logged.LoggedSettings))
    exporters.register(exporters.Exporter("lossfiles", "lossfiles", "Every job's losses as CSV files."))
'''


def test_a_dataset_network_task_executor_and_exporter_are_a_module_and_a_line_each(tmp_path: Path) -> None:
    """Files outside initbench (a dataset, a network, a task, an executor and an export format,
    each a module, and the lines that register them) and compare trains the new network on the
    new dataset through the new executor, through the real command line, with the sequential
    engine that auto picks (the batched one refuses the network); its table names the task's
    metrics; export writes the new format."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for name, text in {"linear.py": LINEAR, "blocks.py": BLOCKS, "corner_finding.py": CORNER_FINDING,
                       "logged.py": LOGGED, "lossfiles.py": LOSSFILES, "sitecustomize.py": REGISTER}.items():
        (plugins / name).write_text(textwrap.dedent(text))
    config = tmp_path / "run.toml"
    config.write_text('dataset = "blocks"\nnetwork = "linear"\nepochs = 3\nbatch_size = 20\nseeds = 2\n')
    env = os.environ | NO_NETWORK | {"PYTHONPATH": os.pathsep.join([str(plugins), str(ROOT)])}

    def compare(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "initbench", "compare", "rule", "default", "--config",
                               str(config), *args], text=True, capture_output=True, env=env, timeout=300)

    refused = compare("--engine", "batched", "--out", str(tmp_path / "batched"))
    assert refused.returncode == 2 and "--engine sequential" in " ".join(refused.stderr.split()), refused.stderr
    out = tmp_path / "run"
    refused = compare("--out", str(out), "--executor", "logged", "--log-every", "0")  # its setting, parsed
    assert refused.returncode == 2 and "Invalid --log-every: must be at least 1" in refused.stderr, refused.stderr
    done = compare("--out", str(out), "--executor", "logged", "--log-every", "2")  # auto: the sequential engine
    assert done.returncode == 0, done.stderr
    assert "training through the logged executor, saying every 2" in done.stderr
    assert "| Validation hit rate | Difference to the best [95% CI] | Test hit rate |" in done.stdout
    assert "accuracy" not in done.stdout
    info = json.loads((out / "run.json").read_text())
    assert (info["config"]["dataset"], info["config"]["network"], info["config"]["classes"]) == (
        "blocks", "linear", [0, 1, 2, 3])
    assert info["data"] == {"train": 320, "val": 80, "test": 100}
    with sqlite3.connect(out / store.FILE) as db:
        rows = db.execute("SELECT identity, val_acc FROM jobs").fetchall()
    assert len(rows) == 4 and all(acc > 0.6 for _, acc in rows)  # four corners: chance is 0.25
    for identity, _ in rows:  # a setting other than its default is in the key
        settings = json.loads(identity)["settings"]
        assert (settings["dataset"], settings["network"], settings["hidden"]) == ("blocks", "linear", [256, 128])
    assert info["executor"].startswith("logged sequential engine on cpu")
    exported = subprocess.run([sys.executable, "-m", "initbench", "export", str(out), "--lossfiles",
                               str(tmp_path / "losses")], text=True, capture_output=True, env=env, timeout=300)
    assert exported.returncode == 0, exported.stderr
    assert "4 jobs exported to loss CSV in" in " ".join(exported.stdout.split())
    assert sorted(p.name for p in (tmp_path / "losses").iterdir()) == [
        f"{scheme}-seed-{seed}.csv" for scheme in ("default", "rule") for seed in (0, 1)]
