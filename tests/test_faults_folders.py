"""Run folders as a hostile world leaves them: linked, killed mid-run, under a file, read-only,
looping, foreign or fed to a spreadsheet. Real runs on the real data, real processes, real
links, FIFOs and permissions; each case is refused in one paragraph, or handled as a user
expects."""

import csv
import ctypes
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from initbench.models import checkpoint
from initbench.storage import runfolder

SMALL = ("--epochs", "1", "--train-samples", "600", "--hidden", "16", "--seeds", "1")
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, PR_CAPBSET_DROP = 1, 2, 24


def initbench(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "initbench", *args], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def words(text: str) -> str:
    return " ".join(text.split())


def assert_paragraph(done: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    """One paragraph in initbench's words, with the documented exit status."""
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Unexpected error" not in done.stderr and "Error: " in done.stderr
    for fragment in fragments:
        assert fragment in words(done.stderr), done.stderr


def as_user() -> None:
    """In the child, before it runs initbench: root loses the capability to write and read
    anything, so that a folder's permissions hold for it as for any user (CI runs as root)."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture(scope="module")
def run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished compare run of two schemes and one seed."""
    out = tmp_path_factory.mktemp("runs") / "run"
    done = initbench("compare", "rule", "default", *SMALL, "--data-dir", str(data_dir), "--out", str(out), "-q")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(run, target)
    return target


# --- 1. an --out that is a symbolic link


def test_an_out_that_links_to_a_folder_is_written_where_it_leads(data_dir: Path, tmp_path: Path) -> None:
    """The run goes into the folder the link leads to, and the link stays: not to NAME-2 with a false "taken
    by another run meanwhile"; --overwrite then replaces that folder and leaves nothing hidden beside it."""
    target, link = tmp_path / "disk" / "results", tmp_path / "link"
    target.mkdir(parents=True)
    link.symlink_to(target)
    done = initbench("compare", "rule", *SMALL, "--data-dir", str(data_dir), "--out", str(link))
    assert done.returncode == 0, done.stderr
    assert "taken by another run" not in done.stderr and "(a link to" in words(done.stderr)
    assert f"{target})" in "".join(done.stderr.split())  # a long path may wrap anywhere
    assert link.is_symlink() and (target / "runs.csv").is_file() and sorted(os.listdir(tmp_path)) == ["disk", "link"]
    before = (target / "run.json").read_text()
    done = initbench("compare", "default", *SMALL, "--data-dir", str(data_dir), "--out", str(link), "--overwrite")
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and link.resolve() == target and (target / "run.json").read_text() != before
    assert pd.read_csv(target / "runs.csv")["scheme"].tolist() == ["default"]
    assert sorted(os.listdir(tmp_path)) == ["disk", "link"] and os.listdir(target.parent) == ["results"]


# --- 2. staging folders of runs killed outright


def test_staging_folders_of_killed_runs_are_removed_by_the_next_run(data_dir: Path, tmp_path: Path) -> None:
    """kill -9 leaves .NAME.partial-PID-*; the next run beside it removes those of dead processes (and those
    whose process id now belongs to another process), keeps the one a living run holds, and says so."""
    killed = subprocess.Popen([sys.executable, "-m", "initbench", "compare", "rule", "--epochs", "50", "--data-dir",
                               str(data_dir), "--out", str(tmp_path / "killed"), "-q"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    living = subprocess.Popen([sys.executable, "-m", "initbench", "compare", "rule", "--epochs", "50", "--data-dir",
                               str(data_dir), "--out", str(tmp_path / "living"), "-q"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len([p for p in tmp_path.iterdir() if ".partial-" in p.name]) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        staged = {p.name.split(".")[1]: p for p in tmp_path.iterdir() if ".partial-" in p.name}
        assert set(staged) == {"killed", "living"}
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        reused = tmp_path / f".reused.partial-{os.getpid()}-0123abcd"  # a living process id, not the run's
        reused.mkdir()
        os.utime(reused, (time.time() - 3600,) * 2)
        done = initbench("compare", "rule", *SMALL, "--data-dir", str(data_dir), "--out", str(tmp_path / "next"))
        assert done.returncode == 0, done.stderr
        assert not staged["killed"].exists() and not reused.exists()
        assert staged["living"].is_dir() and living.poll() is None  # in use: kept
        assert "Removed 2 unfinished run folders that killed runs left in" in words(done.stderr)
        assert staged["killed"].name in "".join(done.stderr.split())
    finally:
        for process in (killed, living):
            process.kill()
            process.wait()


# --- 3. an output folder under a file, or in a folder that cannot be written


@pytest.mark.parametrize("command", [["compare", "rule"], ["inspect", "rule"], ["transfer"],
                                     ["sweep", "configs/sweep-smoke.toml"]])
def test_an_out_under_a_file_is_refused_before_torch(command: list[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = before_torch(*command, "--out", str(blocker / "out"))
    assert_paragraph(done, 2, f"{blocker} is a file, not a folder", "Choose another with --out")
    assert blocker.read_text() == "" and sorted(os.listdir(tmp_path)) == ["a-file"]


@pytest.mark.parametrize("command", [["compare", "rule"], ["inspect", "rule"], ["sweep", "configs/sweep-smoke.toml"]])
def test_an_out_in_a_read_only_folder_is_refused_before_torch(command: list[str], tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        done = before_torch(*command, "--out", str(locked / "new" / "out"), preexec_fn=as_user)
    finally:
        locked.chmod(0o755)
    assert_paragraph(done, 2, f"{locked} is read-only for you", "Choose another with --out")
    assert os.listdir(locked) == []


# --- 4. symbolic link loops


@pytest.mark.parametrize("args", [
    ["compare", "rule", "--out", "LOOP"],
    ["compare", "rule", "--config", "LOOP"],
    ["report", "LOOP"],
    ["evaluate", "LOOP"],
    ["transfer", "--source", "LOOP"],
])
def test_a_symlink_loop_is_named_as_one(args: list[str], tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "back")
    (tmp_path / "back").symlink_to(loop)
    done = before_torch(*[str(loop) if a == "LOOP" else a for a in args], cwd=tmp_path)
    assert_paragraph(done, 2, f"{loop} is a symbolic link loop")
    assert "does not exist" not in done.stderr


def test_a_data_folder_that_is_a_symlink_loop_is_named_as_one(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    done = initbench("compare", "rule", *SMALL, "--data-dir", str(loop), "--out", str(tmp_path / "out"))
    assert_paragraph(done, 1, f"The data folder {loop} is a symbolic link loop", "--data-dir")
    assert not (tmp_path / "out").exists()


# --- 5. report: read-only folders, entries that are not runs, foreign run.json, FIFOs


def test_report_on_a_read_only_run_says_so_and_offers_no_pictures(copy: Path) -> None:
    copy.chmod(0o555)
    try:
        done = initbench("report", str(copy), preexec_fn=as_user)
        plain = initbench("report", str(copy), "--no-pictures", preexec_fn=as_user)
    finally:
        copy.chmod(0o755)
    assert_paragraph(done, 2, f"{copy} is read-only for you", "Add --no-pictures to print the table without writing")
    assert "--out" not in done.stderr
    assert plain.returncode == 0 and "| rule |" in plain.stdout, plain.stderr


def test_report_skips_entries_that_are_not_runs(run: Path, tmp_path: Path) -> None:
    """As a shell's results/* gives them: a README, an empty folder, a run. The run is reported, the others
    named on stderr; with no run among them, it is an error that names each."""
    readme, empty = tmp_path / "README.md", tmp_path / "empty"
    readme.write_text("# results\n")
    empty.mkdir()
    done = initbench("report", str(readme), str(run), str(empty), "--no-pictures", "-f", "csv")
    assert done.returncode == 0, done.stderr
    assert {row["scheme"] for row in csv.DictReader(io.StringIO(done.stdout))} == {"rule", "default"}
    assert f"Not reported: {readme} is a file, not a folder" in words(done.stderr)
    assert f"Not reported: {empty} is not a finished compare run" in words(done.stderr)
    done = initbench("report", str(readme), str(empty))
    assert_paragraph(done, 2, f"{readme} is a file, not a folder", f"{empty} is not a finished compare run")


@pytest.mark.parametrize("content", [
    [], {"config": [], "data": {"train": 600}}, {"config": {"epochs": 1}},
    {"config": {"schemes": ["rule"], "epochs": "1", "batch_size": 0, "plot_batches": 1, "dropout": 0.0},
     "data": {"train": 600}},
    "a string",
])
def test_a_run_json_of_another_layout_is_one_paragraph(copy: Path, content) -> None:
    (copy / "run.json").write_text(json.dumps(content))
    assert_paragraph(initbench("report", str(copy)), 1, f"{copy / 'run.json'} is not laid out as this initbench "
                     "writes run.json", "Run the run again to report on it")


@pytest.mark.parametrize("name", ["run.json", "runs.csv", "losses.csv"])
def test_a_fifo_in_a_run_is_refused_and_never_opened(copy: Path, name: str) -> None:
    (copy / name).unlink()
    os.mkfifo(copy / name)
    done = initbench("report", str(copy), timeout=60)  # opening the FIFO would wait for ever
    assert_paragraph(done, 2, f"{copy / name} is not a regular file: it is a FIFO (named pipe)")


# --- 6. usage errors of evaluate, report and transfer --source are found before torch loads


def before_torch(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """The command line run as the console script runs it, asserting at its exit that torch was not imported."""
    code = ("import sys; from initbench.cli import main; sys.argv = ['initbench', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert 'torch' not in sys.modules, 'torch imported'; raise")
    kwargs.setdefault("cwd", Path(__file__).resolve().parent.parent)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, **kwargs)


@pytest.mark.parametrize(("args", "fragment"), [
    (["evaluate", "MISSING.safetensors"], "MISSING.safetensors does not exist"),
    (["evaluate", "README.md"], "its name ends in .md"),
    (["evaluate", "EMPTY"], "holds no weights/*.safetensors"),
    (["report", "MISSING"], "MISSING does not exist"),
    (["report", "EMPTY"], "is not a finished compare run"),
    (["report", "README.md"], "is a file, not a folder"),
    (["transfer", "--source", "EMPTY"], "is not a finished compare run"),
    (["transfer", "--source", "RUN"], "trained 2 schemes (default, rule)"),
])
def test_usage_errors_of_evaluate_report_and_transfer_are_found_before_torch(run: Path, tmp_path: Path, args,
                                                                            fragment: str) -> None:
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "README.md").write_text("# results\n")
    args = [str(run) if a == "RUN" else a for a in args] + (["--out", "out"] if args[0] == "transfer" else [])
    started = time.perf_counter()
    done = before_torch(*args, cwd=tmp_path)
    seconds = time.perf_counter() - started
    assert_paragraph(done, 2, fragment)
    print(f"{' '.join(args[:2])}: refused in {seconds:.2f} s")


# --- 7. CSV cells a spreadsheet would run


HOSTILE = ["=1+2", "+1", "-x", "@SUM(A1)", "\tx", "\rx"]


def test_every_csv_written_keeps_numbers_and_escapes_formulas(tmp_path: Path) -> None:
    frame = pd.DataFrame({"scheme": HOSTILE + ["rule"], "val_acc": [-0.5, 0.25, -1e-3, 0.0, 1.0, -2.0, 0.5],
                          "seed": [-1, 0, 1, 2, 3, 4, 5]})
    runfolder.write_files(tmp_path, {"runs.csv": runfolder.csv_writer(frame)})
    text = (tmp_path / "runs.csv").read_bytes().decode()
    assert "\n'\rx," in text  # a carriage return in a cell is not quoted by pandas' writer: checked as written
    frame = frame[frame["scheme"] != "\rx"]
    runfolder.write_files(tmp_path, {"runs.csv": runfolder.csv_writer(frame)})
    with (tmp_path / "runs.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["scheme"] for r in rows] == ["'" + name for name in HOSTILE if name != "\rx"] + ["rule"]
    assert [float(r["val_acc"]) for r in rows] == frame["val_acc"].tolist()  # numbers stay numbers
    assert rows[0]["val_acc"] == "-0.5" and rows[0]["seed"] == "-1"
    back = pd.read_csv(tmp_path / "runs.csv")
    assert back["val_acc"].dtype == float and back["seed"].dtype == int


def test_report_escapes_hostile_names_from_a_runs_csv(copy: Path) -> None:
    """A runs.csv edited to hold a formula as a scheme name: report's CSV escapes it once (a name initbench
    already escaped is not escaped again), and leaves the other rows as they were."""
    runs = pd.read_csv(copy / "runs.csv")
    runs.loc[runs["scheme"] == "rule", "scheme"] = "=HYPERLINK(\"http://x\")"
    runs.loc[runs["scheme"] == "default", "scheme"] = "'-escaped"
    runs.to_csv(copy / "runs.csv", index=False)
    done = initbench("report", str(copy), "-f", "csv", "--no-pictures")
    assert done.returncode == 0, done.stderr
    assert sorted(r["scheme"] for r in csv.DictReader(io.StringIO(done.stdout))) == [
        "'-escaped", "'=HYPERLINK(\"http://x\")"]


def test_a_normal_run_reads_back_as_written(run: Path) -> None:
    """A run as initbench writes it holds nothing to escape: report's CSV is its accuracy.csv."""
    done = initbench("report", str(run), "-f", "csv", "--no-pictures")
    assert done.returncode == 0, done.stderr
    saved = pd.read_csv(run / "accuracy.csv")
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(done.stdout)), saved, rtol=1e-5)


def test_evaluate_escapes_a_hostile_file_name(run: Path, data_dir: Path, tmp_path: Path) -> None:
    hostile = tmp_path / "=cmd|' calc'!A0.safetensors"
    shutil.copy(run / "weights" / "rule-seed0.safetensors", hostile)
    done = initbench("evaluate", hostile.name, "-f", "csv", "--data-dir", str(data_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (row,) = csv.DictReader(io.StringIO(done.stdout))
    assert row["file"] == "'" + hostile.name and row["check"] == "reproduced"


# --- 8. evaluate of a file whose record disagrees with its tensors


def test_evaluate_does_not_ask_for_hidden_when_the_file_records_its_network(run: Path, data_dir: Path,
                                                                             tmp_path: Path) -> None:
    """An initbench file whose record says another network than its tensors hold (re-saved with the digest
    recomputed): --hidden is ignored for such a file, so the message must not ask for it."""
    source = run / "weights" / "rule-seed0.safetensors"
    with safe_open(source, "pt") as f:
        meta = json.loads(f.metadata()[checkpoint.METADATA_KEY])
    meta["job"]["settings"]["hidden"] = meta["architecture"]["hidden"] = [32]
    edited = tmp_path / "edited.safetensors"
    checkpoint.save(edited, load_file(source), {k: v for k, v in meta.items() if k not in ("format", "tensors_sha256")})
    done = initbench("evaluate", str(edited), "--data-dir", str(data_dir))
    assert_paragraph(done, 1, "--hidden does not apply to it", "changed after initbench wrote it")
    assert "Give --hidden" not in words(done.stderr)
    plain = tmp_path / "plain.pt"  # a plain state dict is scored for the model --hidden describes: it applies
    torch.save(load_file(source), plain)
    done = initbench("evaluate", str(plain), "--hidden", "16,16", "--data-dir", str(data_dir))
    assert_paragraph(done, 1, "Give --hidden the file's hidden sizes")
