"""The result store's integrity as a hostile user meets it: a folder deleted or replaced
under a running sweep, SQLite files initbench did not make, rows and weights files altered
by hand, stores locked, read-only or damaged, signals and a file-size limit while weights
are written. Real data, real files, real processes: nothing lost, nothing mixed."""

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner

from initbench.cli import app
from initbench.models import checkpoint
from initbench.storage import store

from .test_cli import assert_clean_error
from .test_sweep import sweep_file

runner = CliRunner()


def grid(tmp_path: Path, data_dir: Path, cells: str = "lr = [0.001, 0.01]", **settings) -> Path:
    """8 jobs: rule and kaiming_normal x 2 seeds x 2 cells, 16 hidden units, 1 epoch on 600 images."""
    return sweep_file(tmp_path, cells, hidden="16", data_dir=str(data_dir), **settings)


def sweep(*args: str):
    return runner.invoke(app, ["sweep", *args])


def words(text: str) -> str:
    return " ".join(text.split())


def in_store(output: str) -> tuple[int, int]:
    """(in the store, to train) from a sweep's plan."""
    text = words(output)
    start = text.index("In the store: ") + len("In the store: ")
    held, rest = text[start:].split("; to train: ", 1)
    return int(held.replace(",", "")), int(rest.split(",")[0].split(".")[0].split()[0].replace(",", ""))


def rows(folder: Path, where: str = "") -> int:
    with closing(sqlite3.connect(f"file:{folder / store.FILE}?mode=ro", uri=True)) as db:
        return db.execute(f"SELECT count(*) FROM jobs {where}").fetchone()[0]


