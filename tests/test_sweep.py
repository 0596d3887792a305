"""Sweeps: grids from a config file, job keys, the store (resume after kill -9, extension,
one writer), and the report's paired statistics, on real data and a real SQLite file."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from initbench import config
from initbench.cli import app
from initbench.jobs import Job
from initbench.settings import TrainSettings
from initbench.storage import store

from .conftest import ROOT
from .test_cli import assert_clean_error

runner = CliRunner()
SMOKE = ROOT / "configs" / "sweep-smoke.toml"
# Rows that must be equal between two sweeps of the same grid: everything but when, where and how fast.
NUMBERS = ["key", "identity", "name", "scheme", "seed", "settings", "val_acc", "test_acc", "val_acc_per_epoch",
           "last_batch_loss", "last_epoch_loss", "diverged_at", "epochs", "batches", "losses"]


def sweep_file(tmp_path: Path, grid: str = 'hidden = ["32", "32x3"]', **settings) -> Path:
    """A small sweep: rule and kaiming_normal, 2 seeds, 1 epoch on 600 images, a grid."""
    values = {"schemes": ["rule", "kaiming_normal"], "seeds": 2, "epochs": 1, "train_samples": 600,
              "dropout": 0.0} | settings
    path = tmp_path / "grid.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()) + f"\n[grid]\n{grid}\n")
    return path


def sweep(*args: str):
    return runner.invoke(app, ["sweep", *args])


def rows(folder: Path, columns: list[str] = NUMBERS) -> list[tuple]:
    with sqlite3.connect(folder / store.FILE) as db:
        return sorted(db.execute(f"SELECT {', '.join(columns)} FROM jobs"))


# --- job keys


def test_job_key_is_a_sha256_of_everything_that_decides_the_numbers(tmp_path: Path) -> None:
    base = Job("kaiming_normal", 0, TrainSettings())
    key = store.key(base)
    assert len(key) == 64 and int(key, 16) >= 0
    # an alias, or another spelling of the same parameters, is the same scheme
    assert store.key(Job("glorot_uniform", 0, TrainSettings())) == store.key(Job("xavier_uniform", 0, TrainSettings()))
    assert store.key(Job("random_uniform", 0, TrainSettings())) == store.key(
        Job("uniform:-0.05,0.05", 0, TrainSettings()))
    changed = [Job("kaiming_normal", 1, TrainSettings()), Job("xavier_normal", 0, TrainSettings())]
    changed += [Job("kaiming_normal", 0, TrainSettings.of(**{k: v})) for k, v in [
        ("lr", 0.01), ("hidden", (256,)), ("split_seed", 1), ("train_samples", 6000), ("classes", (5, 6)),
        ("optimizer", "sgd"), ("freeze", 1), ("dropout", 0.0), ("epochs", 3), ("lesson_eval", True)]]
    assert len({store.key(job) for job in changed} | {key}) == len(changed) + 1
    # Adam does not use momentum: the same job; SGD does: another.
    assert store.key(Job("kaiming_normal", 0, TrainSettings.of(momentum=0.5))) == key
    sgd = TrainSettings.of(optimizer="sgd")
    assert store.key(Job("rule", 0, sgd)) != store.key(Job("rule", 0, sgd.replace(momentum=0.5)))


def test_job_key_is_the_same_in_another_process() -> None:
    """Never Python's hash(), which is salted per process."""
    code = ("from initbench.storage import store; from initbench.jobs import Job; "
            "from initbench.settings import TrainSettings; "
            "print(store.key(Job('uniform:-0.1,0.1', 3, TrainSettings.of(hidden=(64, 64), classes=(5, 6)))))")
    keys = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env=os.environ | {"PYTHONHASHSEED": str(n)}).stdout.strip() for n in (1, 2)}
    assert keys == {store.key(Job("uniform:-0.1,0.1", 3, TrainSettings.of(hidden=(64, 64), classes=(5, 6))))}


