"""What a person or a script reads: tables in every format, progress, help, and
`initbench report` on finished runs. Real runs on the real data."""

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from initbench.cli import app
from initbench.tasks import CLASSIFICATION

runner = CliRunner()
LONG_NAMES = ["kaiming_normal", "xavier_normal:1", "xavier_normal:2"]


@pytest.fixture(scope="module")
def finished_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One real compare run (three long names, two seeds, one epoch) and what it printed."""
    out = tmp_path_factory.mktemp("runs") / "long-names"
    result = runner.invoke(app, ["compare", *LONG_NAMES, "--seeds", "2", "--epochs", "1", "--train-samples",
                                 "2000", "--data-dir", str(data_dir), "--out", str(out), "--track-stats"],
                           env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return out, result


def test_names_and_numbers_are_never_cut_at_80_columns(finished_run) -> None:
    out, result = finished_run
    table = runner.invoke(app, ["report", str(out), "--format", "table", "--no-pictures"],
                          env={"COLUMNS": "80"}).stdout
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in table
    rows = [line for line in lines if line.startswith("│")]
    assert sorted(row.split("│")[1].strip() for row in rows) == sorted(LONG_NAMES)  # the two xavier rows differ
    assert all(re.search(r"\d+\.\d\d% ± \d+\.\d\d", row) for row in rows)
    narrow = runner.invoke(app, ["report", str(out), "-f", "table", "--no-pictures"], env={"COLUMNS": "50"}).stdout
    assert max(len(line) for line in narrow.splitlines()) <= 50 and "…" not in narrow
    assert "Left out at this width: Difference to the best [95% CI], Test accuracy, Last epoch loss" in " ".join(
        narrow.split())
    assert re.search(r"-\d+\.\d\d \[-\d+\.\d\d, \+\d+\.\d\d\]", table)  # the paired difference, shown at 80
    assert all(name in narrow for name in LONG_NAMES)


def test_piped_output_is_markdown_and_messages_go_to_stderr(finished_run) -> None:
    _, result = finished_run
    assert "┃" not in result.stdout and "│" not in result.stdout
    assert result.stdout.startswith("**After 1 epoch, mean ± std over 2 seeds**")
    header, rule, *rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert header == ("| Scheme | Validation accuracy | Difference to the best [95% CI] | Test accuracy | Last batch loss "
                      "| Last epoch loss |")
    assert rule == "| :-- | --: | --: | --: | --: | --: |" and len(rows) == 3
    assert "Results in" in result.stderr and "Results in" not in result.stdout
    # In a log, one line per stage: what happens, with the epoch.
    for stage in ("Loading FashionMNIST", "Training 6 models: epoch 1/1", "Evaluating 6 models after epoch 1/1",
                  "Writing the results"):
        assert stage in result.stderr


def test_json_and_csv_hold_the_numbers_of_accuracy_csv(finished_run) -> None:
    out, _ = finished_run
    saved = pd.read_csv(out / "accuracy.csv")
    as_json = json.loads(runner.invoke(app, ["report", str(out), "-f", "json", "--no-pictures"]).stdout)
    assert [r["scheme"] for r in as_json] == list(saved["scheme"])
    assert [r["val_acc_mean"] for r in as_json] == pytest.approx(list(saved["val_acc_mean"]), rel=1e-5)
    as_csv = list(csv.DictReader(io.StringIO(runner.invoke(app, ["report", str(out), "-f", "csv",
                                                                 "--no-pictures"]).stdout)))
    assert list(as_csv[0]) == list(saved.columns)
    assert [float(r["last_batch_loss_mean"]) for r in as_csv] == pytest.approx(
        list(saved["last_batch_loss_mean"]), rel=1e-5)


def test_report_redraws_pictures_and_puts_runs_in_one_table(finished_run, tmp_path: Path) -> None:
    out, _ = finished_run
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


def test_report_reads_a_run_without_torch(finished_run) -> None:
    """report reads CSVs: torch (seconds to import) is never imported, nor matplotlib without pictures."""
    out, _ = finished_run
    code = ("import sys; from initbench.cli import main; sys.argv = ['initbench', 'report', '--no-pictures', "
            "sys.argv[1]]\ntry:\n    main()\nexcept SystemExit:\n"
            "    print([m for m in ('torch', 'matplotlib', 'safetensors') if m in sys.modules]); raise")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.endswith("\n[]\n"), done.stdout + done.stderr


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


def test_top_level_help_gives_each_commands_line_whole_at_80_columns() -> None:
    """Click cut each command's first sentence beside the names ("...into a resumable...")."""
    import typer

    text = runner.invoke(app, ["--help"], env={"COLUMNS": "80"}).output
    commands = text.split("Commands:")[1]
    assert "..." not in commands and max(len(line) for line in text.splitlines()) <= 80
    flowing = " ".join(commands.split())
    for name, command in typer.main.get_command(app).commands.items():
        first = " ".join(command.help.split("\n\n")[0].split())
        assert f"{name} {first}" in flowing, (name, first)