def start_sweep(path: Path, folder: Path, *args: str, **popen) -> subprocess.Popen:
    """A sweep as its own process, one chunk (one commit) per job."""
    return subprocess.Popen([sys.executable, "-m", "initbench", "sweep", str(path), "--out", str(folder), "--quiet",
                             "--set", "max_batch_models=1", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **popen)


def wait_for_rows(folder: Path, n: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if (folder / store.FILE).exists() and rows(folder) >= n:
                return
        except sqlite3.OperationalError:  # the table is not made yet
            pass
        time.sleep(0.005)
    raise AssertionError(f"the sweep did not commit {n} jobs: {process.poll()}, {process.stderr.read()}")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, Path]:
    """One finished sweep without weights: (its config, its folder)."""
    tmp = tmp_path_factory.mktemp("plain")
    path = grid(tmp, data_dir)
    result = sweep(str(path), "--out", str(tmp / "sw"), "--quiet", "--format", "csv")
    assert result.exit_code == 0, result.output
    return path, tmp / "sw"


@pytest.fixture(scope="module")
def weighted(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, Path]:
    """One finished sweep that kept every model's weights: (its config, its folder)."""
    tmp = tmp_path_factory.mktemp("weighted")
    path = grid(tmp, data_dir, save_weights=True)
    result = sweep(str(path), "--out", str(tmp / "sw"), "--quiet", "--format", "csv")
    assert result.exit_code == 0, result.output
    return path, tmp / "sw"


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A compare run of rule and zeros, one seed, weights kept."""
    out = tmp_path_factory.mktemp("compared") / "run"
    result = runner.invoke(app, ["compare", "rule", "zeros", "--epochs", "1", "--train-samples", "600", "--hidden",
                                 "16", "--data-dir", str(data_dir), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def copied(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


# --- 1. a folder deleted or replaced under a running sweep


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_sweep_whose_folder_goes_away_stops_and_says_what_was_lost(tmp_path: Path, data_dir: Path,
                                                                     how: str) -> None:
    folder = tmp_path / "sw"
    process = start_sweep(grid(tmp_path, data_dir), folder)
    wait_for_rows(folder, 1, process)
    if how == "deleted":
        shutil.rmtree(folder)
    else:  # another folder takes its place: the sweep must not write into it, nor remove it
        os.rename(folder, tmp_path / "aside")
        folder.mkdir()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    assert "Traceback" not in err and "Unexpected" not in err
    assert "was deleted or replaced while this command ran" in words(err), err
    assert "committed to it" in words(err) and "Run the same command again: it trains them anew" in words(err)
    if how == "deleted":
        assert not folder.exists()  # no folder made again, claiming results
    else:
        assert list(folder.iterdir()) == []


# --- 2. a SQLite file initbench did not make


@pytest.mark.parametrize("theirs", [
    "CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('mine')",
    "CREATE TABLE jobs (id INTEGER PRIMARY KEY, title TEXT); INSERT INTO jobs (title) VALUES ('mine')",
    "CREATE TABLE info (name TEXT, value TEXT); INSERT INTO info VALUES ('owner', 'me'); CREATE TABLE jobs (key TEXT)",
])
def test_a_sqlite_file_initbench_did_not_make_is_refused_and_left_as_it_was(tmp_path: Path, data_dir: Path,
                                                                           theirs: str) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir()
    with closing(sqlite3.connect(folder / store.FILE)) as db:
        db.executescript(theirs)
        db.commit()
    before = (folder / store.FILE).read_bytes()
    for command in (["sweep", str(grid(tmp_path, data_dir)), "--out", str(folder)],
                    ["report", str(folder), "--no-pictures"]):
        result = runner.invoke(app, command)
        assert_clean_error(result, "is not a store initbench made", "left it as it was", code=2)
        assert (folder / store.FILE).read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == [store.FILE]


# --- 3. a dry run answers as the run does


def test_a_dry_run_finds_done_what_the_run_finds_done(plain: tuple[Path, Path], tmp_path: Path) -> None:
    """After a sweep without weights, the same grid with save_weights: every job must be trained
    again (its weights were not kept), and the dry run says so."""
    path, done = plain
    folder = copied(done, tmp_path)
    dry = sweep(str(path), "--out", str(folder), "--set", "save_weights=true", "--dry-run", "--format", "csv")
    assert dry.exit_code == 0, dry.output
    ran = sweep(str(path), "--out", str(folder), "--set", "save_weights=true", "--format", "csv")
    assert ran.exit_code == 0, ran.output
    assert in_store(dry.output) == in_store(ran.output) == (0, 8)
    assert len(list((folder / "weights").glob("*.safetensors"))) == 8


# --- 4. a row is done only while its weights file is the one written


def test_a_row_whose_weights_file_was_deleted_or_truncated_is_trained_again(weighted: tuple[Path, Path],
                                                                           tmp_path: Path) -> None:
    path, done = weighted
    folder = copied(done, tmp_path)
    files = sorted((folder / "weights").glob("*.safetensors"))
    files[0].unlink()
    with files[1].open("r+b") as f:
        f.truncate(files[1].stat().st_size // 2)
    dry = sweep(str(path), "--out", str(folder), "--dry-run", "--format", "csv")
    ran = sweep(str(path), "--out", str(folder), "--format", "csv")
    assert ran.exit_code == 0, ran.output
    assert in_store(dry.output) == in_store(ran.output) == (6, 2)
    assert "2 rows of the store whose weights file is missing" in words(ran.output)
    with closing(sqlite3.connect(folder / store.FILE)) as db:
        for file, size, digest in db.execute("SELECT weights_file, weights_bytes, weights_sha256 FROM jobs"):
            assert (folder / file).stat().st_size == size and checkpoint.sha256(folder / file) == digest
    assert in_store(sweep(str(path), "--out", str(folder), "--dry-run").output) == (8, 0)


# --- 5. weights files are on disk before the rows that name them


def test_weights_files_and_their_folder_are_synced_before_their_rows_commit(
        tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every os.fsync the sweep makes is recorded (the real one runs): each weights file and the
    folders naming them are synced, each file while no row of the store names it yet."""
    folder = tmp_path / "sw"
    real = os.fsync
    synced: dict[str, int] = {}

    def fsync(fd: int) -> None:
        real(fd)
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        name = path.name.removeprefix(".").removesuffix(f".{os.getpid()}.tmp")
        with closing(sqlite3.connect(f"file:{folder / store.FILE}?mode=ro", uri=True)) as db:
            synced[str(path.parent / name)] = db.execute(
                "SELECT count(*) FROM jobs WHERE weights_file = ?", (f"weights/{name}",)).fetchone()[0]

    monkeypatch.setattr(os, "fsync", fsync)
    result = sweep(str(grid(tmp_path, data_dir, save_weights=True)), "--out", str(folder), "--quiet")
    assert result.exit_code == 0, result.output
    files = sorted((folder / "weights").glob("*.safetensors"))
    assert len(files) == 8
    assert {str(f): 0 for f in files} == {k: v for k, v in synced.items() if k.endswith(".safetensors")}
    assert {str(folder), str(folder / "weights")} <= set(synced)


# --- 6. evaluate holds a file in a folder to the store's record


def test_evaluate_checks_a_file_against_the_store_that_recorded_it(compared: Path, data_dir: Path,
                                                                   tmp_path: Path) -> None:
    run = copied(compared, tmp_path)
    path = run / "weights" / "rule-seed0.safetensors"
    lone = tmp_path / "elsewhere" / "zeros-seed0.safetensors"
    lone.parent.mkdir()
    shutil.copy(run / "weights" / "zeros-seed0.safetensors", lone)

    def evaluate(*paths: Path):
        return runner.invoke(app, ["evaluate", *map(str, paths), "--data-dir", str(data_dir), "--format", "json"])

    result = evaluate(run / "weights" / "zeros-seed0.safetensors", lone)
    assert result.exit_code == 0, result.output
    checked = [row["integrity"] for row in json.loads(result.stdout)]
    assert checked[0].startswith("matches the store's record") and checked[1].startswith("the file's own digest only")

    # One weight nudged by 1e-4 and the file saved again, its own tensors digest recomputed.
    with safe_open(path, "pt") as f:
        meta = json.loads(f.metadata()["initbench"])
    state = load_file(path)
    state["layers.0.weight"][0, 0] += 1e-4
    checkpoint.save(path, state, {k: v for k, v in meta.items() if k not in ("format", "tensors_sha256")})
    result = runner.invoke(app, ["evaluate", str(path), "--data-dir", str(data_dir)])
    assert_clean_error(result, "These are not the weights that were trained", "its SHA-256 is not the one the store",
                       "recorded when it was trained")
    assert "NOT the file the store recorded" in words(result.stdout)


# --- 7 and 8. rows edited by hand, or not of initbench's making


@pytest.mark.parametrize("edit", ["val_acc = 0.99", "test_acc = 'high'", "settings = '{broken'",
                                  "name = 'best'", "losses = x'00'"])
def test_rows_edited_by_hand_are_named_by_report_and_trained_again_by_the_sweep(
        plain: tuple[Path, Path], tmp_path: Path, edit: str) -> None:
    path, done = plain
    folder = copied(done, tmp_path)
    with closing(sqlite3.connect(folder / store.FILE)) as db:
        (key,) = db.execute("SELECT key FROM jobs ORDER BY key LIMIT 1").fetchone()
        db.execute(f"UPDATE jobs SET {edit} WHERE key = ?", (key,))
        db.commit()
    result = runner.invoke(app, ["report", str(folder), "--no-pictures"])
    assert_clean_error(result, "1 row whose values do not match the digest recorded with them", key[:16],
                       "not reported as results")
    ran = sweep(str(path), "--out", str(folder), "--format", "csv")
    assert ran.exit_code == 0, ran.output
    assert in_store(ran.output) == (7, 1)
    assert f"1 row of the store whose values do not match the digest recorded with them (edited by hand, or " \
           f"written by another program): {key[:16]}; they are trained again." in words(ran.output)
    assert runner.invoke(app, ["report", str(folder), "--no-pictures"]).exit_code == 0


def test_a_store_written_before_digests_is_read_and_migrated_to_resume(plain: tuple[Path, Path],
                                                                       tmp_path: Path) -> None:
    """A version-1 store (no weights or row digests): report reads it; a dry run and a sweep
    agree that it holds its jobs; the sweep migrates it (its rows digested as they are) and
    trains nothing; a row edited after that is caught."""
    path, done = plain
    folder = copied(done, tmp_path)
    with closing(sqlite3.connect(folder / store.FILE)) as db:
        have = {c for (_, c, *_) in db.execute("PRAGMA table_info(jobs)")}
        for column in ("weights_bytes", "weights_sha256", "row_sha256"):
            if column in have:
                db.execute(f"ALTER TABLE jobs DROP COLUMN {column}")
        db.execute("UPDATE info SET value = '1' WHERE name = 'version'")
        db.commit()
    assert runner.invoke(app, ["report", str(folder), "--no-pictures"]).exit_code == 0
    dry = sweep(str(path), "--out", str(folder), "--dry-run", "--format", "csv")
    assert dry.exit_code == 0 and in_store(dry.output) == (8, 0), dry.output
    ran = sweep(str(path), "--out", str(folder), "--format", "csv")
    assert ran.exit_code == 0, ran.output
    assert in_store(ran.output) == (8, 0)
    with closing(sqlite3.connect(folder / store.FILE)) as db:
        assert db.execute("SELECT value FROM info WHERE name = 'version'").fetchone() == (str(store.VERSION),)
        assert db.execute("SELECT count(*) FROM jobs WHERE row_sha256 IS NOT NULL").fetchone() == (8,)
        db.execute("UPDATE jobs SET val_acc = 0.99 WHERE rowid = 1")
        db.commit()
    again = sweep(str(path), "--out", str(folder), "--format", "csv")
    assert again.exit_code == 0 and in_store(again.output) == (7, 1), again.output


# --- 9. what is the matter with a store, in words


def test_a_store_locked_by_another_process_says_so(plain: tuple[Path, Path], tmp_path: Path) -> None:
    path, done = plain
    folder = copied(done, tmp_path)
    with closing(sqlite3.connect(folder / store.FILE, isolation_level=None)) as db:
        db.execute("BEGIN EXCLUSIVE")  # as a database browser in the middle of a transaction
        result = sweep(str(path), "--out", str(folder))
    assert_clean_error(result, "is locked by another process", "run the same command again")
    assert "move it away" not in words(result.output).lower()


def test_a_read_only_store_says_so(plain: tuple[Path, Path], tmp_path: Path) -> None:
    path, done = plain
    folder = copied(done, tmp_path)
    file = folder / store.FILE
    # root writes any file whatever its mode: the immutable attribute stops even root
    immutable = os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(file)], capture_output=True).returncode == 0
    if not immutable:
        if os.geteuid() == 0:
            pytest.skip("no way to make a file read-only for root here (chattr +i failed)")
        file.chmod(0o444)
    before = file.read_bytes()
    try:
        result = sweep(str(path), "--out", str(folder))
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(file)], check=True)
    assert_clean_error(result, "is read-only for this process", "write permission")
    assert "move it away" not in words(result.output).lower()
    assert file.read_bytes() == before


