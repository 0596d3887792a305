"""Defects of issue 31's section 4 that have no better home: a scheme file whose name holds a
colon, a weights record missing a field (once shown as Python's raw ``<object object at
0x...>``), the Python API given what its functions do not take, and a run folder named with
control characters or bytes that are not UTF-8."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import initbench as ib
from initbench.errors import UsageError
from initbench.models import checkpoint

SCHEME = '''
def f(weight, bias, generator):
    weight.normal_(0, 0.05, generator=generator)
    bias.zero_()
'''


def initbench(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "initbench", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "COLUMNS": "200"}, timeout=300)


def test_a_scheme_file_whose_name_holds_a_colon_is_usable(data_dir: Path, tmp_path: Path) -> None:
    """my:inits.py:f is the function f of the file my:inits.py (here, or in a folder)."""
    (tmp_path / "my:inits.py").write_text(SCHEME)
    (tmp_path / "a:b").mkdir()
    (tmp_path / "a:b" / "c:d.py").write_text(SCHEME + "# another file, another scheme\n")
    done = initbench("compare", "my:inits.py:f", f"{tmp_path}/a:b/c:d.py:f", "--seeds", "1", "--epochs", "1",
                     "--train-samples", "500", "--data-dir", data_dir, "--out", tmp_path / "out", "-f", "csv",
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    schemes = {line.split(",")[0] for line in done.stdout.splitlines()[1:]}
    assert schemes == {"my:inits.py:f", f"{tmp_path}/a:b/c:d.py:f"}, done.stdout


def test_a_record_missing_a_field_is_named_in_words(tmp_path: Path) -> None:
    state = {"layers.0.weight": torch.ones(10, 784), "layers.0.bias": torch.zeros(10)}
    record = {"format": checkpoint.FORMAT, "weights": "final", "file": "w.safetensors",
              "architecture": {"classes": list(range(10))},
              "data": {"files_sha256": {}, "split_seed": 0, "train_samples": None},
              "trained_with": {"engine": "batched", "device": "cpu"}, "accuracy": {"val": 0.5, "test": 0.5},
              "tensors_sha256": checkpoint.tensors_digest(state)}  # no "job"
    save_file(state, tmp_path / "w.safetensors", metadata={"initbench": json.dumps(record)})
    done = initbench("evaluate", tmp_path / "w.safetensors")
    said = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stderr
    assert "its initbench record has no job.scheme (the field is missing)" in said, done.stderr
    assert "object at 0x" not in said and said.count("Error:") == 1, done.stderr


@pytest.mark.parametrize(("call", "fragments"), [
    (lambda: ib.compare(5), ["compare() takes its schemes first: a name (compare(\"rule\")), a function, or a list",
                             "got 5 (of type int)", "Settings are keywords, as compare(seeds=5)"]),
    (lambda: ib.inspect([1.5]), ["inspect() takes its schemes first", "got [1.5] (of type list)"]),
    (lambda: ib.sweep(42), ["sweep() takes its config first: a TOML file's path (sweep(\"configs/sweep-lesson.toml\"))",
                            "or its settings as a dict", "got 42 (of type int)"]),
    (lambda: ib.evaluate(), ["evaluate() needs what to score: weights files or run folders"]),
    (lambda: ib.compare([lambda weight, bias, generator: None, lambda weight, bias, generator: None]),
     ["compare() was given two functions named '<lambda>'", "Give each a name of its own: ib.scheme(\"half\")(fn)"]),
], ids=["compare(5)", "inspect([1.5])", "sweep(42)", "evaluate()", "two lambdas"])
def test_the_api_given_what_it_does_not_take_says_the_right_call(call, fragments: list[str]) -> None:
    """One paragraph naming the call to make, before any work; evaluate() with nothing to score
    is refused, not an empty result that check=True passes."""
    with pytest.raises(UsageError) as raised:
        call()
    said = str(raised.value)
    assert all(fragment in said for fragment in fragments) and "\n" not in said, said
    assert raised.value.exit_code == 2


def test_lambdas_named_with_ib_scheme_train(data_dir: Path, tmp_path: Path) -> None:
    """The way the message names: two lambdas, each registered under a name of its own."""
    first = ib.scheme("small")(lambda weight, bias, generator: (weight.normal_(0, 0.01, generator=generator),
                                                               bias.zero_()))
    second = ib.scheme("large")(lambda weight, bias, generator: (weight.normal_(0, 0.1, generator=generator),
                                                                bias.zero_()))
    run = ib.compare([first, second], epochs=1, train_samples=500, seeds=1, data_dir=data_dir,
                     out=tmp_path / "out", progress=False)
    assert set(run.table.index) == {"small", "large"}


def test_a_folder_named_with_control_characters_or_bytes_that_are_not_utf8(data_dir: Path, tmp_path: Path) -> None:
    """report.html is written (UTF-8, the name's odd characters escaped), and the line that says
    where the results went shows them escaped, not raw to the terminal."""
    out = os.fsencode(tmp_path) + b"/run-\x1b[31m-\xff"
    done = subprocess.run([sys.executable, "-m", "initbench", "compare", "rule", "--seeds", "1", "--epochs", "1",
                           "--train-samples", "300", "--hidden", "16", "--data-dir", str(data_dir), "--out", out],
                          capture_output=True, env={**os.environ, "COLUMNS": "300"}, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"\x1b[31m" not in done.stderr and b"\xff" not in done.stderr
    assert f"Results in {tmp_path}/run-\\x1b[31m-\\xff".encode() in done.stderr
    page = (Path(os.fsdecode(out)) / "report.html").read_bytes().decode("utf-8")  # valid UTF-8
    assert "run-\\x1b[31m-\\xff" in page and "\x1b" not in page
