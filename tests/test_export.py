"""initbench export --tensorboard: finished runs and sweeps as TensorBoard's logs, read back
with TensorBoard's own reader (its scalars, and the HParams plugin's data)."""

import errno
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing import event_multiplexer  # the test extra's: TensorBoard's own reader
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from typer.testing import CliRunner

import initbench as ib
from initbench.cli import app
from initbench.errors import InitbenchError, UsageError
from initbench.exporters import tensorboard as tb
from initbench.tasks import CLASSIFICATION

from .test_cli import assert_clean_error

runner = CliRunner()
SCHEMES = {"rule": "rule", "uniform:-0.1,0.1": "uniform_-0.1_0.1"}  # as given, and in a TensorBoard run's name


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> ib.Run:
    """2 schemes x 2 seeds, 1 epoch of 10 batches."""
    out = tmp_path_factory.mktemp("export") / "small run"  # a space: the names TensorBoard gets are still safe
    return ib.compare(list(SCHEMES), seeds=2, epochs=1, train_samples=1000, hidden="32,16", save_weights=False,
                      out=out, data_dir=data_dir)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> ib.Sweep:
    """Two cells (lr), one scheme and seed, 2 epochs of 5 batches: a validation accuracy per epoch."""
    settings = {"schemes": ["rule"], "seeds": 1, "epochs": 2, "train_samples": 500, "hidden": "32",
                "data_dir": str(data_dir), "grid": {"lr": [0.001, 0.01]}}
    return ib.sweep(settings, out=tmp_path_factory.mktemp("export") / "grid")


def logs(logdir: Path) -> event_multiplexer.EventMultiplexer:
    """Every TensorBoard run under ``logdir``, as TensorBoard reads them (every scalar kept)."""
    found = event_multiplexer.EventMultiplexer(size_guidance={"scalars": 0, "tensors": 0})
    found.AddRunsFromDirectory(str(logdir))
    found.Reload()
    return found


def plugin_data(found: event_multiplexer.EventMultiplexer, run: str, tag: str) -> plugin_data_pb2.HParamsPluginData:
    return plugin_data_pb2.HParamsPluginData.FromString(found.PluginRunToTagToContent(metadata.PLUGIN_NAME)[run][tag])


def scalars(found: event_multiplexer.EventMultiplexer, run: str, tag: str) -> tuple[list[int], np.ndarray]:
    events = found.Scalars(run, tag)
    return [e.step for e in events], np.array([e.value for e in events], dtype=np.float32)


def stored(folder: Path) -> dict[tuple[str, int, float], tuple[np.ndarray, list[float]]]:
    """Each job's losses and per-epoch validation accuracies as the store holds them, by (name, seed, lr)."""
    with sqlite3.connect(folder / "store.sqlite") as db:
        rows = db.execute("SELECT name, seed, settings, losses, val_acc_per_epoch FROM jobs").fetchall()
    return {(name, seed, json.loads(settings)["lr"]): (np.frombuffer(losses, "<f4"), json.loads(per_epoch))
            for name, seed, settings, losses, per_epoch in rows}


