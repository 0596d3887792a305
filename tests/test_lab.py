"""The transformer language-model lab end to end (issue 34): compare trains gpts on a text,
prints validation loss and bits per character with paired intervals, draws the loss curves
and writes report.html with each model's sample; the same through the Python API; a user's
per-layer scheme reads the role record; bad input is one paragraph and its exit status."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

import initbench as ib
from initbench.cli import app

runner = CliRunner()
SMALL = ["--network", "gpt", "--hidden", "32x2", "--heads", "2", "--context", "16", "--batch-size", "8",
         "--epochs", "2", "--steps", "12", "--quiet"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of ten small documents: one held out for validation, one for test."""
    folder = tmp_path_factory.mktemp("corpus")
    for i in range(10):
        (folder / f"doc{i}.txt").write_text("".join(f"line {j} of document {i}: the cat sat on the mat.\n"
                                                    for j in range(60)))
    return folder


def compare(*args: str):
    return runner.invoke(app, ["compare", *args])


def test_compare_trains_gpts_on_a_text_and_reports_loss_bits_pairs_and_samples(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "lab"
    result = compare("gpt2", "small_init", "default", "--dataset", f"text:{corpus}", "--seeds", "3", *SMALL,
                     "--out", str(out))
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "After 24 steps, mean ± std over 3 seeds" in said
    for header in ("Validation loss (nats)", "Validation bits/char", "Difference to the best [95% CI]"):
        assert header in said
    runs = pd.read_csv(out / "runs.csv")
    assert {"val_loss", "test_loss"} <= set(runs.columns) and "val_acc" not in runs.columns
    summary = pd.read_csv(out / "accuracy.csv")
    assert list(summary["val_loss_mean"]) == sorted(summary["val_loss_mean"])  # lowest loss first
    assert summary["verdict"].iloc[0] == "the baseline" and summary["diff_mean"].iloc[1:].ge(0).all()
    samples = pd.read_csv(out / "samples.csv", keep_default_na=False)
    assert len(samples) == 9 and samples["sample"].str.len().eq(200).all()
    page = (out / "report.html").read_text()
    assert "What each model wrote" in page and "Validation<br>bits/char" in page
    assert "gpt 32x2 (2 heads, context 16) on corpus0" in page and "training characters, 24 steps" in page
    assert "Chance is ln" in page and "nats per character" in page and "1 time in" not in page
    losses = pd.read_csv(out / "losses.csv")
    first = losses[(losses.epoch == 1) & (losses.batch == 1)]["loss"]
    vocab = len(ib.open(out).config["classes"])
    assert (first - math.log(vocab)).abs().max() < 1.0  # each starts near ln V: a loss about chance
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["network"] == "gpt" and config["hidden"] == [32, 32] and config["steps"] == 12


def test_the_api_trains_the_same_numbers(corpus: Path, tmp_path: Path) -> None:
    settings = {"network": "gpt", "hidden": "32x2", "heads": 2, "context": 16, "batch_size": 8, "epochs": 1,
                "steps": 8, "dataset": f"text:{corpus}", "seeds": 2, "progress": False}
    first = ib.compare(["gpt2", "zero_proj"], out=tmp_path / "a", **settings)
    again = ib.compare(["gpt2", "zero_proj"], out=tmp_path / "b", **settings)
    assert first.task.name == "next-token" and list(first.table.index)[0] in ("gpt2", "zero_proj")
    pd.testing.assert_frame_equal(first.runs, again.runs)
    assert first.samples["sample"].tolist() == again.samples["sample"].tolist()


def test_a_users_per_layer_scheme_reads_the_role_record_and_is_keyed_by_its_code(corpus: Path,
                                                                                   tmp_path: Path) -> None:
    code = tmp_path / "mine.py"
    code.write_text(
        "import math\n\n"
        "def depth_scaled(weight, bias, generator, layer):\n"
        "    '''N(0, 0.02), residual outputs by 1/sqrt(2L): gpt2 written by hand.'''\n"
        "    std = 0.02 / math.sqrt(2 * layer.blocks) if layer.part in ('attention_output', 'mlp_out') else 0.02\n"
        "    weight.normal_(0.0, std, generator=generator)\n"
        "    bias.zero_()\n")
    args = ["--dataset", f"text:{corpus}", *SMALL, "--epochs", "1"]
    mine = compare(f"{code}:depth_scaled", *args, "--out", str(tmp_path / "mine"))
    builtin = compare("gpt2", *args, "--out", str(tmp_path / "builtin"))
    assert mine.exit_code == 0 and builtin.exit_code == 0, mine.output + builtin.output
    a, b = (pd.read_csv(tmp_path / name / "losses.csv") for name in ("mine", "builtin"))
    assert a["loss"].tolist() == b["loss"].tolist()  # the same rule, the same streams: the same numbers
    code.write_text(code.read_text().replace("0.02 /", "0.01 /"))
    changed = compare(f"{code}:depth_scaled", *args, "--out", str(tmp_path / "changed"))
    keys = [json.loads((tmp_path / n / "run.json").read_text())["config"]["schemes"] for n in ("mine", "changed")]
    assert changed.exit_code == 0 and keys[0] == keys[1]  # named alike...
    assert pd.read_csv(tmp_path / "changed" / "losses.csv")["loss"].tolist() != a["loss"].tolist()  # ...not alike


@pytest.mark.parametrize(("args", "fragments"), [
    (["--heads", "3"], ["--heads 3 does not divide the width 32"]),
    (["--context", "100000"], ["--context 100,000 is longer than"]),
    (["--hidden", "32,64"], ["a gpt's blocks share one width"]),
    (["--classes", "1,2"], ["--classes applies to images, not to a text"]),
    (["--lesson-eval", "--dropout", "0.1"], ["--lesson-eval applies to images"]),
    (["--track-stats"], ["`initbench inspect --network gpt` shows each of its tensors"]),
    (["--parametrization", "mup", "--tied"], ["--tied with μP", "Leave --tied out"]),
    (["--parametrization", "mup", "--base-width", "31"], ["--base-width 31 is not split evenly by --heads 2"]),
])
def test_bad_gpt_settings_are_one_paragraph_and_exit_2(corpus: Path, args: list[str], fragments: list[str]) -> None:
    result = compare("gpt2", "--dataset", f"text:{corpus}", *SMALL, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Error:" in result.output
    for fragment in fragments:
        assert fragment in " ".join(result.output.split()), result.output


def test_a_scheme_without_a_rule_for_a_role_and_a_mismatched_network_are_refused(corpus: Path,
                                                                                 data_dir: Path) -> None:
    cases = [(["lsuv", "--dataset", f"text:{corpus}", *SMALL], "has no rule for the gpt network's roles"),
             (["gpt2", "--data-dir", str(data_dir), "--quiet"], "starts a transformer by its tensors' roles"),
             (["rule", "--dataset", f"text:{corpus}", "--quiet"], "The mlp network reads images, and corpus0 is text"),
             (["rule", "--network", "gpt", "--data-dir", str(data_dir), "--quiet"],
              "The gpt network reads text, and FashionMNIST is images. Train FashionMNIST with --network mlp or cnn or resmlp")]
    for args, fragment in cases:
        result = compare(*args)
        assert result.exit_code == 2 and fragment in " ".join(result.output.split()), result.output


def test_a_text_that_is_not_utf8_is_named_by_its_byte(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine so far\n" + b"\xff\xfe broken")
    result = compare("gpt2", "--dataset", f"text:{bad}", *SMALL)
    assert result.exit_code == 2 and "is not UTF-8 text: byte 12 (0xff)" in " ".join(result.output.split())


def test_inspect_shows_each_tensor_by_role_and_the_signal_through_the_blocks(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "inspect"
    result = runner.invoke(app, ["inspect", "gpt2", "megatron_normal", "--network", "gpt", "--dataset",
                                 f"text:{corpus}", "--hidden", "32x4", "--heads", "2", "--context", "16",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "gpt2: the signal through the blocks at init" in said and "attention_output.3" in said
    signal = pd.read_csv(out / "signal.csv")
    assert list(signal.groupby("scheme").size()) == [4, 4]
    last = signal[signal["block"] == 4].set_index("scheme")["residual_std"]
    assert last["megatron_normal"] > last["gpt2"]  # unscaled branches add more to the stream
    assert (out / "signal.png").stat().st_size > 10_000
    config = json.loads((out / "inspect.json").read_text())["config"]
    assert config["heads"] == 2 and config["network"] == "gpt"


def test_a_sweep_on_a_text_ranks_by_the_lowest_loss(corpus: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(f'schemes = ["gpt2", "small_init"]\nnetwork = "gpt"\ndataset = "text:{corpus}"\n'
                    'hidden = "32x2"\nheads = 2\ncontext = 16\nbatch_size = 8\nepochs = 1\nsteps = 6\nseeds = 2\n'
                    "[grid]\nlr = [0.001, 0.003]\n")
    out = tmp_path / "sweep"
    result = runner.invoke(app, ["sweep", str(grid), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Validation loss after 1 epoch" in result.output and "in nats against the best" in result.output
    cells = pd.read_csv(out / "cells.csv")
    for _, cell in cells.groupby("lr"):
        assert cell["verdict"].iloc[0] == "the baseline" and cell["val_loss_mean"].is_monotonic_increasing
    assert (out / "heatmap.png").is_file() and (out / "accuracy_by_lr.png").is_file()


def test_bench_times_a_gpt_four_ways(corpus: Path) -> None:
    from initbench.bench import lab
    from initbench.settings import TrainSettings
    from initbench.views import listings, progress, tables

    s = TrainSettings.of(dataset=f"text:{corpus}", network="gpt", hidden=(32, 32), heads=2, context=16,
                         batch_size=8, dropout=0.0)
    numbers = lab.run(1, 1, None, progress.Activity(Console(stderr=True), quiet=True), s) | {"device_name": "this CPU"}
    assert set(numbers["seconds_per_model_step"]) == {"floor", "sequential", "vmap", "module_loop"}
    assert all(t > 0 for t in numbers["tokens_per_second_per_model"].values()) and numbers["models"] == 3
    shown = tables.markdown(listings.lab_bench_listing(numbers))
    assert "torch.func vmap recipe, 3 models" in shown and "No batched row" in shown
    for args, words in ((["--network", "cnn"], "bench times the lesson's mlp or the lab's gpt"),
                        (["--network", "gpt", "--scaling", "6"], "leave out --scaling")):
        result = runner.invoke(app, ["bench", *args])
        assert result.exit_code == 2 and words in " ".join(result.output.split()), result.output


def test_diff_of_text_runs_calls_a_lower_loss_better_and_evaluate_refuses_a_gpt_in_words(corpus: Path,
                                                                                         tmp_path: Path) -> None:
    args = ["gpt2", "--dataset", f"text:{corpus}", *SMALL, "--seeds", "2", "--epochs", "1"]
    for name, steps in (("short", "4"), ("long", "24")):
        result = compare(*args, "--steps", steps, "--out", str(tmp_path / name))
        assert result.exit_code == 0, result.output
    found = runner.invoke(app, ["diff", str(tmp_path / "short"), str(tmp_path / "long")])
    said = " ".join(found.output.split())
    assert found.exit_code == 0 and "in nats" in said and "| better |" in said, found.output
    refused = runner.invoke(app, ["evaluate", str(tmp_path / "long")])
    assert refused.exit_code == 2 and "holds a gpt's weights" in " ".join(refused.output.split()), refused.output


def test_a_diverged_text_model_is_said_so_and_left_out_of_the_statistics(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "diverged"
    result = compare("gpt2", "default", "--dataset", f"text:{corpus}", *SMALL, "--seeds", "2", "--lr", "10",
                     "--out", str(out))
    assert result.exit_code == 0, result.output
    runs = pd.read_csv(out / "runs.csv")
    assert runs["diverged"].all() and runs["val_loss"].isna().all()  # the store's stand-in is no measurement
    assert "| diverged |" in result.output and "2/2" in result.output
    assert pd.read_csv(out / "samples.csv", keep_default_na=False)["sample"].eq("").all()