def test_pretrained_jobs_are_keyed_by_the_files_content(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    tensors = {"layers.0.weight": torch.zeros(4, 784), "layers.0.bias": torch.zeros(4),
               "layers.1.weight": torch.zeros(10, 4), "layers.1.bias": torch.zeros(10)}
    save_file(tensors, path)
    first = store.key(Job(f"pretrained:{path}", 0, TrainSettings.of(hidden=(4,))))
    moved = tmp_path / "moved.safetensors"
    path.rename(moved)
    assert store.key(Job(f"pretrained:{moved}", 0, TrainSettings.of(hidden=(4,)))) == first  # same bytes
    save_file(tensors | {"layers.1.bias": torch.ones(10)}, moved)
    assert store.key(Job(f"pretrained:{moved}", 0, TrainSettings.of(hidden=(4,)))) != first


# --- grids


def test_grid_is_the_product_of_its_lists(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, 'activation = ["relu", "tanh"]\nhidden = ["32", "32x3", [16, 8]]\nlr = [0.001, 0.01]')
    resolved = config.resolve_sweep(path)
    assert [k for k, _ in resolved.grid] == ["activation", "hidden", "lr"]
    cells = resolved.cells()
    assert len(cells) == 12 and len(set(cells)) == 12
    assert {c.network.hidden for c in cells} == {(32,), (32, 32, 32), (16, 8)}
    assert len(resolved.jobs()) == 12 * 2 * 2
    assert resolved.run.save_weights is False  # a sweep keeps weights only when asked


def test_set_fixes_a_setting_or_varies_one(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, 'activation = ["relu", "tanh"]')
    fixed = config.resolve_sweep(path, ["activation=tanh", "seeds=3", "hidden=64x2"])
    assert fixed.grid == () and fixed.run.train.network.activation == "tanh" and fixed.run.seeds == (0, 1, 2)
    assert fixed.run.train.network.hidden == (64, 64)
    varied = config.resolve_sweep(path, ["grid.optimizer=['adam', 'sgd']", "grid.momentum=[0.0, 0.9]"])
    assert [k for k, _ in varied.grid] == ["activation", "optimizer", "momentum"] and len(varied.cells()) == 8


@pytest.mark.parametrize(("grid", "sets", "fragments"), [
    ('device = ["cpu"]', [], ["'grid.device'", "cannot vary in a sweep"]),
    ('activation = "relu"', [], ["must be a list of values"]),
    ('activation = ["relu", "swish"]', [], ["'grid.activation'", "must be one of relu"]),
    ('lr = [0.01, 0.01]', [], ["0.01 is given twice"]),
    ('freeze = [1, 3]', [], ["In the grid's cell freeze = 3", "would freeze every layer"]),
    ('lr = [0.01]', ["activation=['relu', 'tanh']"], ["list them under [grid]"]),
    ('lr = [0.01]', ["seeds"], ["--set takes KEY=VALUE"]),
])
def test_bad_grids_are_clear_usage_errors(tmp_path: Path, grid: str, sets: list[str], fragments: list[str]) -> None:
    args = [str(sweep_file(tmp_path, grid)), "--out", str(tmp_path / "out")]
    for s in sets:
        args += ["--set", s]
    result = sweep(*args)
    assert_clean_error(result, *fragments, code=2)
    assert not (tmp_path / "out").exists()


def test_usage_errors_of_a_sweep_are_found_before_torch_is_imported(tmp_path: Path) -> None:
    code = ("import sys; from initbench.cli import main; sys.argv = ['initbench', 'sweep', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert 'torch' not in sys.modules; raise")
    done = subprocess.run([sys.executable, "-c", code, str(sweep_file(tmp_path, 'lr = [0.01, -1]'))],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "must be a number greater than 0" in " ".join(done.stderr.split()), done.stderr


# --- sweeps into a store


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, Path]:
    """One uninterrupted sweep of the small grid: (its config, its folder)."""
    tmp = tmp_path_factory.mktemp("sweep")
    path = sweep_file(tmp, data_dir=str(data_dir))
    result = sweep(str(path), "--out", str(tmp / "done"), "--format", "csv")
    assert result.exit_code == 0, result.output
    return path, tmp / "done"


def test_sweep_writes_its_store_and_views(finished: tuple[Path, Path]) -> None:
    _, folder = finished
    assert sorted(p.name for p in folder.iterdir()) == [
        "accuracy_by_hidden.png", "cells.csv", "heatmap.png", "report.html", "runs.csv", store.FILE, "sweep.json",
        "sweep.toml"]
    with sqlite3.connect(folder / store.FILE) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # WAL only while it is written
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (count,) = db.execute("SELECT count(*) FROM jobs").fetchone()
        assert count == 8  # 2 cells x 2 schemes x 2 seeds
        key, identity, blob, epochs, batches = db.execute(
            "SELECT key, identity, losses, epochs, batches FROM jobs LIMIT 1").fetchone()
    import hashlib

    assert hashlib.sha256(identity.encode()).hexdigest() == key  # the key is the identity's SHA-256
    assert len(blob) == 4 * epochs * batches == 4 * 1 * 6  # float32, one epoch of 600 images in 100s
    runs = pd.read_csv(folder / "runs.csv")
    assert len(runs) == 8 and {"key", "name", "seed", "hidden", "val_acc", "test_acc", "host"} <= set(runs.columns)
    figures = json.loads((folder / "sweep.json").read_text())["figures"]
    assert figures["jobs"] == figures["trained_now"] == 8 and figures["model_epochs_per_second"] > 0


def test_cells_are_paired_comparisons_computed_by_the_formulas(finished: tuple[Path, Path]) -> None:
    """cells.csv against runs.csv: per cell, mean and std over seeds, and each scheme's
    paired difference to the cell's best with a t-interval, mean +- t(0.975, n-1) sd/sqrt(n)."""
    _, folder = finished
    runs, cells = (pd.read_csv(folder / name, dtype={"hidden": str}) for name in ("runs.csv", "cells.csv"))
    assert len(cells) == 4 and set(cells["hidden"]) == {"32", "32x3"}
    for hidden, cell in cells.groupby("hidden"):
        val = runs[runs["hidden"] == hidden]
        val = val.pivot(index="seed", columns="name", values="val_acc")
        best = val.mean().idxmax()
        for row in cell.itertuples():
            close = {"abs": 2e-6}  # the CSVs hold 6 significant digits
            assert row.val_acc_mean == pytest.approx(val[row.scheme].mean(), **close)
            assert row.val_acc_std == pytest.approx(val[row.scheme].std(), **close)
            assert row.baseline == best
            diff = val[row.scheme] - val[best]
            half = scipy_stats.t.ppf(0.975, len(diff) - 1) * diff.std() / len(diff) ** 0.5
            if row.scheme == best:
                assert row.verdict == "the baseline"
            else:
                assert row.diff_mean == pytest.approx(diff.mean(), **close)
                assert (row.diff_low, row.diff_high) == pytest.approx((diff.mean() - half, diff.mean() + half),
                                                                      abs=1e-4)
                assert row.verdict in ("worse", "indistinguishable at 2 seeds")


def test_report_on_a_sweep_folder_prints_every_cell(finished: tuple[Path, Path]) -> None:
    _, folder = finished
    result = runner.invoke(app, ["report", str(folder), "--format", "markdown", "--no-pictures"])
    assert result.exit_code == 0, result.output
    assert "Difference to the cell's best [95% CI]" in result.output and "| 32x3 |" in result.output
    assert "the baseline" in result.output and "8 jobs" in result.output


def test_the_same_sweep_again_trains_nothing(finished: tuple[Path, Path]) -> None:
    path, folder = finished
    before = rows(folder, NUMBERS + ["chunk", "finished"])
    result = sweep(str(path), "--out", str(folder))
    assert result.exit_code == 0, result.output
    assert "In the store: 8; to train: 0." in " ".join(result.output.split())
    assert rows(folder, NUMBERS + ["chunk", "finished"]) == before
    assert json.loads((folder / "sweep.json").read_text())["figures"]["trained_now"] == 0


def test_more_seeds_train_only_the_new_jobs(finished: tuple[Path, Path], tmp_path: Path) -> None:
    path, done = finished
    folder = tmp_path / "extended"
    import shutil

    shutil.copytree(done, folder)
    before = rows(folder, NUMBERS + ["chunk", "finished"])
    result = sweep(str(path), "--out", str(folder), "--set", "seeds=3", "--format", "csv")
    assert result.exit_code == 0, result.output
    after = rows(folder, NUMBERS + ["chunk", "finished"])
    assert len(after) == 12 and set(before) <= set(after)  # the old rows untouched
    assert json.loads((folder / "sweep.json").read_text())["figures"]["trained_now"] == 4
    assert pd.read_csv(folder / "cells.csv")["seeds"].tolist() == [3] * 4


def test_dry_run_lists_the_jobs_and_trains_nothing(finished: tuple[Path, Path], tmp_path: Path) -> None:
    path, done = finished
    result = sweep(str(path), "--out", str(done), "--set", "seeds=3", "--dry-run", "--format", "csv")
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert len(listed) == 12 and (listed["status"] == "to train").sum() == 4
    assert set(listed.loc[listed["status"] == "to train", "seed"]) == {2}
    new = tmp_path / "never"
    assert sweep(str(path), "--out", str(new), "--dry-run").exit_code == 0 and not new.exists()


def test_a_second_writer_is_refused(finished: tuple[Path, Path]) -> None:
    path, folder = finished
    with store.open_store(folder, "sweep"):
        result = sweep(str(path), "--out", str(folder))
    assert_clean_error(result, "Another initbench process is writing to", code=2)


def test_a_folder_of_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    result = sweep(str(sweep_file(tmp_path)), "--out", str(tmp_path / "out"))
    assert_clean_error(result, "holds files but no sweep store", code=2)


def test_kill_9_then_the_same_command_finishes_without_retraining(finished: tuple[Path, Path],
                                                                  tmp_path: Path, data_dir: Path) -> None:
    """A sweep killed with SIGKILL after its first chunks were committed: the store is intact,
    and the same command trains only the jobs that were not committed; the rows then equal
    those of the uninterrupted sweep, number for number."""
    path, done = finished
    folder = tmp_path / "killed"
    command = [sys.executable, "-m", "initbench", "sweep", str(path), "--out", str(folder), "--quiet",
               "--set", "max_batch_models=1"]  # a chunk (and a commit) per job
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and process.poll() is None:
        if (folder / store.FILE).exists():
            try:
                with sqlite3.connect(folder / store.FILE) as db:
                    committed = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
            except sqlite3.OperationalError:  # the table is not made yet
                committed = 0
            if committed >= 2:
                break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    survived = rows(folder, NUMBERS + ["chunk", "finished"])
    assert 2 <= len(survived) < 8, "the sweep was not killed in the middle"
    with sqlite3.connect(folder / store.FILE) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    result = sweep(str(path), "--out", str(folder), "--set", "max_batch_models=1")
    assert result.exit_code == 0, result.output
    assert f"In the store: {len(survived)}; to train: {8 - len(survived)}" in " ".join(result.output.split())
    assert set(survived) <= set(rows(folder, NUMBERS + ["chunk", "finished"]))  # not retrained
    assert rows(folder) == rows(done)  # and the numbers are those of the uninterrupted sweep


# --- compare is a run folder with a store


def test_compare_keeps_its_results_in_a_store(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["compare", "rule", "zeros", "--epochs", "1", "--train-samples", "600",
                                 "--seeds", "2", "--data-dir", str(data_dir), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    with store.open_store(out, write=False) as st:
        frame = st.frame()
        assert st.info() == {"version": str(store.VERSION), "kind": "run"}
    runs = pd.read_csv(out / "runs.csv")
    merged = runs.merge(frame, left_on=["scheme", "seed"], right_on=["name", "seed"])
    assert len(merged) == 4 and merged["val_acc_x"].tolist() == pytest.approx(merged["val_acc_y"].tolist(), abs=1e-6)
    assert (merged["weights_file"] == "weights/" + merged["scheme_x"] + "-seed" + merged["seed"].astype(str)
            + ".safetensors").all()
    # report reads a folder without a store (written before stores) from its CSVs, as it always did
    (out / store.FILE).unlink()
    assert runner.invoke(app, ["report", str(out), "--no-pictures"]).exit_code == 0


def test_a_sweep_will_not_write_into_a_compare_run(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert runner.invoke(app, ["compare", "rule", "--epochs", "1", "--train-samples", "600", "--data-dir",
                               str(data_dir), "--out", str(out), "--quiet"]).exit_code == 0
    result = sweep(str(sweep_file(tmp_path)), "--out", str(out))
    assert_clean_error(result, "holds a run folder's store, not a sweep's", code=2)


def test_a_sweep_that_fails_before_any_job_leaves_no_folder(finished: tuple[Path, Path], tmp_path: Path) -> None:
    """A cell too large for memory is found when planning: the new folder is removed; an
    existing store is left as it was."""
    path, done = finished
    result = sweep(str(path), "--out", str(tmp_path / "huge"), "--set", "hidden=200000x4")
    assert_clean_error(result, "One model with these settings needs about", "Use smaller --hidden sizes")
    assert not (tmp_path / "huge").exists()
    before = rows(done)
    result = sweep(str(path), "--out", str(done), "--set", "grid.hidden=[\"32\", \"200000x4\"]")
    assert_clean_error(result, "One model with these settings needs about")
    assert rows(done) == before


def test_the_shipped_sweeps_are_valid() -> None:
    depth = config.resolve_sweep(ROOT / "configs" / "sweep-depth.toml")
    assert {c.network.hidden for c in depth.cells()} == {(256,) * 2, (256,) * 10, (256,) * 30}
    assert {c.network.activation for c in depth.cells()} == {"relu", "tanh"}
    bench = config.resolve_sweep(ROOT / "configs" / "sweep-bench.toml")
    assert len(bench.jobs()) == 162
    assert len(config.resolve_sweep(SMOKE).jobs()) == 24
    assert len(config.resolve_sweep(ROOT / "configs" / "sweep-lesson.toml").jobs()) == 60


def test_report_pairs_schemes_over_the_seeds_they_share(finished: tuple[Path, Path], tmp_path: Path) -> None:
    """A store extended for one scheme only (rule gets seed 2): the report compares each
    scheme with its cell's best on the seeds both have, and says how many."""
    import shutil

    path, done = finished
    folder = tmp_path / "uneven"
    shutil.copytree(done, folder)
    assert sweep(str(path), "--out", str(folder), "--set", "seeds=[2]", "--set", "schemes=['rule']",
                 "--quiet").exit_code == 0
    result = runner.invoke(app, ["report", str(folder), "--format", "csv", "--no-pictures"])
    assert result.exit_code == 0, result.output
    cells = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert len(cells) == 4 and sorted(cells["seeds"]) == [2, 2, 3, 3]


def test_at_one_seed_the_verdict_is_the_point_difference_untested(data_dir: Path, tmp_path: Path) -> None:
    """One seed has no interval: rule's 65.92% against zeros' 27.18% was "indistinguishable
    at 1 seed". The verdict gives the point difference and says one seed cannot be tested."""
    path = sweep_file(tmp_path, 'hidden = ["32", "32x2"]', schemes=["rule", "zeros"], seeds=1,
                      data_dir=str(data_dir))
    result = sweep(str(path), "--out", str(tmp_path / "one"), "--format", "markdown", "--quiet")
    assert result.exit_code == 0, result.output
    assert "indistinguishable" not in result.stdout
    cells = pd.read_csv(tmp_path / "one" / "cells.csv", dtype={"hidden": str})
    for row in cells[cells["scheme"] == "zeros"].itertuples():
        assert row.seeds == 1 and row.diff_mean < 0
        assert row.verdict == f"lower by {-100 * row.diff_mean:.2f} points; 1 seed cannot be tested", row.verdict
        assert f"| {100 * row.diff_mean:+.2f} | {row.verdict} |" in result.stdout
    assert "whether a difference is real cannot be tested" in " ".join(result.stdout.split())


def test_the_plan_gives_its_time_as_a_range_of_the_timed_steps(finished: tuple[Path, Path]) -> None:
    """The plan's estimate came from three steps' median: on a machine shared with other
    work it said 71 minutes for a sweep of 75 s. Its steps are now timed several times, and
    the plan line and sweep.json give the range their quartiles make."""
    path, done = finished
    figures = json.loads((done / "sweep.json").read_text())["figures"]
    low, high = figures["estimated_seconds_range"]  # of the last run into it: nothing left to train is 0 s
    assert low <= figures["estimated_seconds"] <= high and (low > 0 or figures["trained_now"] == 0), figures
    result = sweep(str(path), "--out", str(done), "--set", "seeds=3", "--dry-run", "-f", "csv")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    unit = r"(s|min|h)"
    assert re.search(rf"estimated (about [\d.]+ {unit}|[\d.]+( {unit})?-[\d.]+ {unit}) of training", said), said
    assert "the middle half of their times" in said


def test_a_store_is_kept_to_one_engine_and_device(finished: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    path, done = finished
    folder = tmp_path / "other-engine"
    shutil.copytree(done, folder)
    result = sweep(str(path), "--out", str(folder), "--set", "engine=sequential")
    assert_clean_error(result, "holds jobs trained by the batched engine on cpu", "sequential", code=2)


def test_rows_without_what_is_now_kept_are_trained_again(finished: tuple[Path, Path], tmp_path: Path) -> None:
    """Resuming with track_stats: rows recorded without layer statistics count as missing."""
    import shutil

    path, done = finished
    folder = tmp_path / "stats"
    shutil.copytree(done, folder)
    result = sweep(str(path), "--out", str(folder), "--set", "track_stats=true", "--set", "grid.hidden=['32']")
    assert result.exit_code == 0, result.output
    assert "In the store: 0; to train: 4" in " ".join(result.output.split())
    with sqlite3.connect(folder / store.FILE) as db:
        assert db.execute("SELECT count(*) FROM jobs WHERE layer_stats IS NOT NULL").fetchone() == (4,)


def test_the_ci_smoke_sweep_runs_and_finds_depth_hurts_rule(data_dir: Path, tmp_path: Path) -> None:
    """configs/sweep-smoke.toml, as CI runs it: 24 jobs, and the report it prints."""
    result = sweep(str(SMOKE), "--out", str(tmp_path / "smoke"), "--set", f"data_dir='{data_dir}'",
                   "--format", "csv", "--quiet")
    assert result.exit_code == 0, result.output
    cells = pd.read_csv(pd.io.common.StringIO(result.stdout), dtype={"hidden": str})
    assert len(cells) == 12 and set(cells["seeds"]) == {2}
    rule = cells[cells["scheme"] == "rule"].set_index(["activation", "hidden"])["val_acc_mean"]
    assert (rule.xs("64x6", level="hidden") < rule.xs("64x2", level="hidden") - 0.15).all()  # depth: rule falls
