"""Reusing trained networks, as a user meets it, on real data: --classes, pretrained:FILE loaded bit for bit,
inspect saying where each layer came from, freezing, and the transfer experiment end to end. A few small runs
are trained once for the module; every other case reads their files or is refused before any work."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from scipy.stats import t
from typer.testing import CliRunner

from initbench import config, data
from initbench.cli import app
from initbench.data import Splits
from initbench.jobs import Job
from initbench.settings import DataSettings, TrainSettings
from initbench.training import streams

runner = CliRunner()
SANDAL, SHIRT = 5, 6
TRANSFER_SMALL = ("--seeds", "2", "--epochs", "3", "--train-samples", "100", "--batch-size", "20",
                  "--unfreeze-after", "1", "--scratch", "rule,default", "--quiet")
STRATEGIES = ("pretrained, 2 layers frozen", "pretrained, frozen 1 epoch", "pretrained, fine-tuned")


def invoke(*args: str):
    return runner.invoke(app, list(args))


def assert_clean_error(result, *fragments: str, code: int = 1) -> None:
    """One paragraph, no traceback; exit status 2 for what was typed, 1 for work that failed."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.output.count("Error:") == 1, result.output
    assert "\n\n" not in result.output.strip(), result.output
    for fragment in fragments:
        assert fragment in " ".join(result.output.split()), result.output


def same_layers(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], *layers: int) -> bool:
    """Whether the weight and bias of every one of ``layers`` are equal in ``a`` and ``b``, bit for bit."""
    return all(torch.equal(a[f"layers.{i}.{p}"], b[f"layers.{i}.{p}"]) for i in layers for p in ("weight", "bias"))


