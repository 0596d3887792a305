"""What a person or a script reads: tables in every format, progress, help, and
`initbench report` on finished runs. Real runs on the real data."""

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from initbench.cli import app

runner = CliRunner()
LONG_NAMES = ["kaiming_normal", "xavier_normal:1", "xavier_normal:2"]


@pytest.fixture(scope="module")
def finished(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One real compare run (three long names, two seeds, one epoch) and what it printed."""
    out = tmp_path_factory.mktemp("runs") / "long-names"
    result = runner.invoke(app, ["compare", *LONG_NAMES, "--seeds", "2", "--epochs", "1", "--train-samples",
                                 "2000", "--data-dir", str(data_dir), "--out", str(out), "--track-stats"],
                           env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return out, result


def test_names_and_numbers_are_never_cut_at_80_columns(finished) -> None:
    out, result = finished
    table = runner.invoke(app, ["report", str(out), "--format", "table", "--no-pictures"],
                          env={"COLUMNS": "80"}).stdout
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in table
    rows = [line for line in lines if line.startswith("│")]
    assert sorted(row.split("│")[1].strip() for row in rows) == sorted(LONG_NAMES)  # the two xavier rows differ
    assert all(re.search(r"\d+\.\d\d% ± \d+\.\d\d", row) for row in rows)
    narrow = runner.invoke(app, ["report", str(out), "-f", "table", "--no-pictures"], env={"COLUMNS": "50"}).stdout
    assert max(len(line) for line in narrow.splitlines()) <= 50 and "…" not in narrow
    assert "Left out at this width: Test accuracy, Last epoch loss" in " ".join(narrow.split())
    assert all(name in narrow for name in LONG_NAMES)


def test_piped_output_is_markdown_and_messages_go_to_stderr(finished) -> None:
    _, result = finished
    assert "┃" not in result.stdout and "│" not in result.stdout
    assert result.stdout.startswith("**After 1 epoch, mean ± std over 2 seeds**")
    header, rule, *rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert header == "| Scheme | Validation accuracy | Test accuracy | Last batch loss | Last epoch loss |"
    assert rule == "| :-- | --: | --: | --: | --: |" and len(rows) == 3
    assert "Results in" in result.stderr and "Results in" not in result.stdout
    # In a log, one line per stage: what happens, with the epoch.
    for stage in ("Loading FashionMNIST", "Training 6 models: epoch 1/1", "Evaluating 6 models after epoch 1/1",
                  "Writing the results"):
        assert stage in result.stderr


def test_json_and_csv_hold_the_numbers_of_accuracy_csv(finished) -> None:
    out, _ = finished
    saved = pd.read_csv(out / "accuracy.csv")
    as_json = json.loads(runner.invoke(app, ["report", str(out), "-f", "json", "--no-pictures"]).stdout)
    assert [r["scheme"] for r in as_json] == list(saved["scheme"])
    assert [r["val_acc_mean"] for r in as_json] == pytest.approx(list(saved["val_acc_mean"]), rel=1e-5)
    as_csv = list(csv.DictReader(io.StringIO(runner.invoke(app, ["report", str(out), "-f", "csv",
                                                                 "--no-pictures"]).stdout)))
    assert list(as_csv[0]) == list(saved.columns)
    assert [float(r["last_batch_loss_mean"]) for r in as_csv] == pytest.approx(
        list(saved["last_batch_loss_mean"]), rel=1e-5)


def test_report_redraws_pictures_and_puts_runs_in_one_table(finished, tmp_path: Path) -> None:
    out, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for png in ("loss_curves.png", "loss_full.png", "layer_stats.png"):
        (copy / png).unlink()
    result = runner.invoke(app, ["report", str(out), str(copy), "-f", "csv"])
    assert result.exit_code == 0, result.output
    assert all((copy / png).read_bytes().startswith(b"\x89PNG")
               for png in ("loss_curves.png", "loss_full.png", "layer_stats.png"))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0])[0] == "run" and len(rows) == 6
    assert {r["run"] for r in rows} == {str(out), str(copy)}
    joined = runner.invoke(app, ["report", str(out), str(copy), "-f", "markdown", "--no-pictures"]).stdout
    assert joined.startswith("**After 1 epoch, mean ± std over 2 seeds**")  # the runs' common epochs
    assert "| Run | Scheme |" in joined


@pytest.mark.parametrize(("make", "words"), [
    (lambda p: p, "does not exist"),
    (lambda p: (p.mkdir(), p)[1], "is not a finished compare run: it has no run.json or runs.csv or losses.csv"),
])
def test_report_refuses_what_is_not_a_run(tmp_path: Path, make, words) -> None:
    result = runner.invoke(app, ["report", str(make(tmp_path / "nothing"))])
    assert result.exit_code == 2 and words in " ".join(result.output.split()), result.output


@pytest.mark.parametrize("command", ["compare", "report", "schemes", "inspect", "bench", None])
def test_help_reads_well_at_80_columns(command: str | None) -> None:
    result = runner.invoke(app, [command, "--help"] if command else ["--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "<bool>" not in result.output and "[default: (" not in result.output and "…" not in result.output


def test_help_lists_choices_and_completion_is_on() -> None:
    help_text = runner.invoke(app, ["compare", "--help"], env={"COLUMNS": "80"}).output
    assert "<relu|tanh|sigmoid|gelu|selu|linear>" in help_text and "<auto|batched|sequential>" in help_text
    assert "<scheme|zeros|default>" in help_text and "<table|markdown|json|csv>" in help_text
    assert "[default: 2]" in help_text and "[default: 256,128]" in help_text
    assert "--install-completion" in runner.invoke(app, ["--help"]).output


def test_flags_take_no_value() -> None:
    """--track-stats is a flag: a word after it is a scheme, as it reads."""
    result = runner.invoke(app, ["compare", "--track-stats", "true", "--epochs", "0"])
    assert result.exit_code == 2 and "Unknown scheme 'true'" in result.output


def test_schemes_table_never_splits_a_name_at_80_columns() -> None:
    from initbench import schemes

    text = runner.invoke(app, ["schemes", "-f", "table"], env={"COLUMNS": "80"}).stdout
    words = set(text.split())
    assert all(row["usage"] in words for row in schemes.catalogue())
    markdown = runner.invoke(app, ["schemes"]).stdout
    assert markdown.count("\n| ") == len(schemes.catalogue()) + 2  # header, rule, a row per scheme


def test_inspect_json_lists_only_the_settings_that_apply(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "inspect"
    result = runner.invoke(app, ["inspect", "rule", "--data-dir", str(data_dir), "--out", str(out), "-f", "csv"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "inspect.json").read_text())["config"]
    assert set(config) == {"schemes", "seeds", "dataset", "network", "hidden", "activation", "bias", "classes",
                           "head_init", "split_seed", "data_dir", "parametrization", "base_width", "out"}
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["layer"] for r in rows] == ["1", "2", "3"] and rows[0]["scheme"] == "rule"


@pytest.mark.parametrize(("args", "lines"), [
    (["--engine", "sequential"], ["Training zeros, seed 0 (1 of 2): epoch 1/1", "Training rule, seed 0 (2 of 2)"]),
    (["--max-batch-models", "1"], ["Building 1 model (group 1 of 2)", "Training 1 model (group 2 of 2): epoch 1/1"]),
])
def test_progress_says_which_models_train(data_dir: Path, tmp_path: Path, args, lines) -> None:
    result = runner.invoke(app, ["compare", "zeros", "rule", "--epochs", "1", "--train-samples", "500",
                                 "--data-dir", str(data_dir), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 0 and all(line in result.stderr for line in lines), result.stderr
