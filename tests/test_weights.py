"""Trained weights kept and checked: the files compare writes, and evaluate scoring them
again, as a user meets it, on real data. One small run is trained for the whole module;
every other case is a copy of its files, altered the way a user's files go wrong."""

import json
import os
import pickle
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from initbench import data, initializers
from initbench.cli import app
from initbench.data import fashion_mnist
from initbench.models import checkpoint
from initbench.settings import TrainSettings

runner = CliRunner()
SCHEMES = ("rule", "default")
SEEDS = (0, 1)
LESSON_NAMES = {"layers.0": "fc1", "layers.1": "fc2", "layers.2": "fc3"}


def assert_clean_error(result, *fragments: str, code: int = 1) -> None:
    """One paragraph, no traceback; exit status 2 for what was typed, 1 for work that failed."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "Error:" in result.output
    for fragment in fragments:
        assert fragment in " ".join(result.output.split()), result.output


def assert_names(result, *names: str) -> None:
    """The output names each file (a long path may be broken across lines at any character)."""
    for name in names:
        assert name in "".join(result.output.split()), result.output


def evaluate(data_dir: Path, *args: str):
    return runner.invoke(app, ["evaluate", *args, "--data-dir", str(data_dir)])


def scored(result) -> list[dict]:
    """The rows of ``evaluate --format json`` (stdout only: progress goes to stderr)."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def record(path: Path) -> dict:
    with safe_open(path, "pt") as f:
        return json.loads(f.metadata()["initbench"])


def forge(path: Path, state: dict[str, torch.Tensor], meta: dict) -> None:
    """Write a safetensors file as initbench would, with the digest of ``state`` recomputed."""
    meta = meta | {"tensors_sha256": checkpoint.tensors_digest(state)}
    save_file({k: v.contiguous() for k, v in state.items()}, path, metadata={"initbench": json.dumps(meta)})


def lesson_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same tensors under the lesson's names: layers.0.weight -> fc1.weight."""
    return {LESSON_NAMES[k.rpartition(".")[0]] + "." + k.rpartition(".")[2]: v for k, v in state.items()}


@pytest.fixture(scope="module")
def run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small compare run (2 schemes x 2 seeds, 1 epoch on 2,000 images), initial weights kept."""
    out = tmp_path_factory.mktemp("weights") / "run"
    result = runner.invoke(app, ["compare", *SCHEMES, "--epochs", "1", "--seeds", str(len(SEEDS)), "--train-samples",
                                 "2000", "--save-init", "--quiet", "--out", str(out), "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def copy(run: Path, tmp_path: Path) -> Path:
    """A copy of the run folder, to alter."""
    return Path(shutil.copytree(run, tmp_path / "copy"))


def test_run_folder_keeps_every_model_with_its_record(run: Path) -> None:
    """weights/<scheme>-seed<N>.safetensors (and weights/init/ with --save-init) for every model, each saying
    what it is: architecture, job, data, and the accuracies runs.csv shows."""
    names = {f"{scheme}-seed{seed}.safetensors" for scheme in SCHEMES for seed in SEEDS}
    assert {p.name for p in (run / "weights").glob("*.safetensors")} == names
    assert {p.name for p in (run / "weights" / "init").glob("*.safetensors")} == names
    runs = pd.read_csv(run / "runs.csv").set_index(["scheme", "seed"])
    for scheme in SCHEMES:
        for seed in SEEDS:
            name = f"{scheme}-seed{seed}.safetensors"
            meta = record(run / "weights" / name)
            assert meta["format"] == "initbench-weights/1" and meta["weights"] == "final" and meta["file"] == name
            arch = meta["architecture"]
            assert (arch["hidden"], arch["activation"], arch["classes"], arch["outputs"]) == (
                [256, 128], "relu", list(range(10)), 10)
            job = meta["job"]
            assert (job["scheme"], job["seed"]) == (scheme, seed)
            assert set(job["settings"]) == set(data.stored(TrainSettings()))
            assert job["settings"]["epochs"] == 1 and job["settings"]["hidden"] == [256, 128]
            assert meta["data"]["files_sha256"] == fashion_mnist.SHA256
            assert (meta["data"]["split_seed"], meta["data"]["train_samples"], meta["data"]["classes"]) == (
                0, 2000, list(range(10)))
            row = runs.loc[(scheme, seed)]
            assert meta["accuracy"]["val"] == pytest.approx(row["val_acc"], rel=1e-5)
            assert meta["accuracy"]["test"] == pytest.approx(row["test_acc"], rel=1e-5)
            assert meta["tensors_sha256"] == checkpoint.tensors_digest(load_file(run / "weights" / name))

            init = record(run / "weights" / "init" / name)
            assert init["weights"] == "initial" and "accuracy" not in init and init["job"] == job
            assert init["tensors_sha256"] != meta["tensors_sha256"]  # training moved the weights


def test_evaluate_reproduces_every_recorded_accuracy(run: Path, data_dir: Path) -> None:
    """evaluate RUN_DIR scores every file again and gets what was recorded, to the last bit."""
    result = evaluate(data_dir, str(run))
    assert result.exit_code == 0, result.output
    assert result.stdout.count("reproduced") == 4, result.output
    assert "4 of 4 files scored exactly" in " ".join(result.output.split())

    rows = scored(evaluate(data_dir, str(run), "--format", "json"))
    assert len(rows) == 4 and {(r["scheme"], r["seed"]) for r in rows} == {(s, n) for s in SCHEMES for n in SEEDS}
    for row in rows:
        assert row["check"] == "reproduced"
        assert row["val_acc"] == row["recorded_val_acc"] and row["test_acc"] == row["recorded_test_acc"]
        assert row["val_acc"] == record(Path(row["file"]))["accuracy"]["val"]


def test_replaced_tensors_under_the_old_record_are_refused(run: Path, data_dir: Path, tmp_path: Path) -> None:
    """Other weights saved with a file's metadata: these are not the weights that were trained."""
    path = tmp_path / "rule-seed0.safetensors"
    with safe_open(run / "weights" / "rule-seed0.safetensors", "pt") as f:
        metadata = f.metadata()
    save_file(load_file(run / "weights" / "rule-seed1.safetensors"), path, metadata=metadata)
    assert_clean_error(evaluate(data_dir, str(path)), "These are not the weights that were trained",
                       "do not match the digest")