@pytest.fixture(scope="module")
def source(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained network to start from: rule, seed 0, one epoch on 2,000 images of all 10 classes."""
    out = tmp_path_factory.mktemp("source") / "run"
    result = invoke("compare", "rule", "--seeds", "1", "--epochs", "1", "--train-samples", "2000", "--quiet",
                    "--out", str(out), "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    return out / "weights" / "rule-seed0.safetensors"


@pytest.fixture(scope="module")
def frozen_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """compare rule default --freeze 2 --save-init: two schemes, one seed, one epoch on 500 images."""
    out = tmp_path_factory.mktemp("frozen") / "run"
    result = invoke("compare", "rule", "default", "--freeze", "2", "--save-init", "--seeds", "1", "--epochs", "1",
                    "--train-samples", "500", "--quiet", "--out", str(out), "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def transferred(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A small transfer run: sources trained here (TMP/t-source), task B sandal vs shirt (TMP/t)."""
    out = tmp_path_factory.mktemp("transfer") / "t"
    result = invoke("transfer", *TRANSFER_SMALL, "--source-epochs", "1", "--out", str(out),
                    "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    return out, result


# --- --classes


def test_classes_keep_only_their_images_renumbered_in_order(data_dir: Path, small: Splits) -> None:
    """--classes 5,6: sandals become label 0 and shirts label 1 everywhere, the same images as before; about
    2,400 validation images and all 2,000 test images of the two classes (FashionMNIST has 1,000 per class)."""
    two = data.load(data_dir, DataSettings(classes=(SANDAL, SHIRT)))
    for labels in (two.y_train, two.y_val, two.y_test):
        assert set(labels.tolist()) == {0, 1}
    assert len(two.y_test) == 2000 and abs(len(two.y_val) - 2400) < 150
    assert len(two.y_train) + len(two.y_val) == 12_000  # 6,000 training-file images per class
    for x, y, x_all, y_all in ((two.x_val, two.y_val, small.x_val, small.y_val),
                               (two.x_test, two.y_test, small.x_test, small.y_test)):
        assert torch.equal(x[y == 0], x_all[y_all == SANDAL])  # the same sandals, in the same order
        assert torch.equal(x[y == 1], x_all[y_all == SHIRT])
    first_sandal = small.x_test[small.y_test == SANDAL][0]
    assert torch.equal(two.x_test[two.y_test == 0][0], first_sandal)


def test_class_names_are_accepted_in_any_case() -> None:
    """Classes may be named as FashionMNIST names them, in any case, with or without hyphens."""
    assert config.resolve(options={"classes": "Sandal,SHIRT"}).train.data.classes == (SANDAL, SHIRT)
    assert config.resolve(options={"classes": "t-shirt,ankle boot"}).train.data.classes == (0, 9)
    assert config.resolve(options={"classes": "6,5"}).train.data.classes == (SHIRT, SANDAL)  # the order given


def test_unknown_class_name_lists_the_valid_classes(data_dir: Path, tmp_path: Path) -> None:
    result = invoke("compare", "--classes", "sandal,hat", "--data-dir", str(data_dir), "--out", str(tmp_path / "o"))
    assert_clean_error(result, "'hat' is not one of FashionMNIST's classes", "0 t-shirt/top", "5 sandal",
                       "9 ankle boot", code=2)
    assert not (tmp_path / "o").exists()


def test_a_single_class_is_refused(data_dir: Path, tmp_path: Path) -> None:
    result = invoke("compare", "--classes", "sandal", "--data-dir", str(data_dir), "--out", str(tmp_path / "o"))
    assert_clean_error(result, "--classes", "at least two different classes", code=2)


def test_train_samples_beyond_the_classes_images_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    """5,000 of sandal and shirt's 9,527 training images load; 10,000 is an error that names the classes and
    how many images they have, and leaves no run folder."""
    assert len(data.load(data_dir, DataSettings(train_samples=5000, classes=(SANDAL, SHIRT))).y_train) == 5000
    out = tmp_path / "o"
    result = invoke("compare", "rule", "--train-samples", "10000", "--classes", "5,6", "--epochs", "1",
                    "--data-dir", str(data_dir), "--out", str(out))
    assert_clean_error(result, "--train-samples is 10,000", "only 9,527 images", "5 sandal, 6 shirt", code=1)
    assert not out.exists()


# --- pretrained:FILE


def test_pretrained_starts_as_the_file_bit_for_bit(source: Path, small: Splits) -> None:
    """Every layer of a pretrained:FILE model is the file's tensor, and each says it was loaded from FILE."""
    file = load_file(source)
    model, sources = streams.start(Job(f"pretrained:{source}", 3, TrainSettings()), small.x_train)
    for i, layer in enumerate(model.layers):
        assert torch.equal(layer.weight, file[f"layers.{i}.weight"])
        assert torch.equal(layer.bias, file[f"layers.{i}.bias"])
    assert sources == [f"loaded from {source}"] * 3


def test_pretrained_for_other_classes_gets_a_new_output_layer(source: Path, small: Splits) -> None:
    """For sandal vs shirt the hidden layers are the file's and the output layer is a new [2, 128] one,
    initialized by --head-init (PyTorch's default unless given)."""
    file = load_file(source)
    for head_init in ("default", "xavier_normal"):
        settings = TrainSettings.of(classes=(SANDAL, SHIRT), head_init=head_init)
        model, sources = streams.start(Job(f"pretrained:{source}", 3, settings), small.x_train)
        for i in (0, 1):
            assert torch.equal(model.layers[i].weight, file[f"layers.{i}.weight"])
            assert torch.equal(model.layers[i].bias, file[f"layers.{i}.bias"])
        assert tuple(model.layers[2].weight.shape) == (2, 128) and tuple(model.layers[2].bias.shape) == (2,)
        assert sources[:2] == [f"loaded from {source}"] * 2
        assert sources[2].startswith(f"initialized by {head_init}"), sources[2]


def test_nothing_reinitializes_loaded_layers(source: Path, data_dir: Path, tmp_path: Path) -> None:
    """compare pretrained:FILE --save-init --classes 5,6: the initial weights it trained from hold the file's
    hidden layers bit for bit, a new 2-class output layer, and training then moved them."""
    out = tmp_path / "p"
    result = invoke("compare", f"pretrained:{source}", "--save-init", "--classes", "5,6", "--train-samples", "300",
                    "--epochs", "1", "--quiet", "--out", str(out), "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    (init_path,) = (out / "weights" / "init").glob("*.safetensors")
    init, file = load_file(init_path), load_file(source)
    assert same_layers(init, file, 0, 1)
    assert tuple(init["layers.2.weight"].shape) == (2, 128)
    final = load_file(out / "weights" / init_path.name)
    assert not torch.equal(final["layers.0.weight"], file["layers.0.weight"])


def test_pretrained_with_other_hidden_sizes_names_the_layer_and_shapes(source: Path, data_dir: Path,
                                                                       tmp_path: Path) -> None:
    out = tmp_path / "o"
    result = invoke("compare", f"pretrained:{source}", "--hidden", "64,128", "--train-samples", "300", "--epochs",
                    "1", "--out", str(out), "--data-dir", str(data_dir))
    assert_clean_error(result, "layers.0.weight", "[64, 784]", "[256, 784]", code=1)
    assert not out.exists()


def test_head_init_must_initialize_one_layer(data_dir: Path, tmp_path: Path) -> None:
    result = invoke("compare", "--head-init", "lsuv", "--data-dir", str(data_dir), "--out", str(tmp_path / "o"))
    assert_clean_error(result, "--head-init", "lsuv initializes whole models", code=2)


def test_inspect_says_where_each_layer_came_from(source: Path, data_dir: Path, tmp_path: Path) -> None:
    """inspect pretrained:FILE --classes sandal,shirt: "Layers 1-2: loaded from FILE", "Layer 3: initialized by
    default", and inspect.csv's source column says the same per layer."""
    out = tmp_path / "inspect"
    result = invoke("inspect", f"pretrained:{source}", "--classes", "sandal,shirt", "--out", str(out),
                    "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    squeezed = "".join(result.output.split())  # a long path may be broken across lines anywhere
    assert f"Layers1-2:loadedfrom{source}".replace(" ", "") in squeezed, result.output
    assert "Layer3:initializedbydefault" in squeezed, result.output
    frame = pd.read_csv(out / "inspect.csv")
    assert "source" in frame.columns
    assert list(frame["source"])[:2] == [f"loaded from {source}"] * 2
    assert frame["source"].iloc[2].startswith("initialized by default")


# --- freezing


@pytest.mark.parametrize(("args", "fragment"), [
    (("--freeze", "3"), "would freeze every layer"),
    (("--unfreeze-after", "1"), "--unfreeze-after needs frozen layers"),
    (("--freeze", "1", "--unfreeze-after", "2", "--epochs", "2"), "--unfreeze-after 2 is not before the last epoch"),
    (("--unfreeze-lr", "1e-4"), "--unfreeze-lr sets the learning rate of layers unfrozen by --unfreeze-after"),
])
def test_freezing_options_that_cannot_work_are_refused(args: tuple[str, ...], fragment: str, data_dir: Path,
                                                       tmp_path: Path) -> None:
    result = invoke("compare", *args, "--data-dir", str(data_dir), "--out", str(tmp_path / "o"))
    assert_clean_error(result, fragment, code=2)
    assert not (tmp_path / "o").exists()


def test_frozen_layers_end_as_they_started(frozen_run: Path) -> None:
    """--freeze 2: every model's final layers 1 and 2 are its initial ones bit for bit; the output layer trained."""
    finals = sorted((frozen_run / "weights").glob("*.safetensors"))
    assert [p.name for p in finals] == ["default-seed0.safetensors", "rule-seed0.safetensors"]
    for path in finals:
        final, init = load_file(path), load_file(frozen_run / "weights" / "init" / path.name)
        assert same_layers(final, init, 0, 1), path.name
        assert not torch.equal(final["layers.2.weight"], init["layers.2.weight"]), path.name


# --- the transfer experiment


def test_transfer_trains_its_sources_as_a_compare_run(transferred) -> None:
    """TMP/t-source is a complete compare run of the default scheme, one network per seed, on the 8 other
    classes than sandal and shirt."""
    out, _ = transferred
    sources = out.with_name(out.name + "-source")
    for name in ("run.json", "runs.csv", "accuracy.csv", "losses.csv", "config.toml", "loss_curves.png"):
        assert (sources / name).is_file(), name
    assert sorted(p.name for p in (sources / "weights").glob("*.safetensors")) == [
        "default-seed0.safetensors", "default-seed1.safetensors"]
    run_config = json.loads((sources / "run.json").read_text())["config"]
    assert run_config["classes"] == [0, 1, 2, 3, 4, 7, 8, 9]
    assert run_config["schemes"] == ["default"] and run_config["epochs"] == 1
    assert set(pd.read_csv(sources / "runs.csv")["seed"]) == {0, 1}


def test_transfer_writes_its_files_and_table(transferred) -> None:
    """TMP/t holds what compare writes, plus transfer.csv and transfer.png, and a weights file per start and seed;
    the table names task B and each start's verdict."""
    out, result = transferred
    for name in ("accuracy.csv", "runs.csv", "losses.csv", "run.json", "config.toml", "transfer.csv",
                 "transfer.png", "loss_curves.png", "loss_full.png", "report.html"):
        assert (out / name).is_file(), name
    assert (out / "transfer.png").read_bytes().startswith(b"\x89PNG")
    page = (out / "report.html").read_text()  # its table, its three pictures, and the transfer's own settings
    assert "Verdict" in page and page.count("data:image/png;base64,") == 3
    assert "initbench transfer --config transfer.toml" in page and "source_epochs = 1" in page
    starts = ("rule", "default", "pretrained_2_layers_frozen", "pretrained_frozen_1_epoch", "pretrained_fine-tuned")
    assert sorted(p.name for p in (out / "weights").glob("*.safetensors")) == sorted(
        f"{start}-seed{seed}.safetensors" for start in starts for seed in (0, 1))
    stdout = " ".join(result.stdout.split())
    assert "sandal vs shirt" in stdout and "Verdict" in stdout
    assert "sources trained on the other 8 classes" in stdout


def test_transfer_starts_from_the_sources(transferred) -> None:
    """The frozen start keeps each seed's source layers to the end; frozen-then-unfrozen and fine-tuned move them."""
    out, _ = transferred
    for seed in (0, 1):
        source = load_file(out.with_name(out.name + "-source") / "weights" / f"default-seed{seed}.safetensors")
        frozen = load_file(out / "weights" / f"pretrained_2_layers_frozen-seed{seed}.safetensors")
        assert same_layers(frozen, source, 0, 1)
        assert tuple(frozen["layers.2.weight"].shape) == (2, 128)
        for moved in ("pretrained_frozen_1_epoch", "pretrained_fine-tuned"):
            trained = load_file(out / "weights" / f"{moved}-seed{seed}.safetensors")
            assert not torch.equal(trained["layers.0.weight"], source["layers.0.weight"]), moved


def test_transfer_csv_is_paired_against_the_best_scratch_scheme(transferred) -> None:
    """transfer.csv: every start, against the scratch scheme with the best mean validation accuracy; each
    difference is the mean over seeds of the paired val_acc differences, with a 95% t-interval."""
    out, _ = transferred
    comparison = pd.read_csv(out / "transfer.csv").set_index("scheme")
    assert set(comparison.index) == {"rule", "default", *STRATEGIES}
    val = pd.read_csv(out / "runs.csv").pivot(index="seed", columns="scheme", values="val_acc")
    baseline = val[["rule", "default"]].mean().idxmax()
    assert set(comparison["baseline"]) == {baseline}
    assert comparison.loc[baseline, "verdict"] == "the baseline"
    half_width = t.ppf(0.975, 1) / math.sqrt(2)
    for name, row in comparison.iterrows():
        diff = val[name] - val[baseline]
        assert row["seeds"] == 2
        assert row["val_acc_mean"] == pytest.approx(val[name].mean())
        # the CSV files keep 6 significant digits: accuracies to about 1e-6
        assert row["diff_mean"] == pytest.approx(diff.mean(), abs=2e-6)
        assert row["diff_low"] == pytest.approx(diff.mean() - half_width * diff.std(), abs=3e-5)
        assert row["diff_high"] == pytest.approx(diff.mean() + half_width * diff.std(), abs=3e-5)
    assert comparison["val_acc_mean"].is_monotonic_decreasing  # best first


def test_transfer_from_a_source_run_trains_no_sources_and_repeats_the_numbers(transferred, data_dir: Path) -> None:
    """transfer --source TMP/t-source: no new sources, and every start scores what it scored when the sources
    were trained in the same command (the same source weights, the same batches)."""
    out, _ = transferred
    again = out.with_name("t2")
    result = invoke("transfer", *TRANSFER_SMALL, "--source", str(out.with_name(out.name + "-source")),
                    "--out", str(again), "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert not again.with_name("t2-source").exists()
    first = pd.read_csv(out / "runs.csv").set_index(["scheme", "seed"])["val_acc"]
    second = pd.read_csv(again / "runs.csv").set_index(["scheme", "seed"])["val_acc"]
    assert set(first.index) == set(second.index)
    for strategy in STRATEGIES:
        for seed in (0, 1):
            assert second[(strategy, seed)] == first[(strategy, seed)], strategy
    pd.testing.assert_series_equal(first.sort_index(), second.sort_index())


def test_evaluate_reproduces_a_transfer_run(transferred, data_dir: Path) -> None:
    """initbench evaluate TMP/t scores every start's weights again and gets what was recorded."""
    out, _ = transferred
    result = invoke("evaluate", str(out), "--format", "json", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 10 and {row["check"] for row in rows} == {"reproduced"}


def test_transfer_refuses_task_a_sharing_task_b_classes(data_dir: Path, tmp_path: Path) -> None:
    result = invoke("transfer", "--classes", "5,6", "--task-a", "0,5", "--data-dir", str(data_dir),
                    "--out", str(tmp_path / "o"))
    assert_clean_error(result, "share classes", code=2)
    assert not (tmp_path / "o").exists() and not (tmp_path / "o-source").exists()


def test_transfer_refuses_freezing_the_output_layer(data_dir: Path, tmp_path: Path) -> None:
    result = invoke("transfer", "--freeze", "3", "--data-dir", str(data_dir), "--out", str(tmp_path / "o"))
    assert_clean_error(result, "--freeze 3", "2 hidden layers", "Freeze at most that many", code=2)


def test_transfer_refuses_a_source_run_of_several_schemes(frozen_run: Path, data_dir: Path, tmp_path: Path) -> None:
    """A --source run must have one scheme (a network per seed): one of two is refused, naming them."""
    out = tmp_path / "o"
    result = invoke("transfer", *TRANSFER_SMALL, "--seeds", "1", "--source", str(frozen_run), "--out", str(out),
                    "--data-dir", str(data_dir))
    assert_clean_error(result, "trained 2 schemes (default, rule)", "a source run must have one", code=2)
    assert not out.exists()


def test_transfer_refuses_a_source_run_without_the_seeds(transferred, data_dir: Path, tmp_path: Path) -> None:
    """A --source run of two seeds cannot serve three: the message names the missing file."""
    out, _ = transferred
    result = invoke("transfer", *TRANSFER_SMALL, "--seeds", "3", "--source", str(out.with_name(out.name + "-source")),
                    "--out", str(tmp_path / "o"), "--data-dir", str(data_dir))
    assert_clean_error(result, "has no weights for seeds of this run", code=2)
    assert "weights/default-seed2.safetensors" in "".join(result.output.split())  # a path may wrap anywhere
    assert not (tmp_path / "o").exists()


def test_transfer_refuses_a_source_run_that_saw_task_b(source: Path, data_dir: Path, tmp_path: Path) -> None:
    """A --source run trained on all 10 classes has seen sandals and shirts: it is refused as task A sharing task
    B's classes is, rather than reported as "sources trained on the other 8 classes"."""
    out = tmp_path / "o"
    result = invoke("transfer", *TRANSFER_SMALL, "--seeds", "1", "--source", str(source.parent.parent),
                    "--out", str(out), "--data-dir", str(data_dir))
    assert_clean_error(result, "share classes", code=2)
    assert not out.exists()


def test_a_transfer_runs_strategies_are_one_version_each(transferred) -> None:
    """Each seed's pretrained start comes from its own file (another canonical name per seed),
    yet a strategy's rows are one version: all shown, none named apart, and a diff of the run
    with itself pairs every seed of every start."""
    from initbench.analysis import diff
    from initbench.storage import store

    out, _ = transferred
    with store.open_store(out, write=False) as st:
        rows = st.frame()
        shown, older = st.versions()
        side_by_side = st.versions(all_versions=True)[0]
    assert len(shown) == len(rows) and not older
    assert sorted(side_by_side["name"]) == sorted(rows["name"])  # no version tags
    paired = diff.diff(out, out)
    assert {r["scheme"]: (r["seeds"], r["verdict"]) for r in paired.rows} == {
        name: (2, "unchanged") for name in ("rule", "default", *STRATEGIES)}
