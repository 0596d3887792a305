"""The command line as a user meets it, through Typer's CliRunner, on real data."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from initbench.cli import app

from .conftest import ROOT

runner = CliRunner()


def compare(*args: str, env: dict | None = None):
    return runner.invoke(app, ["compare", *args], env=env)


def assert_clean_error(result, *fragments: str, code: int = 1) -> None:
    """One paragraph, no traceback; exit status 2 for what was typed, 1 for work that failed."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "Error:" in result.output
    for fragment in fragments:
        assert fragment in " ".join(result.output.split()), result.output


def test_smoke_run_end_to_end(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    result = compare("--config", str(ROOT / "configs" / "smoke.toml"), "--data-dir", str(data_dir),
                     "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    assert "After 1 epoch" in result.output and f"Results in {out}" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "accuracy.csv", "config.toml", "loss_curves.png", "loss_full.png", "losses.csv", "report.html", "run.json",
        "runs.csv", "store.sqlite", "weights"]
    assert len(list((out / "weights").glob("*.safetensors"))) == 10

    acc = pd.read_csv(out / "accuracy.csv").set_index("scheme")
    assert list(acc.columns) == ["seeds", "val_acc_mean", "val_acc_std", "test_acc_mean", "test_acc_std",
                                 "last_batch_loss_mean", "last_epoch_loss_mean", "diverged_seeds", "diff_mean",
                                 "diff_low", "diff_high", "verdict"]  # paired to the best: 2 seeds
    assert acc["verdict"].iloc[0] == "the baseline" and (acc["diff_mean"].iloc[1:] <= 0).all()
    assert set(acc.index) == {"zeros", "ones", "uniform", "rule", "default"} and (acc["seeds"] == 2).all()
    assert acc.loc["rule", "val_acc_mean"] > acc.loc["zeros", "val_acc_mean"] + 0.4
    assert abs(acc.loc["zeros", "val_acc_mean"] - 0.1) < 0.03  # chance
    assert acc["val_acc_mean"].is_monotonic_decreasing  # best first

    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 10 and set(runs["seed"]) == {0, 1}
    rule = runs[runs.scheme == "rule"]
    assert acc.loc["rule", "val_acc_std"] == pytest.approx(rule["val_acc"].std(), rel=1e-4)

    losses = pd.read_csv(out / "losses.csv")
    assert len(losses) == 10 * 60  # 6,000 images in batches of 100
    assert list(losses.columns) == ["scheme", "seed", "epoch", "batch", "loss"]
    last = losses[(losses.scheme == "rule") & (losses.batch == 60)]["loss"].mean()
    assert acc.loc["rule", "last_batch_loss_mean"] == pytest.approx(last, rel=1e-4)
    epoch_mean = losses[(losses.scheme == "rule")].groupby("seed")["loss"].mean().mean()
    assert acc.loc["rule", "last_epoch_loss_mean"] == pytest.approx(epoch_mean, rel=1e-4)
    assert list(runs.columns) == ["scheme", "seed", "val_acc", "test_acc", "last_batch_loss", "last_epoch_loss",
                                  "diverged", "diverged_at_batch"]

    info = json.loads((out / "run.json").read_text())
    assert info["config"]["epochs"] == 1 and info["config"]["train_samples"] == 6000
    assert {"python", "torch", "torchvision", "initbench"} <= set(info["versions"])
    assert info["data"] == {"train": 6000, "val": 12000, "test": 10000} and info["train_seconds"] > 0
    for png in ("loss_curves.png", "loss_full.png"):
        content = (out / png).read_bytes()
        assert content.startswith(b"\x89PNG") and len(content) > 20_000


def test_divergence_is_a_result_not_a_crash(data_dir: Path, tmp_path: Path) -> None:
    result = compare("rule", "uniform", "--lr", "1e30", "--epochs", "1", "--train-samples", "1000",
                     "--data-dir", str(data_dir), "--out", str(tmp_path / "d"), "--quiet")
    assert result.exit_code == 0, result.output
    acc = pd.read_csv(tmp_path / "d" / "accuracy.csv").set_index("scheme")
    assert (acc["diverged_seeds"] == 1).all()
    runs = pd.read_csv(tmp_path / "d" / "runs.csv")
    assert runs["diverged_at_batch"].between(2, 10).all()


def test_sequential_engine_and_chunks_give_the_same_table_shape(data_dir: Path, tmp_path: Path) -> None:
    for name, extra in (("seq", ["--engine", "sequential"]), ("chunked", ["--max-batch-models", "2"])):
        result = compare("zeros", "rule", "default", "--epochs", "1", "--train-samples", "1000", "--data-dir",
                         str(data_dir), "--out", str(tmp_path / name), "--quiet", *extra)
        assert result.exit_code == 0, result.output
        acc = pd.read_csv(tmp_path / name / "accuracy.csv").set_index("scheme")
        assert acc.loc["rule", "val_acc_mean"] > 0.5 and acc.loc["zeros", "val_acc_mean"] < 0.15
    info = json.loads((tmp_path / "seq" / "run.json").read_text())
    assert info["config"]["engine"] == "sequential"


def test_lesson_eval_scores_with_dropout_on(data_dir: Path, tmp_path: Path) -> None:
    """--lesson-eval changes the accuracies (dropout stays on when scoring) but not the
    training: the same batches, masks and losses; the table and run.json say so."""
    runs = {}
    for name, extra in (("eval", []), ("lesson", ["--lesson-eval"])):
        result = compare("rule", "default", "--epochs", "1", "--train-samples", "2000", "--data-dir", str(data_dir),
                         "--out", str(tmp_path / name), "--quiet", *extra)
        assert result.exit_code == 0, result.output
        runs[name] = pd.read_csv(tmp_path / name / "runs.csv").set_index("scheme")
    assert "scored with dropout on (--lesson-eval)" in " ".join(result.output.split())
    assert json.loads((tmp_path / "lesson" / "run.json").read_text())["config"]["lesson_eval"] is True
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "eval" / "losses.csv"),
                                  pd.read_csv(tmp_path / "lesson" / "losses.csv"))
    gap = runs["eval"]["val_acc"] - runs["lesson"]["val_acc"]
    assert (gap != 0).any() and (gap.abs() < 0.1).all(), gap  # dropout noise, not another model


