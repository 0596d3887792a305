"""A user's scheme edited between sweeps leaves two versions of its rows in a store: the
documented edit-and-resume workflow, then what reads the store (report, the Python API,
diff, TensorBoard's export) shows the current code and names the other, never one table
mixing them under one name."""

import json
import subprocess
import sys
from pathlib import Path

from tensorboard.backend.event_processing import event_multiplexer  # the test extra's: TensorBoard's own reader

import initbench as ib
from initbench.storage import store

from .conftest import ROOT

HALF = '''
import math


def half(weight, bias, generator):
    """Half the general rule's range."""
    y = {scale} / math.sqrt(weight.shape[1])
    weight.uniform_(-y, y, generator=generator)
    bias.zero_()
'''


def _initbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "initbench", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def test_a_sweep_after_an_edit_reports_the_current_code_and_names_the_earlier(data_dir: Path, tmp_path: Path) -> None:
    scheme_file, folder = tmp_path / "s.py", tmp_path / "sweep"
    config = tmp_path / "grid.toml"
    config.write_text(f'data_dir = "{data_dir}"\nschemes = ["rule", "{scheme_file}:half"]\nseeds = 2\nepochs = 1\n'
                      'train_samples = 300\nhidden = [16]\n\n[grid]\nlr = [0.001]\n')
    scheme_file.write_text(HALF.format(scale=0.5))
    first = _initbench("sweep", str(config), "--out", str(folder))
    assert first.returncode == 0, first.stderr
    scheme_file.write_text(HALF.format(scale=0.25))  # edited: another scheme, by its code
    second = _initbench("sweep", str(config), "--out", str(folder))
    assert second.returncode == 0, second.stderr
    said = " ".join(second.stderr.split())
    assert "In the store: 2; to train: 2" in said and "new because the code of" in said

    reported = _initbench("report", str(folder), "--no-pictures", "-f", "json")
    assert reported.returncode == 0, reported.stderr
    rows = json.loads(reported.stdout)
    assert sorted((r["scheme"], r["seeds"]) for r in rows) == [(f"{scheme_file}:half", 2), ("rule", 2)]
    with store.open_store(folder, write=False) as st:
        shown, older = st.versions()
        codes = {name: scheme for name, scheme in zip(shown["name"], shown["scheme"])}
    assert [(v.name, v.rows, v.streams) for v in older] == [(f"{scheme_file}:half", 2, 2)]
    current, earlier = codes[f"{scheme_file}:half"].partition("@")[2][:8], older[0].code
    assert current != earlier
    noted = " ".join(_initbench("report", str(folder), "--no-pictures", "-f", "markdown").stdout.split())
    assert f"{scheme_file}:half's other code {earlier} (2 rows, trained" in noted

    side_by_side = _initbench("report", str(folder), "--no-pictures", "-f", "json", "--all-versions")
    assert side_by_side.returncode == 0, side_by_side.stderr
    assert sorted(r["scheme"] for r in json.loads(side_by_side.stdout)) == [
        f"{scheme_file}:half (code {current})", f"{scheme_file}:half (code {earlier}, earlier)", "rule"]

    table = ib.open(folder).table  # the Python API reads it as report does
    assert sorted(table["scheme"]) == [f"{scheme_file}:half", "rule"]
    assert len(ib.open(folder, all_versions=True).table) == 3

    logdir = tmp_path / "tb"
    exported = _initbench("export", str(folder), "--tensorboard", str(logdir), "--quiet")
    assert exported.returncode == 0, exported.stderr
    found = event_multiplexer.EventMultiplexer()
    found.AddRunsFromDirectory(str(logdir))
    runs = [r for r in found.Runs() if "half" in r]
    assert len(runs) == 4 and not any(r.endswith("-2") for r in runs)
    assert {r.split("/")[-2] for r in runs} == {f"s.half-code_{current}", f"s.half-code_{earlier}_earlier"}


def test_diff_pairs_a_users_scheme_across_an_edit_and_judges_it(data_dir: Path, tmp_path: Path) -> None:
    """A run and its re-run after the scheme got worse: paired by the scheme's name and seed,
    the code change named, and --fail-on worse fails."""
    scheme_file = tmp_path / "s.py"
    common = ["rule", f"{scheme_file}:half", "--seeds", "3", "--epochs", "1", "--train-samples", "2000",
              "--hidden", "16", "--data-dir", str(data_dir)]
    scheme_file.write_text(HALF.format(scale=0.5))
    assert _initbench("compare", *common, "--out", str(tmp_path / "a")).returncode == 0
    scheme_file.write_text(HALF.format(scale=0.0))  # every weight 0: the network stays at chance
    assert _initbench("compare", *common, "--out", str(tmp_path / "b")).returncode == 0
    judged = _initbench("diff", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-on", "worse", "-f", "markdown")
    assert judged.returncode == 1, judged.stdout + judged.stderr
    text = " ".join(judged.stdout.split())
    assert "only in" not in text
    assert f"| {scheme_file}:half | 3 |" in judged.stdout and "| rule | 3 |" in judged.stdout
    assert f"The code of {scheme_file}:half changed (" in text
    assert "worse" in " ".join(judged.stderr.split())


def test_diff_pairs_a_moved_scheme_file_by_its_code(data_dir: Path, tmp_path: Path) -> None:
    """The same file in another folder is the same code: its jobs pair with themselves, unchanged."""
    common = ["--seeds", "1", "--epochs", "1", "--train-samples", "300", "--hidden", "16", "--data-dir", str(data_dir)]
    for side in ("a", "b"):
        (tmp_path / f"in-{side}").mkdir()
        (tmp_path / f"in-{side}" / "s.py").write_text(HALF.format(scale=0.5))
        assert _initbench("compare", f"{tmp_path}/in-{side}/s.py:half", *common,
                          "--out", str(tmp_path / side)).returncode == 0
    judged = _initbench("diff", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-on", "change", "-f", "json")
    assert judged.returncode == 0, judged.stdout + judged.stderr
    [row] = json.loads(judged.stdout)
    assert row["verdict"] == "unchanged" and not row["code_changed"]
