"""CI gates (issue 22): --expect on compare and sweep (and expect in a config), initbench
diff, and --format junit, on real small runs. Nothing here depends on exact accuracies:
rule against uniform after one epoch on 1,000 images is about 56% against 10% (chance), and
at a learning rate of 10 rule learns nothing either, on any CPU."""

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

import initbench as ib
from initbench import config
from initbench.analysis import expect
from initbench.cli import app

runner = CliRunner()
SMALL = ["rule", "uniform", "--seeds", "3", "--epochs", "1", "--train-samples", "1000"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def failures(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Expectation failed:")]


def junit_suite(text: str) -> ET.Element:
    """The one <testsuite> of a JUnit document, its structure and counts checked."""
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    (suite,) = list(root)
    assert suite.tag == "testsuite" and {"name", "tests", "failures", "errors", "skipped", "time"} <= set(suite.attrib)
    cases = list(suite)
    assert all(case.tag == "testcase" and {"name", "classname", "time"} <= set(case.attrib) for case in cases)
    failed = [case for case in cases if case.find("failure") is not None]
    skipped = [case for case in cases if case.find("skipped") is not None and case.find("failure") is None]
    for case in failed:
        assert {"message", "type"} <= set(case.find("failure").attrib)
    for element in (root, suite):
        assert element.get("tests") == str(len(cases)) and element.get("failures") == str(len(failed))
        assert element.get("errors") == "0" and element.get("skipped") == str(len(skipped))
        float(element.get("time"))
    return suite


@pytest.fixture(scope="module")
def base(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rule and uniform over 3 seeds, expected rule > uniform: the run the diffs start from."""
    out = tmp_path_factory.mktemp("gates") / "base"
    result = invoke("compare", *SMALL, "--data-dir", str(data_dir), "--out", str(out), "--quiet",
                    "--expect", "rule > uniform", "--expect", "rule >= 20%")
    assert result.exit_code == 0, result.output
    assert "Expectation" not in result.stderr  # held ones are quiet with --quiet
    return out


@pytest.fixture(scope="module")
def worse(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The same with a learning rate of 10 (rule learns nothing), without expectations, as JUnit."""
    out = tmp_path_factory.mktemp("gates") / "worse"
    result = invoke("compare", *SMALL, "--lr", "10", "--data-dir", str(data_dir), "--out", str(out), "--quiet",
                    "-f", "junit")
    assert result.exit_code == 0, result.output
    return out, result.stdout


@pytest.fixture(scope="module")
def swept(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A sweep of rule in two cells, lr 0.001 and 10, expecting it above 20% in each (an
    [expect] table, which may follow [grid])."""
    folder = tmp_path_factory.mktemp("gates")
    grid = folder / "grid.toml"
    grid.write_text(f'schemes = ["rule"]\nseeds = 3\nepochs = 1\ntrain_samples = 1000\n'
                    f'data_dir = "{data_dir}"\n\n[grid]\nlr = [0.001, 10.0]\n\n[expect]\nconditions = ["rule > 0.2"]\n')
    out = folder / "sweep"
    return out, invoke("sweep", str(grid), "--out", str(out), "-f", "junit")


def test_a_held_expectation_is_recorded(base: Path) -> None:
    recorded = json.loads((base / "run.json").read_text())["expectations"]
    assert [(r["condition"], r["held"], r["seeds"]) for r in recorded] == [("rule > uniform", True, 3),
                                                                           ("rule >= 20%", True, 3)]
    assert recorded[0]["verdict"] == "better" and recorded[0]["low"] > 0  # the paired interval clears 0
    outcomes = ib.open(base).expectations
    assert all(o.held for o in outcomes) and str(outcomes[0]).startswith("rule > uniform: +")
    assert 'expect = ["rule > uniform", "rule >= 20%"]' in (base / "config.toml").read_text()


def test_a_failed_expectation_exits_1_once_the_run_is_written(base: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "failed"
    result = invoke("compare", *SMALL, "--data-dir", str(data_dir), "--out", str(out), "--expect", "uniform > rule",
                    "-f", "junit")
    assert result.exit_code == 1, result.output
    (line,) = failures(result.stderr)
    assert line.startswith("Expectation failed: uniform > rule: -") and "over 3 seeds (worse)" in line
    assert "Error" not in result.stderr and f"Results in {out}" in result.stderr
    assert {"run.json", "runs.csv", "accuracy.csv", "losses.csv", "store.sqlite", "weights"} <= {
        p.name for p in out.iterdir()}
    assert [o.held for o in ib.open(out).expectations] == [False]
    suite = junit_suite(result.stdout)
    (case,) = suite
    assert case.get("name") == "uniform > rule" and case.find("failure").get("message") == line
    # The same settings again: the same numbers, job for job, so diff finds nothing changed.
    again = invoke("diff", str(base), str(out), "--fail-on", "change", "-f", "json")
    assert again.exit_code == 0, again.output
    assert [r["verdict"] for r in json.loads(again.stdout)] == ["unchanged", "unchanged"]


@pytest.mark.parametrize("args,fragment", [
    (["rule", "uniform", "--seeds", "3", "--expect", "lsuv > rule"], "names lsuv, which this run does not train"),
    (["rule", "zeros", "--seeds", "3", "--expect", "rul > zeros"], "does not train: it trains rule, zeros. Did you "
                                                                   "mean rule?"),  # a typo: the closest it trains
    (["rule", "uniform", "--expect", "rule ~ uniform"], "one seed cannot say"),
    (["rule", "uniform", "--expect", "rule > 85"], "write 0.85 or 85%"),
    (["rule", "uniform", "--expect", "rule = uniform"], "with one operator of >=, <=, >, <, ~"),
    (["rule", "uniform", "--expect", "rule > rule"], "compares rule with itself"),
])
def test_bad_conditions_are_usage_errors_before_torch(args: list[str], fragment: str, tmp_path: Path) -> None:
    code = ("import sys; from initbench.cli import main; sys.argv = ['initbench', 'compare', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert 'torch' not in sys.modules; raise")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", code, *args, "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 2 and fragment in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_expect_in_a_config_and_one_seeds_point_values(base: Path, data_dir: Path, tmp_path: Path) -> None:
    toml = tmp_path / "gate.toml"
    toml.write_text('schemes = ["rule", "uniform"]\nseeds = [7]\nepochs = 1\ntrain_samples = 1000\n'
                    'expect = ["rule > uniform", "rule >= 0.2"]\n')
    assert config.resolve(toml, {"expect": ["uniform < rule"]}).expect == ("uniform < rule",)  # the option replaces
    out = tmp_path / "one-seed"
    result = invoke("compare", "--config", str(toml), "--data-dir", str(data_dir), "--out", str(out))
    assert result.exit_code == 0, result.output
    held = [line for line in result.stderr.splitlines() if line.startswith("Expectation held:")]
    assert len(held) == 2 and all(line.endswith(f"({expect.ONE_SEED})") for line in held), result.stderr
    assert held[0].startswith("Expectation held: rule > uniform: +") and held[1].startswith("Expectation held: rule >=")
    assert [r["low"] for r in json.loads((out / "run.json").read_text())["expectations"]] == [None, None]
    # Seed 7 against seeds 0-2: nothing to pair, refused in words.
    result = invoke("diff", str(base), str(out))
    assert result.exit_code == 2 and "share no job" in " ".join(result.output.split()), result.output


def test_a_sweep_judges_each_cell(swept) -> None:
    out, result = swept
    assert result.exit_code == 1, result.output
    (line,) = failures(result.stderr)
    assert line.startswith("Expectation failed: rule > 0.2 at lr=10: ") and "below 20%" in line
    assert "Expectation held: rule > 0.2 at lr=0.001: " in result.stderr
    recorded = json.loads((out / "sweep.json").read_text())["expectations"]
    assert [(r["cell"], r["held"]) for r in recorded] == [({"lr": "0.001"}, True), ({"lr": "10"}, False)]
    assert [o.cell for o in ib.open(out).expectations] == [{"lr": "0.001"}, {"lr": "10"}]
    suite = junit_suite(result.stdout)
    assert [(c.get("name"), c.find("failure") is not None) for c in suite] == [("rule > 0.2 at lr=0.001", False),
                                                                               ("rule > 0.2 at lr=10", True)]


def test_diff_of_a_folder_with_itself_is_unchanged(base: Path, swept) -> None:
    result = invoke("diff", str(base), str(base), "--fail-on", "change")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("unchanged") >= 2 and "Diff failed" not in result.stderr
    out, _ = swept
    result = invoke("diff", str(out), str(out), "--fail-on", "change", "-f", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["lr"], r["scheme"], r["verdict"]) for r in rows] == [("0.001", "rule", "unchanged"),
                                                                    ("10", "rule", "unchanged")]


def test_diff_names_a_worse_scheme_and_fails_on_it(base: Path, worse) -> None:
    folder, _ = worse
    result = invoke("diff", str(base), str(folder), "--fail-on", "worse", "-f", "markdown")
    assert result.exit_code == 1, result.output
    assert "B differs from A in lr 0.001 -> 10" in result.stdout
    failed = [line for line in result.stderr.splitlines() if line.startswith("Diff failed (--fail-on worse): ")]
    assert any(line.startswith("Diff failed (--fail-on worse): rule: -") and line.endswith("(worse)")
               for line in failed), result.stderr
    result = invoke("diff", str(base), str(folder), "-f", "junit", "--fail-on", "worse")
    assert result.exit_code == 1
    cases = {c.get("name"): c for c in junit_suite(result.stdout)}
    assert set(cases) == {"rule", "uniform"} and cases["rule"].find("failure").get("type") == "worse"
    assert ib.diff(base, folder).failing("worse")[0]["scheme"] == "rule"  # the API, without exiting


def test_compare_as_junit_without_expectations(worse) -> None:
    _, xml = worse
    suite = junit_suite(xml)
    assert sorted(c.get("name") for c in suite) == ["rule", "uniform"]  # best first: whichever that is here
    assert suite.get("failures") == "0" and all("validation accuracy" in c.find("system-out").text for c in suite)


def test_diff_of_a_run_against_a_sweep_names_what_is_in_one_only(base: Path, swept) -> None:
    """The sweep's lr = 0.001 cell holds the run's rule jobs; uniform is in A only, lr = 10 in B only."""
    out, _ = swept
    result = invoke("diff", str(base), str(out), "--fail-on", "worse", "-f", "json")
    assert result.exit_code == 0, result.output
    rows = {(r["lr"], r["scheme"]): r["verdict"] for r in json.loads(result.stdout)}
    assert rows == {("0.001", "rule"): "unchanged", ("0.001", "uniform"): "only in A", ("10", "rule"): "only in B"}
    assert invoke("diff", str(base), str(out), "--fail-on", "change").exit_code == 1
    xml = invoke("diff", str(base), str(out), "-f", "junit").stdout
    assert junit_suite(xml).get("skipped") == "2"


def test_diff_refuses_what_is_not_a_run_or_sweep_folder(base: Path, tmp_path: Path) -> None:
    for other, fragment in [(tmp_path, "is neither a run folder nor a sweep folder"),
                            (base / "weights", "a run folder, not its weights/"),
                            (tmp_path / "missing", "does not exist")]:
        result = invoke("diff", str(base), str(other))
        assert result.exit_code == 2 and fragment in " ".join(result.output.split()), result.output
        assert "Traceback" not in result.output


def test_conditions_are_judged_as_documented() -> None:
    """The interval's rules, without training: > needs it clear of 0, >= fails only below."""
    noisy = {"a": {0: 0.50, 1: 0.52, 2: 0.49}, "b": {0: 0.49, 1: 0.50, 2: 0.50}}  # a - b: +1, +2, -1 points
    judged = {o.condition: o.held for o in expect.evaluate(["a > b", "a >= b", "a ~ b", "a < b", "a <= b"], noisy)}
    assert judged == {"a > b": False, "a >= b": True, "a ~ b": True, "a < b": False, "a <= b": True}
    same = {"a": {0: 0.5, 1: 0.6}, "b": {0: 0.5, 1: 0.6}}
    assert [o.held for o in expect.evaluate(["a > b", "a >= b", "a ~ b"], same)] == [False, True, True]
    one = {"a": {0: 0.8}, "b": {0: 0.8}}
    assert [o.held for o in expect.evaluate(["a > b", "a >= b", "a >= 80%", "a > 0.8"], one)] == [
        False, True, True, False]


def test_junit_is_valid_xml_whatever_the_folders_are_named(data_dir: Path, tmp_path: Path) -> None:
    """Folder names holding control characters (an escape sequence, a bell) or a byte that is not
    UTF-8: XML 1.0 holds none of them, so the document writes them as Python does."""
    run = tmp_path / "run-\x1b[31m-\x07"
    done = subprocess.run([sys.executable, "-m", "initbench", "compare", "rule", "--seeds", "1", "--epochs", "1",
                           "--train-samples", "500", "--data-dir", str(data_dir), "--out", str(run), "-f", "junit"],
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    suite = junit_suite(done.stdout.decode())  # parsed by xml.etree: well-formed
    assert suite.get("name") == f"initbench compare {tmp_path}/run-\\x1b[31m-\\x07"
    copy = os.fsencode(tmp_path) + b"/copy-\xff"
    shutil.copytree(os.fsencode(run), copy)
    done = subprocess.run([sys.executable, "-m", "initbench", "diff", os.fsencode(run), copy, "-f", "junit"],
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    suite = junit_suite(done.stdout.decode())
    assert suite.get("name") == f"initbench diff {tmp_path}/run-\\x1b[31m-\\x07 {tmp_path}/copy-\\xff"