def test_replaced_tensors_with_a_forged_digest_fail_on_their_accuracy(copy: Path, data_dir: Path) -> None:
    """Seed 1's weights under seed 0's record with the digest made to fit: the accuracy gives them away."""
    meta = record(copy / "weights" / "rule-seed0.safetensors")
    forge(copy / "weights" / "rule-seed0.safetensors", load_file(copy / "weights" / "rule-seed1.safetensors"), meta)
    result = evaluate(data_dir, str(copy))
    assert_clean_error(result, "These are not the weights that were trained", "recorded val")
    assert_names(result, "weights/rule-seed0.safetensors:recordedval")
    assert "DIFFERENT" in result.stdout and result.stdout.count("reproduced") == 3, result.output
    assert "3 of 4 files scored exactly" in " ".join(result.stdout.split())


def test_swapped_files_are_named(copy: Path, data_dir: Path) -> None:
    """rule-seed0 and rule-seed1 exchanged in a run folder: files were swapped or renamed."""
    weights = copy / "weights"
    os.rename(weights / "rule-seed0.safetensors", weights / "tmp.safetensors")
    os.rename(weights / "rule-seed1.safetensors", weights / "rule-seed0.safetensors")
    os.rename(weights / "tmp.safetensors", weights / "rule-seed1.safetensors")
    assert_clean_error(evaluate(data_dir, str(copy)), "These are not the weights that were trained",
                       "swapped or renamed")


