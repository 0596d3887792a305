"""The Python API as a user meets it: `import initbench as ib`, on real data, tiny runs;
subprocesses where what is printed matters, and the lesson's notebook in a real kernel."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from matplotlib.figure import Figure
from nbclient import NotebookClient
from typer.testing import CliRunner

import initbench as ib
from initbench.cli import app
from initbench.errors import UsageError

from .conftest import ROOT

TINY = {"epochs": 1, "train_samples": 600}
# A process started elsewhere than the repository (a run writes results/ where it starts) imports it from here.
IMPORTABLE = {"PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


def half_rule(weight, bias, generator):
    """The general rule with half its range (a function of this file, given as a scheme)."""
    bound = 0.5 / weight.shape[1] ** 0.5
    weight.uniform_(-bound, bound, generator=generator)
    bias.zero_()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> ib.Run:
    out = tmp_path_factory.mktemp("api") / "run"
    return ib.compare(["zeros", "rule", half_rule], seeds=2, out=out, data_dir=data_dir, **TINY)


def test_import_is_light_and_help_shows_the_api() -> None:
    code = ("import sys, pydoc, inspect, initbench as ib\n"
            "compare = ib.compare\n"
            "assert 'torch' not in sys.modules and 'pandas' not in sys.modules, 'heavy at import'\n"
            "print(inspect.signature(compare))\n"
            "print(pydoc.render_doc(ib, renderer=pydoc.plaintext))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    signature, _, help_text = done.stdout.partition("\n")
    # The keywords are the config keys, with config.py's defaults.
    assert "epochs=2" in signature and "train_samples=None" in signature and "progress" in signature, signature
    assert "import initbench as ib" in help_text and "ib.compare(" in help_text and "@ib.scheme" in help_text
    assert "compare(schemes" in help_text  # the functions, documented


@pytest.mark.parametrize(("load", "given", "policy"), [(99.0, None, "PASSIVE"), (0.0, None, None),
                                                     (99.0, "ACTIVE", "ACTIVE")])
def test_threads_wait_passively_where_every_cpu_is_busy(load: float, given: str | None, policy: str | None) -> None:
    """OpenMP's spinning threads made every step of a sweep 15 to 50 times as long on a
    2-core machine other work kept busy (planned at 56 minutes; 3.5 with passive waiting):
    passive there, before torch loads; spinning, faster, on a machine with CPUs to spare;
    a policy the user set, kept."""
    code = ("import os; os.getloadavg = lambda: (%r, 0.0, 0.0)\nimport initbench, sys\n"
            "assert 'torch' not in sys.modules\nprint(os.environ.get('OMP_WAIT_POLICY'), initbench.busy())" % load)
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | IMPORTABLE
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env | ({"OMP_WAIT_POLICY": given} if given else {}))
    assert done.returncode == 0, done.stderr
    shown, said = done.stdout.split(" ", 1)
    assert shown == str(policy) and (said.startswith("load 99.0 on ") if load else said.strip() == "None")


def test_acceptance_prints_the_table_and_nothing_else(tmp_path: Path, data_dir: Path) -> None:
    code = ("import initbench as ib; print(ib.compare(['rule', 'default'], seeds=2, epochs=1, "
            "train_samples=1000).table)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=os.environ | IMPORTABLE | {"INITBENCH_DATA_DIR": str(data_dir)})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    header, index, *rows = done.stdout.splitlines()  # pandas' print of a DataFrame: its columns, index, rows
    assert "val_acc_pct" in header and index.startswith("scheme"), done.stdout
    assert {row.split()[0] for row in rows[:2]} == {"rule", "default"} and "[2 rows" in done.stdout, done.stdout
    (folder,) = (tmp_path / "results").iterdir()  # the default folder, results/<timestamp>-rule-default
    assert folder.name.endswith("-rule-default") and (folder / "runs.csv").is_file()


def test_a_run_is_a_view_of_its_folder(run: ib.Run) -> None:
    table = run.table
    assert set(table.index) == {"zeros", "rule", "half_rule"} and (table["seeds"] == 2).all()
    assert table["val_acc_pct"].between(0, 100).all() and table["test_acc_pct"].between(0, 100).all()
    assert table["val_acc_pct"].is_monotonic_decreasing  # best first, as printed
    assert len(run.runs) == 6 and set(run.runs["seed"]) == {0, 1} and run.runs["val_acc"].between(0, 1).all()
    assert list(run.losses.columns) == ["scheme", "seed", "epoch", "batch", "loss"] and run.layer_stats is None
    figures = run.figures()
    assert set(figures) == {"loss_curves", "loss_full"} and all(isinstance(f, Figure) for f in figures.values())
    again = ib.open(run.folder)
    assert type(again) is ib.Run and again.folder == run.folder
    pd.testing.assert_frame_equal(again.table, table)


def test_a_tables_numbers_are_rounded_as_printed_and_the_summary_keeps_them_whole(run: ib.Run) -> None:
    """``.table`` showed 81.233333 where the table prints 81.23%: accuracies in percent to 2
    decimals, losses to 3, as printed; ``.summary`` keeps the fractions unrounded."""
    table, summary = run.table, run.summary.set_index("scheme").loc[run.table.index]
    for shown, whole, scale, decimals in (("val_acc_pct", "val_acc_mean", 100, 2),
                                          ("val_acc_std_pct", "val_acc_std", 100, 2),
                                          ("test_acc_pct", "test_acc_mean", 100, 2),
                                          ("last_batch_loss_mean", "last_batch_loss_mean", 1, 3)):
        pd.testing.assert_series_equal(table[shown], (scale * summary[whole]).round(decimals), check_names=False)
    assert (summary["last_batch_loss_mean"] != summary["last_batch_loss_mean"].round(3)).any()  # unrounded there


def test_a_run_renders_as_the_command_line_prints_it(run: ib.Run) -> None:
    printed = CliRunner().invoke(app, ["report", str(run.folder), "--format", "markdown", "--no-pictures"])
    assert printed.exit_code == 0, printed.output
    assert str(run) == run._repr_markdown_() == printed.stdout.strip()
    html = run._repr_html_()
    assert html.startswith("<table>") and "half_rule" in html and "After 1 epoch, mean ± std over 2 seeds" in html


def test_bad_values_raise_the_command_lines_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as raised:
        ib.compare(["rule"], epochs=0, out=tmp_path / "never")
    printed = CliRunner().invoke(app, ["compare", "rule", "--epochs", "0", "--out", str(tmp_path / "never")])
    assert printed.exit_code == 2 and str(raised.value) in " ".join(printed.output.split())
    with pytest.raises(UsageError, match="Did you mean 'epochs'"):
        ib.compare(["rule"], epoch=2)
    with pytest.raises(UsageError, match="Unknown scheme 'rul'"):
        ib.inspect(["rul"])
    with pytest.raises(UsageError, match="inspect\\(\\) takes no setting 'epochs'"):
        ib.inspect(["rule"], epochs=2)
    assert not (tmp_path / "never").exists()


def test_progress_only_when_asked(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quiet = ib.inspect(["zeros", "rule"], out=tmp_path / "quiet", data_dir=data_dir)
    assert capsys.readouterr() == ("", "")
    ib.inspect(["rule"], out=tmp_path / "told", data_dir=data_dir, progress=True)
    assert "Loading FashionMNIST" in capsys.readouterr().err
    assert list(quiet.table["scheme"].unique()) == ["zeros", "rule"] and set(quiet.flags) == {"zeros", "rule"}
    assert "zeros at init" in str(quiet) and isinstance(ib.open(quiet.folder), ib.Inspection)
    assert set(quiet.figures()) == {"activations"}


def test_evaluate_checks_the_runs_weights(run: ib.Run) -> None:
    scored = ib.evaluate(run.folder)
    assert len(scored.table) == 6 and (scored.table["check"] == "reproduced").all()
    assert scored.table["val_acc_pct"].between(0, 100).all() and "scored exactly" in str(scored)


def test_sweep_from_a_dict_resumes(tmp_path: Path, data_dir: Path) -> None:
    grid = {"schemes": ["zeros", "rule"], "seeds": 2, "data_dir": str(data_dir), "grid": {"lr": [0.001, 0.01]},
            **TINY}
    planned = ib.sweep(grid, out=tmp_path / "s", dry_run=True)
    assert isinstance(planned, ib.SweepPlan) and (planned.table["status"] == "to train").sum() == 8
    done = ib.sweep(grid, out=tmp_path / "s")
    assert len(done.runs) == 8 and len(done.table) == 4 and done.table["val_acc_pct"].between(0, 100).all()
    for shown, whole in (("val_acc_pct", "val_acc_mean"), ("diff_pct", "diff_mean")):  # as printed; .cells whole
        pd.testing.assert_series_equal(done.table[shown], (100 * done.cells[whole]).round(2), check_names=False)
    assert done.info["figures"]["trained_now"] == 8 and set(done.figures()) == {"heatmap", "accuracy_by_lr", "lr_curves"}
    again = ib.sweep(grid, out=tmp_path / "s")
    assert again.info["figures"]["trained_now"] == 0
    pd.testing.assert_frame_equal(again.table, done.table)
    assert isinstance(ib.open(tmp_path / "s"), ib.Sweep)
    with pytest.raises(UsageError, match="takes no setting 'lr'"):
        ib.sweep(grid, out=tmp_path / "s", lr=0.1)


def test_schemes_and_the_apis_functions() -> None:
    listed = ib.schemes()
    assert {"zeros", "rule", "kaiming_normal"} <= set(listed.index) and "formula" in listed.columns
    assert list(ib.schemes("orthogonal").index) == ["orthogonal", "lsuv"]  # as `initbench schemes PATTERN` finds
    import inspect
    import types

    # The API's functions are functions, not modules made callable: help() and type checkers see them.
    for name in ("sweep", "schemes", "diff", "compare"):
        function = getattr(ib, name)
        assert isinstance(function, types.FunctionType) and function.__module__ == "initbench.api", name
    assert "dry_run" in str(inspect.signature(ib.sweep))


# The one line that runs the lesson in place, its outputs written into it (docs/python-api.md).
EXECUTE_THE_LESSON = "jupyter execute --inplace examples/lesson.ipynb"


def test_the_lesson_notebook_ships_with_the_outputs_of_running_it() -> None:
    """A reader on GitHub saw no table and no picture: the notebook is committed executed,
    by EXECUTE_THE_LESSON (nbclient: every code cell run once, in order, in one kernel, its
    timing recorded), on the whole lesson as shipped; what it writes, examples/results/, is
    not committed."""
    notebook = nbformat.read(ROOT / "examples" / "lesson.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "TRAIN_SAMPLES = None" in code[0].source and "EPOCHS = 2" in code[0].source  # the lesson, not a subset
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), \
        f"not executed top to bottom: run `{EXECUTE_THE_LESSON}`"
    assert all("iopub.execute_input" in cell.metadata.get("execution", {}) for cell in code)  # nbclient's record
    outputs = [output for cell in code for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"], outputs
    shown = [o.data for o in outputs if o.output_type in ("execute_result", "display_data")]
    tables = [d["text/html"] for d in shown if "<table>" in d.get("text/html", "")]
    assert any(all(name in table for name in ("zeros", "ones", "uniform", "rule", "normal", "default"))
               for table in tables), "no table of the lesson's run"
    pictures = [base64.b64decode(d["image/png"]) for d in shown if "image/png" in d]
    assert pictures and all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in pictures), "no picture"
    assert not any(str(ROOT) in json.dumps(o) for o in outputs)  # nothing of the machine it was run on
    ignored = subprocess.run(["git", "check-ignore", "-q", "examples/results/any-run"], cwd=ROOT)
    assert ignored.returncode == 0, "examples/results/ (what the notebook writes) is not ignored by git"


def test_lesson_notebook_runs_in_a_kernel(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped lesson, executed by a real Jupyter kernel of this interpreter, on a
    tiny subset (its first cell's parameters rewritten): tables, figure and own scheme."""
    kernels = tmp_path / "jupyter" / "kernels" / "python3"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "this Python", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("INITBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PYTHONPATH", IMPORTABLE["PYTHONPATH"])
    notebook = nbformat.read(ROOT / "examples" / "lesson.ipynb", as_version=4)
    for cell in notebook.cells:  # run afresh from its source: the outputs it ships with are the whole lesson's
        if cell.cell_type == "code":
            cell.update(outputs=[], execution_count=None)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "TRAIN_SAMPLES = None" in first.source and "EPOCHS = 2" in first.source  # the real lesson, as shipped
    first.source = first.source.replace("TRAIN_SAMPLES = None", "TRAIN_SAMPLES = 600").replace("EPOCHS = 2",
                                                                                               "EPOCHS = 1")
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import json; print(json.dumps({name: r.table['val_acc_pct'].to_dict() for name, r in "
        "(('run', run), ('mine', mine))}))"))
    NotebookClient(notebook, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"], outputs
    accuracies = json.loads(outputs[-1].text)
    assert set(accuracies["run"]) == {"zeros", "ones", "uniform", "rule", "normal", "default"}
    assert set(accuracies["mine"]) == {"rule", "half_rule"}
    assert all(0 <= acc <= 100 for table in accuracies.values() for acc in table.values())
    shown = [o.data for o in outputs if o.output_type == "execute_result"]
    assert any("<table>" in d.get("text/html", "") and "normal" in d["text/html"] for d in shown)  # the run's table
    assert any("image/png" in d for d in shown)  # the loss figure, drawn inline
    assert any("half_rule" in d.get("text/html", "") for d in shown)
    progress = [o for o in outputs if o.output_type == "display_data" and "Training" in o.data.get("text/plain", "")]
    assert len(progress) == 2  # one display per run, updated in place; its notes stay when it is done
    assert len(list((tmp_path / "results").iterdir())) == 2
