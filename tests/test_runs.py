"""Run folders: each one whole run or absent, never two runs mixed, whatever runs beside
it or whichever signal arrives. Real processes, real files."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from initbench.cli import app

runner = CliRunner()


def start(cwd: Path, data_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "initbench", "compare", "--data-dir", str(data_dir), "--quiet",
                             *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_whole_run(folder: Path, schemes: list[str]) -> None:
    """Every file of ``folder`` is of one run: the schemes in run.json, and in each CSV."""
    assert json.loads((folder / "run.json").read_text())["config"]["schemes"] == schemes
    for name in ("accuracy.csv", "runs.csv", "losses.csv"):
        assert sorted(set(pd.read_csv(folder / name)["scheme"])) == sorted(schemes), name


def test_two_runs_into_one_out_never_mix(data_dir: Path, tmp_path: Path) -> None:
    """Started together with the same --out: one run gets the folder, the other the next
    free name (or is refused if the first had already finished); nothing staged is left."""
    small = ("--train-samples", "2000", "--epochs", "1", "--out", "X")
    a, b = start(tmp_path, data_dir, "rule", *small), start(tmp_path, data_dir, "zeros", "ones", *small)
    outs = [p.communicate(timeout=120) for p in (a, b)]
    assert {a.returncode, b.returncode} <= {0, 1}, outs
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders in (["X"], ["X", "X-2"]), folders
    found = {f: json.loads((tmp_path / f / "run.json").read_text())["config"]["schemes"] for f in folders}
    for folder, schemes in found.items():
        assert_whole_run(tmp_path / folder, schemes)
    if len(folders) == 1:  # the later one was refused before it trained
        assert "already holds files" in " ".join((outs[0][1] + outs[1][1]).split())
    else:
        assert sorted(map(tuple, found.values())) == [("rule",), ("zeros", "ones")]


def test_default_folder_names_never_collide(data_dir: Path, tmp_path: Path) -> None:
    """The same command twice at once: two folders under results/, each whole."""
    procs = [start(tmp_path, data_dir, "rule", "--train-samples", "1000", "--epochs", "1") for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    folders = sorted((tmp_path / "results").iterdir())
    assert len(folders) == 2 and not any(f.name.startswith(".") for f in folders), folders
    for folder in folders:
        assert_whole_run(folder, ["rule"])


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_terminated_run_leaves_nothing(data_dir: Path, tmp_path: Path, sig: signal.Signals, status: int) -> None:
    """A batch system's SIGTERM (or a closed terminal's SIGHUP) once the run is under way:
    a one-line message, the conventional status, and no folder, staged or final."""
    proc = start(tmp_path, data_dir, "--seeds", "3", "--out", "S")
    deadline = time.monotonic() + 60
    while not any(tmp_path.glob(".S.partial-*")):  # the run has begun
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)  # into data loading and training
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert f"Interrupted by {sig.name}: no result files were written." in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_existing_out_is_refused_and_overwrite_replaces_it_whole(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "X"
    base = ["compare", "--epochs", "1", "--train-samples", "1000", "--data-dir", str(data_dir), "--out", str(out),
            "--quiet"]
    assert runner.invoke(app, [*base, "rule", "zeros", "--track-stats"]).exit_code == 0
    refused = runner.invoke(app, [*base, "ones"])
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    assert_whole_run(out, ["rule", "zeros"])
    assert (out / "layer_stats.csv").exists()
    replaced = runner.invoke(app, [*base, "ones", "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert_whole_run(out, ["ones"])
    assert not (out / "layer_stats.csv").exists()  # the earlier run's files are gone, not mixed in
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X"]


def test_overwrite_never_replaces_the_current_folder(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["compare", "rule", "--data-dir", str(data_dir), "--out", ".", "--overwrite"])
    assert result.exit_code == 2 and "will not replace" in " ".join(result.output.split())
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("option", ["--out", "--data-dir"])
def test_empty_paths_are_errors(tmp_path: Path, monkeypatch, option: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["compare", "rule", option, ""])
    assert result.exit_code == 2 and f"Invalid {option}" in result.output
    assert list(tmp_path.iterdir()) == []


def test_bench_refuses_a_folder_as_its_file_before_any_work(tmp_path: Path) -> None:
    tic = time.monotonic()
    result = runner.invoke(app, ["bench", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "is a folder; --out takes a file name" in " ".join(result.output.split())
    assert time.monotonic() - tic < 10  # refused at once, not after minutes of measuring


@pytest.mark.parametrize(("args", "words", "code"), [
    (["--batch-size", "1000000", "--train-samples", "2000"], "--batch-size 1,000,000 is larger than the training set",
     2),
    (["--hidden", "100000x3"], "One model with these settings needs about", 1),
])
def test_impossible_sizes_are_refused_before_training(data_dir: Path, tmp_path: Path, monkeypatch, args,
                                                      words, code) -> None:
    """A batch larger than the training set, or a model larger than memory: a clear error at
    once (not 14 GB and 48 s later), and no folder left behind, results/ included."""
    monkeypatch.chdir(tmp_path)
    tic = time.monotonic()
    result = runner.invoke(app, ["compare", "rule", "--data-dir", str(data_dir), "--quiet", *args])
    assert result.exit_code == code and words in " ".join(result.output.split()), result.output
    assert time.monotonic() - tic < 20 and list(tmp_path.iterdir()) == []


def test_config_toml_repeats_the_run(data_dir: Path, tmp_path: Path) -> None:
    """Every run folder holds its resolved configuration as a config file; feeding it back
    trains the same models again, to the same numbers, into a new folder."""
    first, again = tmp_path / "first", tmp_path / "again"
    args = ["compare", "rule", "zeros", "--seed-list", "3,5", "--epochs", "1", "--train-samples", "1500", "--lr",
            "2e-3", "--hidden", "64,32", "--activation", "tanh", "--data-dir", str(data_dir), "--quiet"]
    assert runner.invoke(app, [*args, "--out", str(first)]).exit_code == 0
    text = (first / "config.toml").read_text()
    keys = [line.split(" = ")[0] for line in text.splitlines()]
    assert "out" not in keys and "overwrite" not in keys and "train_samples" in keys
    assert 'activation = "tanh"' in text and "seeds = [3, 5]" in text
    repeat = runner.invoke(app, ["compare", "--config", str(first / "config.toml"), "--out", str(again), "--quiet"])
    assert repeat.exit_code == 0, repeat.output
    for name in ("accuracy.csv", "runs.csv", "losses.csv", "config.toml"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name


def test_a_data_folder_that_is_a_file_is_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("data").write_text("not a folder")
    result = runner.invoke(app, ["compare", "rule", "--data-dir", "data", "--quiet"])
    assert result.exit_code == 1 and "The data folder data is a file" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_long_scheme_lists_get_a_default_name_the_file_system_takes(data_dir: Path, tmp_path: Path,
                                                                    monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    schemes = [f"uniform:-0.0{i}000000000000001,0.0{i}000000000000001" for i in range(1, 9)]
    result = runner.invoke(app, ["compare", *schemes, "--epochs", "1", "--train-samples", "500",
                                 "--data-dir", str(data_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "results").iterdir()
    assert len(folder.name.encode()) < 160 and folder.name.endswith("-etc") and schemes[0] in folder.name