def test_a_file_that_is_not_weights_is_a_usage_error(data_dir: Path, tmp_path: Path) -> None:
    """A text file named .safetensors, or a .txt: exit 2, not a weights file."""
    fake = tmp_path / "x.safetensors"
    fake.write_text("These are my notes about the run, not weights.\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("notes\n")
    for path in (fake, notes):
        result = evaluate(data_dir, str(path))
        assert_clean_error(result, "is not a weights file", code=2)
        assert_names(result, str(path))


def test_truncated_or_corrupted_files_say_so(run: Path, data_dir: Path, tmp_path: Path) -> None:
    """Half a file, or a header with bytes overwritten: truncated or corrupted, copy it again."""
    whole = (run / "weights" / "rule-seed0.safetensors").read_bytes()
    half = tmp_path / "half.safetensors"
    half.write_bytes(whole[:len(whole) // 2])
    assert_clean_error(evaluate(data_dir, str(half)), "truncated or corrupted")

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(whole[:9] + b"!!!!" + whole[13:])  # just after the header's opening brace
    assert_clean_error(evaluate(data_dir, str(broken)), "truncated or corrupted", "not valid JSON")


def test_plain_state_dicts_with_the_lessons_names_score_as_trained(run: Path, data_dir: Path,
                                                                    tmp_path: Path) -> None:
    """torch.save(model.state_dict()) with fc1..fc3 keys, alone or in a training checkpoint, scores exactly
    what its run recorded (validation and test images do not depend on --train-samples)."""
    source = run / "weights" / "rule-seed0.safetensors"
    accuracy = record(source)["accuracy"]
    state = lesson_names(load_file(source))
    plain, checkpointed = tmp_path / "x.pt", tmp_path / "ckpt.pth"
    torch.save(state, plain)
    torch.save({"model_state_dict": state, "epoch": 3}, checkpointed)
    for path in (plain, checkpointed):
        (row,) = scored(evaluate(data_dir, str(path), "--split-seed", "0", "--format", "json"))
        assert row["recorded_val_acc"] is None and row["check"] == "no record (a plain state dict)"
        assert (row["val_acc"], row["test_acc"]) == (accuracy["val"], accuracy["test"])


def test_state_dict_key_and_shape_errors_name_the_layer(run: Path, data_dir: Path, tmp_path: Path) -> None:
    """A missing tensor, an unknown key, a layer too many, a wrong shape: each named."""
    state = load_file(run / "weights" / "rule-seed0.safetensors")
    good = tmp_path / "good.pt"
    torch.save(state, good)

    missing = tmp_path / "missing.pt"
    torch.save({k: v for k, v in state.items() if k != "layers.2.bias"}, missing)
    assert_clean_error(evaluate(data_dir, str(missing)), "is missing layers.2.bias")

    extra = tmp_path / "extra.pt"
    torch.save(state | {"extra.weight": torch.zeros(3)}, extra)
    assert_clean_error(evaluate(data_dir, str(extra)), "unexpected key 'extra.weight'")

    assert_clean_error(evaluate(data_dir, str(good), "--hidden", "256"), "holds 3 layers", "unexpected layers")
    assert_clean_error(evaluate(data_dir, str(good), "--hidden", "64,128"), "layers.0.weight", "[64, 784]",
                       "[256, 784]")


def test_a_pickle_that_would_run_code_is_refused_unrun(data_dir: Path, tmp_path: Path) -> None:
    """A .pt whose unpickling would run a shell command: refused, and the command never ran."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {shlex.quote(str(marker))}",)

    zipped, bare = tmp_path / "evil.pt", tmp_path / "evil.pth"
    torch.save({"layers.0.weight": Payload()}, zipped)  # torch.save's zip archive
    bare.write_bytes(pickle.dumps({"layers.0.weight": Payload()}, protocol=2))  # a bare pickle
    for path in (zipped, bare):
        assert_clean_error(evaluate(data_dir, str(path)), "refused", "nothing in it was run")
        assert not marker.exists()

    torch.load(zipped, weights_only=False)  # the payload is real: an unguarded load runs it
    assert marker.exists()


def test_weights_trained_on_other_data_are_refused(run: Path, data_dir: Path, tmp_path: Path) -> None:
    """A record whose data files' SHA-256 differ from FashionMNIST's: trained on other data."""
    state = load_file(run / "weights" / "rule-seed0.safetensors")
    meta = record(run / "weights" / "rule-seed0.safetensors")
    meta["data"]["files_sha256"]["train-images-idx3-ubyte"] = "0" * 64
    path = tmp_path / "rule-seed0.safetensors"
    forge(path, state, meta)
    assert_clean_error(evaluate(data_dir, str(path)), "trained on other data")


def test_pretrained_is_keyed_by_content(run: Path, data_dir: Path, tmp_path: Path) -> None:
    """pretrained:FILE names the same scheme for the same weights anywhere, another for other weights; a
    missing file is refused before any training."""
    original = run / "weights" / "rule-seed0.safetensors"
    moved = Path(shutil.copy(original, tmp_path / "elsewhere.safetensors"))
    key = initializers.get(f"pretrained:{original}").name
    assert initializers.get(f"pretrained:{moved}").name == key
    assert initializers.get(f"pretrained:{run / 'weights' / 'rule-seed1.safetensors'}").name != key

    out = tmp_path / "out"
    result = runner.invoke(app, ["compare", f"pretrained:{tmp_path / 'missing.safetensors'}", "--epochs", "1",
                                 "--out", str(out), "--data-dir", str(data_dir), "--quiet"])
    assert_clean_error(result, "does not exist", code=2)
    assert_names(result, "missing.safetensorsdoesnotexist")
    assert not out.exists() and "Training" not in result.output