@pytest.mark.parametrize(("command", "says", "never"), [
    ("compare", "a test case per --expect condition", ["--fail-on", "diff", "cell"]),
    ("sweep", "in each grid cell", ["--fail-on", "diff"]),
    ("diff", "failing as --fail-on says", ["--expect"]),
])
def test_each_gates_junit_help_describes_its_own_test_cases(command: str, says: str, never: list[str]) -> None:
    """compare --help described diff's JUnit output ("diff: per scheme, failing as --fail-on says")."""
    text = " ".join(runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"}).output.split())
    junit = text[text.index("or junit:"):text.index("[default: table in a terminal")]
    assert says in junit and not any(word in junit for word in never), junit


def test_help_lists_choices_and_completion_is_on() -> None:
    help_text = runner.invoke(app, ["compare", "--help"], env={"COLUMNS": "80"}).output
    assert "<relu|tanh|sigmoid|gelu|selu|linear>" in help_text and "<auto|batched|sequential>" in help_text
    assert "<scheme|zeros|default>" in help_text and "<table|markdown|json|csv|junit>" in help_text
    assert "[default: 2]" in help_text and "[default: 256,128]" in help_text
    assert "--install-completion" in runner.invoke(app, ["--help"]).output


def test_flags_take_no_value() -> None:
    """--track-stats is a flag: a word after it is a scheme, as it reads."""
    result = runner.invoke(app, ["compare", "--track-stats", "true"])
    assert result.exit_code == 2 and "Unknown scheme 'true'" in result.output


def test_schemes_table_never_splits_a_name_at_80_columns() -> None:
    from initbench import initializers

    text = runner.invoke(app, ["schemes", "-f", "table"], env={"COLUMNS": "80"}).stdout
    words = set(text.split())
    assert all(row["usage"] in words for row in initializers.catalogue())
    markdown = runner.invoke(app, ["schemes"]).stdout
    assert markdown.count("\n| ") == len(initializers.catalogue()) + 2  # header, rule, a row per scheme


def test_inspect_json_lists_only_the_settings_that_apply(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "inspect"
    result = runner.invoke(app, ["inspect", "rule", "--data-dir", str(data_dir), "--out", str(out), "-f", "csv"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "inspect.json").read_text())["config"]
    assert set(config) == {"schemes", "seeds", "dataset", "network", "hidden", "activation", "bias", "classes",
                           "head_init", "split_seed", "data_dir", "parametrization", "base_width", "base_depth", "out"}
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


# --- every command's table and progress line at 80 and 60 columns

WIDTHS = [80, 60]


def shown_whole(listing, text: str, width: int) -> None:
    """``text`` (``listing`` as a terminal ``width`` wide shows it) fits, cuts nothing, and shows
    every column whole (a text column may wrap between words, a path after a "/") or names it
    in its "Left out" note."""
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width and "…" not in text, text
    for column in listing.columns:
        header = " ".join(column.header.split())
        if header in left_out(text):
            continue
        for cell in column.cells:
            pieces = [p for w in cell.split() for p in re.split(r"(?<=/)(?=.)", w)] if column.path else (
                cell.split() if column.wrap else cell.splitlines())
            for piece in pieces:
                assert any(piece in line for line in lines), (header, piece, text)


def left_out(text: str) -> str:
    """What a table's note says it left out ("" when nothing)."""
    note = re.search(r"Left out at this width: (.*?) \(wider terminal", " ".join(text.split()))
    return note.group(1) if note else ""


def terminal(listing, width: int) -> str:
    from rich.console import Console

    from initbench.views import tables

    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    tables.show(listing, "table", console)
    return console.export_text()


def at(width: int, *args: str) -> str:
    result = runner.invoke(app, [*args, "-f", "table"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_and_report_tables_fit(finished_run, width: int) -> None:
    from initbench.views import finished

    out, _ = finished_run
    listing = finished.Run(out).listings()[0]
    text = at(width, "report", str(out), "--no-pictures")
    shown_whole(listing, text, width)
    assert all(name in text for name in LONG_NAMES) and text.count("% ± ") >= 3  # each row's accuracy, whole


@pytest.mark.parametrize("width", WIDTHS)
def test_a_report_of_several_runs_names_each_by_its_folder(finished_run, tmp_path: Path, width: int) -> None:
    """Not by its path (73 characters of it left no room for the accuracies): by its folder's
    name, with as much of its parents as tells two runs of one name apart."""
    from initbench.views import finished, listings

    out, _ = finished_run
    twin = tmp_path / "a-long-folder-of-experiments-kept-for-later" / out.name
    shutil.copytree(out, twin, ignore=shutil.ignore_patterns("weights"))
    text = at(width, "report", str(out), str(twin), "--no-pictures")
    summary = pd.concat([finished.Run(f).summary.assign(run=str(f)) for f in (out, twin)], ignore_index=True)
    shown_whole(listings.accuracy_listing(summary, 1, CLASSIFICATION), text, width)
    names = listings.run_names([str(out), str(twin)])
    assert names == {str(out): f"{out.parent.name}/{out.name}", str(twin): f"{twin.parent.name}/{out.name}"}
    assert str(out) not in text and text.count("% ± ") >= 6  # each row's accuracy, whole


@pytest.fixture(scope="module")
def scored_and_inspected(finished_run, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list, Path]:
    """The compare run's weights scored again (evaluate's rows), and an inspect run."""
    out, _ = finished_run
    scored = runner.invoke(app, ["evaluate", str(out), "--data-dir", str(data_dir), "-f", "json"])
    inspected = tmp_path_factory.mktemp("inspect") / "two"
    assert runner.invoke(app, ["inspect", "kaiming_normal", "xavier_normal:2", "--data-dir", str(data_dir),
                               "--out", str(inspected), "-f", "csv"]).exit_code == 0
    return json.loads(scored.stdout), inspected


@pytest.mark.parametrize("width", WIDTHS)
def test_evaluate_inspect_and_schemes_tables_fit(scored_and_inspected, width: int) -> None:
    """As the command line prints them (tables.show on a console of that width)."""
    from initbench import initializers
    from initbench.views import finished, listings

    rows, inspected = scored_and_inspected
    listing = listings.evaluate_listing(rows)
    text = terminal(listing, width)
    shown_whole(listing, text, width)
    assert all(f"{s.replace(':', '_')}-seed{seed}.safetensors" in text for s in LONG_NAMES for seed in (0, 1))
    for listing in finished.Inspection(inspected).listings():
        shown_whole(listing, terminal(listing, width), width)
    shown_whole(listings.schemes_listing(initializers.catalogue()), at(width, "schemes"), width)


@pytest.mark.parametrize("width", WIDTHS)
def test_transfer_bench_and_scaling_tables_fit(finished_run, width: int) -> None:
    """transfer's table from real runs renamed as its starts are; bench's from the numbers it
    writes (docs/bench-cpu*.json), without running the benchmark."""
    from initbench.analysis import frames
    from initbench.views import finished, listings

    out, _ = finished_run
    starts = {"kaiming_normal": "kaiming_normal", "xavier_normal:1": "pretrained, 2 layers frozen",
              "xavier_normal:2": "pretrained, frozen 1 epoch"}
    runs = finished.Run(out).runs.assign(scheme=lambda f: f["scheme"].map(starts))
    title = finished.transfer_title("fashion-mnist", (5, 6), 200, 20, (0, 1, 2, 3, 4, 7, 8, 9))
    listing = listings.transfer_listing(frames.paired_frame(runs, "kaiming_normal"), title, CLASSIFICATION)
    text = terminal(listing, width)
    shown_whole(listing, text, width)
    assert "Verdict" not in left_out(text)  # a verdict's words wrap: the interval is left out first
    docs = Path(__file__).resolve().parent.parent / "docs"
    for make, numbers in ((listings.bench_listing, "bench-cpu.json"), (listings.scaling_listing, "bench-cpu-scaling.json")):
        listing = make(json.loads((docs / numbers).read_text()))
        text = terminal(listing, width)
        shown_whole(listing, text, width)
        assert "vs lesson" not in left_out(text) and "model-epochs/s" not in left_out(text)


class Recorded:
    """An Activity on a terminal ``width`` columns wide that records every live line it draws."""

    def __new__(cls, width: int):
        from rich.console import Console

        from initbench.views import progress

        class Recording(progress.Activity):
            def __init__(self) -> None:
                super().__init__(Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None))
                self.seen: list[str] = []

            def _record(self) -> None:
                if self.bar is not None:
                    out = Console(width=width, file=io.StringIO(), record=True, color_system=None)
                    out.print(self.bar.get_renderable())
                    self.seen.append(out.export_text().rstrip("\n"))

            def stage(self, text: str, total: int | None = None) -> None:
                super().stage(text, total)
                self._record()

            def advance(self, steps: int = 1, text: str | None = None, *kept: str) -> None:
                super().advance(steps, text, *kept)
                self._record()

        return Recording()


COUNTED = re.compile(r" \d{1,3}%( eta \d+:\d\d(:\d\d)?)?$")  # the share, and the time left whole


def progress_fits(seen: list[str], width: int) -> list[str]:
    """Every line fits; a counted one ends in its share and time left, whole. Returns the
    counted lines."""
    assert seen and all(len(line) <= width for line in seen), seen
    counted = [line for line in seen if COUNTED.search(line)]
    assert all(COUNTED.search(line) for line in seen if " eta" in line or "%" in line[-5:]), seen
    return counted


@pytest.fixture(scope="module")
def swept(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One real sweep (2 schemes x 2 activations x 2 depths x 2 seeds, 500 images), its
    progress recorded on a terminal 60 columns wide."""
    import initbench.api as api

    folder = tmp_path_factory.mktemp("sweeps")
    config = folder / "grid.toml"
    config.write_text(f'schemes = ["kaiming_normal", "xavier_normal:2"]\nseeds = 2\nepochs = 1\n'
                      f'train_samples = 500\ndata_dir = "{data_dir}"\n[grid]\nactivation = ["relu", "tanh"]\n'
                      'hidden = ["32x2", "32x3"]\n')
    activity = Recorded(60)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(api, "_activity", lambda progress: activity)
        api.sweep(config, out=str(folder / "sweep"))
    return folder / "sweep", activity.seen


@pytest.mark.parametrize("width", WIDTHS)
def test_sweep_and_dry_run_tables_fit(swept, width: int) -> None:
    from initbench.views import finished, listings

    folder, _ = swept
    listing = finished.Sweep(folder).listings()[0]
    text = at(width, "report", str(folder), "--no-pictures")
    shown_whole(listing, text, width)
    assert text.count("% ± ") == 8  # every cell's schemes, accuracy whole
    planned = at(width, "sweep", str(folder / "sweep.toml"), "--dry-run", "--out", str(folder), "--quiet")
    jobs = json.loads(runner.invoke(app, ["sweep", str(folder / "sweep.toml"), "--dry-run", "--out", str(folder),
                                          "--quiet", "-f", "json"]).stdout)
    shown_whole(listings.jobs_listing(jobs), planned, width)


def test_a_sweeps_progress_fits_and_says_what_it_times(swept) -> None:
    _, seen = swept
    counted = progress_fits(seen, 60)
    assert counted and counted[-1].endswith(" 100%")  # the total is the sweep's steps, all of them
    timing = [line for line in seen if "Timing a training step" in line]
    assert timing and not any(bar in line for line in timing for bar in "━╸╺%")  # a spinner, not an empty bar


@pytest.mark.parametrize("width", WIDTHS)
def test_a_compares_progress_fits(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  width: int) -> None:
    import initbench.api as api

    activity = Recorded(width)
    monkeypatch.setattr(api, "_activity", lambda progress: activity)
    api.compare(["kaiming_normal", "xavier_normal:2"], epochs=2, train_samples=500, data_dir=data_dir,
                out=tmp_path / "run", save_weights=False)
    counted = progress_fits(activity.seen, width)
    assert any("Training 2 models: epoch 2/2" in line and " eta " in line for line in counted), counted
    assert counted[-1].endswith(" 100%")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_time_left_stays_whole_and_the_description_gives_way(width: int) -> None:
    """rich shrank every column of a line too long, the time left to "eta 0:04" for four minutes."""
    activity = Recorded(width)
    with activity.running():
        activity.stage("Timing a training step of each of 3 network shapes (batched engine on cpu), to plan the "
                       "sweep")
        activity.stage("Training", total=1000)
        activity.bar._tasks[activity.task].start_time -= 60  # 200 of 1,000 steps in a minute: 4 minutes left
        activity.advance(200, "Training 7 models (group 2 of 3): epoch 1/2, batch 10/30, loss 0.906")
    timing, training = activity.seen[0], activity.seen[-1]
    assert timing.rstrip() == "⠋ Timing a training step of each of 3 network shapes" + (
        " (batched engine on cpu)" if width == 80 else "")  # the parts that fit, whole
    assert training.endswith(" 20% eta 4:00") and len(training) <= width, training
    assert training.startswith("⠋ Training 7 models")  # shortened by its last parts, not cut in a word
    assert "…" not in training


def test_a_training_line_keeps_its_loss_at_80_columns(data_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/cli.md promises the current loss: it went once the batch number had two digits
    ("batch 20/60" then blank columns). Where the loss and the batch cannot both fit, the
    batch goes first."""
    import initbench.api as api

    activity = Recorded(80)
    monkeypatch.setattr(api, "_activity", lambda progress: activity)
    api.compare(["kaiming_normal", "xavier_normal:2"], epochs=2, train_samples=2000, data_dir=data_dir,
                out=tmp_path / "run", save_weights=False)
    training = [line for line in progress_fits(activity.seen, 80) if "Training 2 models: epoch" in line]
    assert training and all(re.search(r", loss \d+\.\d{3} ", line) for line in training), training
    assert any(re.search(r"batch 1\d/20, loss", line) for line in training), training  # the batch too, at 80
    narrow = Recorded(70)
    with narrow.running():
        narrow.stage("Training", total=1000)
        narrow.advance(200, "Training 15 models (group 2 of 6): epoch 1/1, batch 20/120", ", loss 0.906")
    assert narrow.seen[-1].startswith("⠋ Training 15 models: epoch 1/1, loss 0.906 "), narrow.seen[-1]


def test_a_log_gets_a_line_per_epoch_with_the_time_left(data_dir: Path, tmp_path: Path) -> None:
    """stderr not a terminal (a log, CI): each epoch's line says how much of the training is
    done and the time left, so that a log shows progress."""
    done = subprocess.run([sys.executable, "-m", "initbench", "compare", "kaiming_normal", "rule", "--epochs", "3",
                           "--train-samples", "1000", "--data-dir", str(data_dir), "--out", str(tmp_path / "run"),
                           "--no-save-weights", "-f", "csv"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "Training 2 models: epoch 1/3" in lines, done.stderr
    for epoch, share in ((2, "33%"), (3, "67%")):
        assert any(re.fullmatch(rf"Training 2 models: epoch {epoch}/3 \({share} eta \d+:\d\d\)", line)
                   for line in lines), done.stderr


def test_the_time_left_counts_the_whole_stage_so_far() -> None:
    """The pace of the stage so far, its pauses to evaluate included: not of the last seconds."""
    from initbench.views.progress import counted

    assert counted(50, 100, 30.0) == "50% eta 0:30"
    assert counted(1, 100, 120.0) == "1% eta 3:18:00"
    assert counted(0, 100, 5.0) == "0%" and counted(100, 100, 5.0) == "100%"