def test_a_compare_run_is_one_tensorboard_run_per_job(run: ib.Run, tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    result = runner.invoke(app, ["export", str(run.folder), "--tensorboard", str(logdir), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "4 jobs exported to TensorBoard" in result.output and f"Results in {logdir}" in result.output
    found = logs(logdir)
    names = {f"small_run/{safe}/seed-{seed}": (scheme, seed) for scheme, safe in SCHEMES.items() for seed in (0, 1)}
    assert set(found.Runs()) == set(names)
    assert [p.name for p in tmp_path.iterdir()] == ["tb"]  # nothing staged is left beside it
    losses, runs, store = pd.read_csv(run.folder / "losses.csv"), pd.read_csv(run.folder / "runs.csv"), stored(
        run.folder)
    for name, (scheme, seed) in names.items():
        assert len(list((logdir / name).iterdir())) == 1  # one event file
        steps, values = scalars(found, name, tb.LOSS)
        mine = losses[(losses.scheme == scheme) & (losses.seed == seed)]
        assert steps == list(range(1, 11)) and len(mine) == 10  # 1,000 images in batches of 100
        np.testing.assert_allclose(values, mine["loss"].to_numpy(np.float32), rtol=1e-5)  # the CSV's 6 digits
        np.testing.assert_array_equal(values, store[scheme, seed, 0.001][0])  # the store's float32, exactly
        row = runs[(runs.scheme == scheme) & (runs.seed == seed)].iloc[0]
        for tag, column in ((CLASSIFICATION.validation.tag, "val_acc"), (CLASSIFICATION.test.tag, "test_acc"),
                            (tb.LAST_EPOCH, "last_epoch_loss")):
            steps, values = scalars(found, name, tag)
            assert steps == [10] and values[0] == pytest.approx(row[column], rel=1e-5), tag
        start = plugin_data(found, name, metadata.SESSION_START_INFO_TAG).session_start_info.hparams
        assert start["scheme"].string_value == scheme and start["seed"].number_value == seed
        assert start["lr"].number_value == 0.001 and start["epochs"].number_value == 1
        assert start["train_samples"].number_value == 1000 and start["hidden"].string_value == "32,16"
        assert (start["dataset"].string_value, start["network"].string_value) == ("fashion-mnist", "mlp")
        assert "run" not in start and "momentum" not in start  # one folder; adam has no momentum
        end = plugin_data(found, name, metadata.SESSION_END_INFO_TAG).session_end_info
        assert end.status == api_pb2.STATUS_SUCCESS
    experiment = plugin_data(found, next(iter(names)), metadata.EXPERIMENT_TAG).experiment
    infos = {info.name: info for info in experiment.hparam_infos}
    assert list(infos)[:4] == ["scheme", "seed", "dataset", "network"] and set(infos) == set(start)
    assert [v.string_value for v in infos["scheme"].domain_discrete.values] == sorted(SCHEMES)
    assert infos["lr"].type == api_pb2.DATA_TYPE_FLOAT64 and infos["scheme"].type == api_pb2.DATA_TYPE_STRING
    assert [m.name.tag for m in experiment.metric_infos] == list(tb.metrics(CLASSIFICATION))
    assert experiment.metric_infos[0].dataset_type == api_pb2.DATASET_VALIDATION
    assert {name for name, info in infos.items() if info.differs} == {"scheme", "seed"}  # listed first by TensorBoard


def test_a_sweep_and_a_run_in_one_export(run: ib.Run, grid: ib.Sweep, tmp_path: Path) -> None:
    exported = ib.export(grid.folder, run.folder, grid.folder, tensorboard=tmp_path / "tb")  # a folder given twice
    found = logs(tmp_path / "tb")
    cells = {"grid/lr=0.001/rule/seed-0": 0.001, "grid/lr=0.01/rule/seed-0": 0.01}
    assert set(found.Runs()) == set(cells) | {f"small_run/{s}/seed-{k}" for s in SCHEMES.values() for k in (0, 1)}
    assert len(exported.runs) == 6 and list(exported.table["jobs"]) == [2, 4]
    assert list(exported.table["kind"]) == ["sweep", "compare run"] and "6 jobs exported" in str(exported)
    store = stored(grid.folder)
    for name, lr in cells.items():
        losses, per_epoch = store["rule", 0, lr]
        steps, values = scalars(found, name, tb.LOSS)
        assert steps == list(range(1, 11)) and (values == losses).all()  # 2 epochs of 5 batches
        steps, values = scalars(found, name, CLASSIFICATION.validation.tag)
        assert steps == [5, 10] and values.tolist() == np.float32(per_epoch).tolist()  # after each epoch
        start = plugin_data(found, name, metadata.SESSION_START_INFO_TAG).session_start_info.hparams
        assert start["lr"].number_value == lr and start["run"].string_value == "grid"
        assert start["epochs"].number_value == 2 and start["train_samples"].number_value == 500
        assert start["hidden"].string_value == "32"
    small = plugin_data(found, "small_run/rule/seed-1", metadata.SESSION_START_INFO_TAG).session_start_info.hparams
    assert small["run"].string_value == "small_run" and small["epochs"].number_value == 1
    experiment = plugin_data(found, next(iter(cells)), metadata.EXPERIMENT_TAG).experiment
    infos = {info.name: info for info in experiment.hparam_infos}
    assert [v.string_value for v in infos["run"].domain_discrete.values] == ["grid", "small_run"]
    assert {name for name, info in infos.items() if info.differs} == {"run", "scheme", "seed", "lr", "epochs",
                                                                       "train_samples", "hidden"}


def test_what_cannot_be_exported_is_refused_before_anything_is_written(run: ib.Run, tmp_path: Path) -> None:
    logdir, empty, blocker = tmp_path / "tb", tmp_path / "empty", tmp_path / "a-file"
    empty.mkdir()
    blocker.write_text("")

    def export(*args: str):
        return runner.invoke(app, ["export", *args])

    assert_clean_error(export(str(empty), "--tensorboard", str(logdir)), "is not a run or sweep folder", code=2)
    assert_clean_error(export(str(tmp_path / "none"), "--tensorboard", str(logdir)), "does not exist", code=2)
    assert_clean_error(export(str(run.folder), "--tensorboard", str(blocker)), "is a file, not a folder",
                       "--tensorboard", code=2)
    assert_clean_error(export(str(run.folder), "--tensorboard", str(run.folder), "--overwrite"),
                       "is or holds", "--overwrite would delete it", code=2)
    assert_clean_error(export(str(run.folder), "--tensorboard", str(run.folder.parent), "--overwrite"),
                       "is or holds", code=2)
    assert export(str(run.folder)).exit_code == 2  # --tensorboard is required (Click's own error)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "empty"]

    assert export(str(run.folder), "--tensorboard", str(logdir), "-q").exit_code == 0
    first = sorted(logdir.rglob("events.out.tfevents.*"))
    assert_clean_error(export(str(run.folder), "--tensorboard", str(logdir)),
                       "already holds the event files of 4 TensorBoard runs", "--overwrite", code=2)
    assert sorted(logdir.rglob("events.out.tfevents.*")) == first
    assert export(str(run.folder), "--tensorboard", str(logdir), "--overwrite", "-q").exit_code == 0
    again = sorted(logdir.rglob("events.out.tfevents.*"))  # replaced whole: no run's curves twice
    assert len(again) == 4 and not set(again) & set(first)


def test_without_tensorboard_the_error_says_what_to_install(run: ib.Run, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed: find_spec finds nothing
    result = runner.invoke(app, ["export", str(run.folder), "--tensorboard", str(tmp_path / "tb")])
    assert_clean_error(result, "needs TensorBoard, which is not installed here", "pip install 'initbench[tensorboard]'",
                       code=2)
    assert not (tmp_path / "tb").exists()
    with pytest.raises(UsageError, match="needs tensorboard=LOGDIR"):
        ib.export(run.folder)


def test_a_failure_midway_leaves_nothing(run: ib.Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.utils.tensorboard import SummaryWriter

    written = []

    def add_scalar(self, *args, **kwargs) -> None:
        written.append(args)
        if len(written) > 25:  # in the second job (13 scalars each)
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SummaryWriter, "add_scalar", add_scalar)
    with pytest.raises(InitbenchError, match="Could not write the TensorBoard logs .*No space left on device"):
        ib.export(run.folder, tensorboard=tmp_path / "tb")
    assert list(tmp_path.iterdir()) == []  # neither the log folder nor its staging folder


def test_usage_errors_are_found_before_torch_is_imported(tmp_path: Path) -> None:
    code = ("import sys; from initbench.cli import main; sys.argv = ['initbench', 'export', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert 'torch' not in sys.modules; raise")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path), "--tensorboard", str(tmp_path / "tb")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "is not a run or sweep folder" in " ".join(done.stderr.split()), done.stderr