def test_damage_is_told_as_damage_and_a_compare_run_reports_from_its_csvs(plain: tuple[Path, Path], compared: Path,
                                                                          tmp_path: Path) -> None:
    path, done = plain
    folder = copied(done, tmp_path)
    (folder / store.FILE).write_bytes(b"\0" * 4096)
    assert_clean_error(sweep(str(path), "--out", str(folder)), "is damaged", "Move it away")
    run = copied(compared, tmp_path)
    (run / store.FILE).write_bytes(b"\0" * 4096)
    result = runner.invoke(app, ["report", str(run), "--no-pictures"])
    assert result.exit_code == 0, result.output  # report reads a compare run's CSVs: they are fine


# --- 10. a signal says what the store keeps


def test_sigterm_says_how_many_jobs_the_store_keeps(tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "sw"
    process = start_sweep(grid(tmp_path, data_dir), folder)
    wait_for_rows(folder, 2, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    kept = rows(folder)
    assert 2 <= kept < 8
    said = "".join(err.split())  # a long path may be broken across lines anywhere
    assert "".join(f"Interrupted by SIGTERM: the store in {folder} keeps {kept} jobs; the same command resumes "
                   "from them.".split()) in said, err
    assert "no result files were written" not in err


# --- 11. a file-size limit (or a full disk) while weights are written


def test_a_file_size_limit_while_writing_weights_is_one_paragraph(tmp_path: Path, data_dir: Path) -> None:
    """Weights of 16 hidden units (51 kB) fit under a 400 kB limit, those of 256 (0.8 MB) do not."""
    path = grid(tmp_path, data_dir, cells='hidden = ["16", "256"]', save_weights=True)
    folder = tmp_path / "sw"

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))

    done = subprocess.run([sys.executable, "-m", "initbench", "sweep", str(path), "--out", str(folder), "--quiet"],
                          capture_output=True, text=True, preexec_fn=limited, timeout=300)
    assert done.returncode == 1, done.stderr
    text = words(done.stderr)
    assert "Error:" in text and "Traceback" not in text and "Unexpected" not in text, done.stderr
    assert "File too large" in text and f"Thestorein{folder}keeps4jobs" in "".join(text.split()), done.stderr
    assert "the same command resumes from them" in text
    assert not list(folder.glob("weights/.*.tmp"))  # nothing half-written
    again = sweep(str(path), "--out", str(folder), "--format", "csv")
    assert again.exit_code == 0, again.output
    assert in_store(again.output) == (4, 4)


def test_the_digest_is_over_every_value_of_a_row(plain: tuple[Path, Path]) -> None:
    """Each row's digest is the SHA-256 of its canonical values, and no two rows share one."""
    _, folder = plain
    with closing(sqlite3.connect(folder / store.FILE)) as db:
        db.row_factory = sqlite3.Row
        found = [dict(row) for row in db.execute("SELECT * FROM jobs")]
    assert len({row["row_sha256"] for row in found}) == len(found) == 8
    assert all(row["row_sha256"] == store._key(store._canonical(row)) for row in found)