def test_bench_writes_its_numbers(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "--seeds", "1", "--repeats", "1", "--no-whole-process",
                                 "--train-samples", "4000", "--data-dir", str(data_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    numbers = json.loads(out.read_text())
    per = numbers["seconds_per_model_epoch"]
    assert set(per) == {"floor", "batched", "batched_frozen", "sequential", "vmap", "module_loop", "lesson"}
    assert all(v > 0 for v in per.values()) and "hidden layers frozen" in result.output
    assert "torch.func vmap recipe" in result.output and "nn.Modules" in result.output
    assert numbers["ratios"]["batched_over_floor"] == pytest.approx(per["batched"] / per["floor"])
    assert numbers["models_in_batched_step"] == 6 and "GEMM floor" in result.output
    assert numbers["train_images"] == 4000


def test_bench_scaling_times_the_step_at_each_count(tmp_path: Path) -> None:
    """In a process of its own, as it is run: resident memory grows by what the models take
    (in this long-lived test process, freed memory would be reused)."""
    out = tmp_path / "scaling.json"
    result = subprocess.run([sys.executable, "-m", "initbench", "bench", "--scaling", "8,2", "--repeats", "2",
                             "--out", str(out), "-f", "csv"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    numbers = json.loads(out.read_text())
    rows = numbers["scaling"]
    assert [r["models"] for r in rows] == [2, 8] and numbers["repeats"] == 2
    for r in rows:
        assert r["spread"][0] <= r["seconds_per_step"] <= r["spread"][1]
        assert r["model_epochs_per_second"] == pytest.approx(r["models"] / (r["seconds_per_step"] * 480))
        assert r["memory_bytes"] > 0 and r["bytes_per_model"] == pytest.approx(r["memory_bytes"] / r["models"])
    assert "models,step,min_max,rate,memory,per_model\n2," in result.stdout
    bad = runner.invoke(app, ["bench", "--scaling", "6,0", "--out", str(tmp_path / "bad.json")])
    assert_clean_error(bad, "Invalid --scaling: must be different whole numbers of at least 1", code=2)


def test_bench_breakdown_puts_the_epoch_into_parts_beside_their_floors(data_dir: Path, tmp_path: Path) -> None:
    """In a process of its own, as it is run: the parts in their order, the work's parts
    measured, each floor positive, what the operations leave to Python not negative, and
    the profiler's own log lines kept off stderr."""
    out = tmp_path / "breakdown.json"
    result = subprocess.run([sys.executable, "-m", "initbench", "bench", "--breakdown", "--seeds", "1", "--repeats",
                             "1", "--train-samples", "1000", "--data-dir", str(data_dir), "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    numbers = json.loads(out.read_text())
    parts = {p["name"]: p for p in numbers["breakdown"]}
    assert list(parts)[:10] == ["products", "optimizer", "dropout masks", "activations", "loss", "batches",
                                "element-wise", "evaluation", "building", "Python and dispatch"]
    for name in ("products", "optimizer", "dropout masks", "activations", "loss", "evaluation", "building"):
        assert parts[name]["seconds"] > 0, name
    assert all(p["floor"] > 0 for p in parts.values() if p["floor"] is not None)
    assert parts["products"]["floor"] is not None and parts["building"]["floor"] is None
    assert parts["Python and dispatch"]["seconds"] >= -1e-3
    assert sum(p["seconds"] for p in parts.values()) == pytest.approx(numbers["profiled_seconds"])
    assert numbers["models"] == 6 and numbers["unprofiled_seconds"] > 0
    assert "Python and dispatch" in result.stdout and "Traceback" not in result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith(("USDT:", "ERROR:", "STAGE:"))]
    both = runner.invoke(app, ["bench", "--breakdown", "--scaling", "6,60", "--out", str(tmp_path / "both.json")])
    assert_clean_error(both, "--scaling and --breakdown are two different measurements", code=2)


def test_schemes_lists_every_scheme_and_alias() -> None:
    from initbench import initializers

    table = runner.invoke(app, ["schemes", "--format", "table"], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    for name in [*initializers.names(), *initializers.ALIASES]:
        assert name in table.output
    assert "He et al. 2015" in table.output and "var = gain^2 * 2/(fan_in + fan_out)" in table.output
    listed = json.loads(runner.invoke(app, ["schemes", "--format", "json"]).output)
    assert [row["name"] for row in listed] == initializers.names()
    assert next(r for r in listed if r["name"] == "lsuv")["data_dependent"]


def test_schemes_finds_by_a_pattern_and_prints_names_alone() -> None:
    """177 lines at 80 columns with no way to narrow them: PATTERN (any part of a name, an
    alias or a summary, or a glob of a whole name) and --names (one a line, for scripts)."""
    from initbench import initializers

    found = runner.invoke(app, ["schemes", "orthogonal", "--names"])
    assert found.exit_code == 0 and found.stdout.split() == ["orthogonal", "lsuv"], found.output  # lsuv: its summary
    glob = runner.invoke(app, ["schemes", "kaiming_*", "-f", "json"])
    assert glob.exit_code == 0, glob.output
    assert {row["name"] for row in json.loads(glob.stdout)} >= {"kaiming_uniform", "kaiming_normal"}
    by_alias = runner.invoke(app, ["schemes", "RANDOM_uniform", "--names"]).stdout.split()
    assert by_alias == ["uniform"]  # an alias (Keras's random_uniform), ignoring case
    everything = runner.invoke(app, ["schemes", "--names"]).stdout.split()
    assert everything == [row["name"] for row in initializers.catalogue()]
    assert_clean_error(runner.invoke(app, ["schemes", "no-such-thing"]), "No scheme's name, alias or summary matches "
                       "'no-such-thing'", code=1)


def test_schemes_shows_each_names_convention_whole_at_80_columns() -> None:
    from initbench import initializers

    lines = runner.invoke(app, ["schemes", "--format", "table"], env={"COLUMNS": "80"}).output.splitlines()
    assert max(len(line) for line in lines) <= 80
    words = [line.replace("│", " ").split() for line in lines]  # the box's borders are not words
    cells = {tuple(w[:2]) for w in words if len(w) >= 2}
    for row in initializers.catalogue():  # every name whole on a line, its convention beside it
        assert (row["usage"], row["convention"]) in cells
        assert all((a["name"], "keras") in cells for a in row["aliases"])
    assert ("=", "uniform:-0.05,0.05") in cells and ("he_normal", "keras") in cells
    listed = {r["name"]: r for r in json.loads(runner.invoke(app, ["schemes", "--format", "json"]).output)}
    assert {r["convention"] for r in listed.values()} == {"lesson", "torch", "keras", "paper"}
    assert listed["he_normal"]["convention"] == "keras" and listed["kaiming_normal"]["convention"] == "torch"
    assert {"name": "random_uniform", "equals": "uniform:-0.05,0.05", "convention": "keras"} in listed["uniform"]["aliases"]


def test_inspect_flags_symmetry_and_writes_pictures(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "inspect"
    result = runner.invoke(app, ["inspect", "zeros", "ones", "rule", "kaiming_normal", "xavier_normal",
                                 "--data-dir", str(data_dir), "--out", str(out)], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    flags = json.loads((out / "inspect.json").read_text())["flags"]
    assert all(any(f.startswith("symmetry") for f in flags[s]) for s in ("zeros", "ones"))
    assert flags["rule"] == [] and flags["kaiming_normal"] == [] and flags["xavier_normal"] == []
    assert "symmetry: every unit of layer(s) 1, 2 is identical" in " ".join(result.output.split())
    stats = pd.read_csv(out / "inspect.csv")
    assert len(stats) == 5 * 3 and set(stats["distinct_units"][stats.scheme == "zeros"]) == {1}
    for png in ("weights_hist.png", "activations.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")


def test_inspect_flags_overflow_instead_of_crashing(data_dir: Path, tmp_path: Path) -> None:
    """Weights or outputs beyond float32 (here inf) are a finding, reported with the rest."""
    out = tmp_path / "inspect"
    result = runner.invoke(app, ["inspect", "rule", "normal:1e38", "constant:3e38", "--data-dir", str(data_dir),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    flags = json.loads((out / "inspect.json").read_text())["flags"]
    assert flags["rule"] == []
    assert all(any(f.startswith("non-finite values") for f in flags[s]) for s in ("normal:1e38", "constant:3e38"))
    assert all((out / png).stat().st_size > 10_000 for png in ("weights_hist.png", "activations.png"))


def test_track_stats_records_every_epoch(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "track"
    result = compare("ones", "kaiming_normal", "--activation", "tanh", "--hidden", "64x3", "--epochs", "2",
                     "--train-samples", "1000", "--track-stats", "--data-dir", str(data_dir), "--out", str(out),
                     "--quiet")
    assert result.exit_code == 0, result.output
    stats = pd.read_csv(out / "layer_stats.csv")
    assert set(stats["epoch"]) == {0, 1, 2} and set(stats["layer"]) == {1, 2, 3, 4}
    ones = stats[(stats.scheme == "ones") & (stats.layer == 1)].set_index("epoch")
    assert (ones["distinct_units"] == 1).all()  # symmetric at init and still after training
    assert (out / "layer_stats.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((out / "run.json").read_text())["config"]["activation"] == "tanh"


@pytest.mark.parametrize("args,fragments,code", [
    (["rul"], ["Unknown scheme 'rul'", "Did you mean 'rule'?", "zeros, ones"], 2),
    (["rule", "--epochs", "0"], ["Invalid --epochs: must be at least 1; got 0."], 2),
    (["rule", "--epochs", "-2"], ["Invalid --epochs: must be at least 1; got -2."], 2),
    (["rule", "--epochs", "two"], ["Invalid value for '--epochs'", "valid integer"], 2),
    (["rule", "--seeds", "2", "--seed-list", "1,2"], ["either --seeds or --seed-list"], 2),
    (["rule", "--config", "missing.toml"], ["Config file missing.toml does not exist."], 2),
    (["rule", "--device", "cuda:3"], ["is not available here"], 1),
    (["rule", "--device", "gpu"], ["Invalid --device: must be auto, cpu, cuda, cuda:N or mps; got 'gpu'"], 2),
    (["rule", "--engine", "fast"], ["'fast' is not one of 'auto', 'batched', 'sequential'"], 2),
    (["rule", "--activation", "swish"], ["'swish' is not one of 'relu', 'tanh', 'sigmoid', 'gelu', 'selu'"], 2),
    (["constant:x"], ["write constant[:VALUE]"], 2),
    (["rule", "--max-batch-models", "0"], ["Invalid --max-batch-models: must be at least 1"], 2),
])
def test_bad_input_is_one_clean_paragraph(tmp_path: Path, args, fragments, code) -> None:
    out = tmp_path / "out"
    assert_clean_error(compare(*args, "--out", str(out)), *fragments, code=code)
    assert not out.exists()


@pytest.mark.parametrize("args", [["rul"], ["rule", "--epochs", "0"], ["rule", "--activation", "swish"],
                                  ["sparse:1.5"], ["rule", "--batch-size", "60000"],
                                  ["default", "fixup", "--engine", "sequential"]])
def test_usage_errors_are_found_before_torch_is_imported(args: list[str]) -> None:
    """Exit status 2, and quick: the command line is checked before torch loads (2 s)."""
    code = "import sys; from initbench.cli import main; sys.argv = ['initbench', 'compare', *sys.argv[1:]]\n" \
           "try:\n    main()\nexcept SystemExit as e:\n    assert 'torch' not in sys.modules; raise"
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert done.returncode == 2 and "Error" in done.stderr and "Traceback" not in done.stderr, done.stderr


HEAVY = ("torch", "pandas", "numpy", "matplotlib", "scipy", "safetensors")  # a second or more to import, together


def test_a_runs_first_line_comes_before_the_heavy_imports(tmp_path: Path) -> None:
    """compare says what it is doing ("Loading FashionMNIST") before torch, pandas and the rest
    are imported: each is imported where it is used, after that line."""
    code = ("import sys; from initbench.views import progress; from initbench.cli import main\n"
            "def stage(self, text, total=None):  # the run's first line: what is imported by then, and stop\n"
            f"    print(text, [m for m in {HEAVY} if m in sys.modules]); sys.exit(3)\n"
            "progress.Activity.stage = stage\n"
            "sys.argv = ['initbench', 'compare', 'rule', '--out', sys.argv[1]]; main()")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True)
    assert done.returncode == 3 and done.stdout == "Loading FashionMNIST []\n", done.stdout + done.stderr


def test_unwritable_output_folder(tmp_path: Path, data_dir: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = compare("rule", "--data-dir", str(data_dir), "--out", str(blocker / "out"))
    assert_clean_error(result, "is a file, not a folder", "Choose another with --out", code=2)


def test_no_data_and_no_network_leaves_nothing_behind(offline: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = compare("rule", "--data-dir", str(offline), "--out", str(out))
    assert_clean_error(result, "apt-get install -y dataset-fashion-mnist")
    assert not out.exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = compare("rul", "--debug", "--out", str(tmp_path / "o"))
    assert result.exit_code != 0 and type(result.exception).__name__ == "UsageError"


def test_module_entry_point_and_version() -> None:
    done = subprocess.run([sys.executable, "-m", "initbench", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("initbench ")
