"""Defaults, config files and command-line options, and the errors for bad ones."""

import os
from pathlib import Path

import pytest

from initbench import config
from initbench.errors import InitbenchError
from initbench.settings import TrainSettings

from .conftest import ROOT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_lessons() -> None:
    c = config.resolve()
    assert c.schemes == ("zeros", "ones", "uniform", "rule", "normal", "default")
    assert c.train == TrainSettings.of(hidden=(256, 128), dropout=0.2, lr=0.001, batch_size=100, epochs=2)
    assert c.seeds == (0,) and len(c.jobs()) == 6


def test_options_override_the_file_which_overrides_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, 'schemes = ["rule", "zeros"]\nepochs = 5\nlr = 0.01\nseeds = [3, 9]\n')
    c = config.resolve(path, {"epochs": 1, "seeds": 2})
    assert c.train.optim.epochs == 1 and c.train.optim.lr == 0.01
    assert c.seeds == (0, 1) and c.schemes == ("rule", "zeros")
    assert [(j.scheme, j.seed) for j in c.jobs()] == [("rule", 0), ("zeros", 0), ("rule", 1), ("zeros", 1)]


@pytest.mark.parametrize("text,expected", [
    ("256,128", (256, 128)), ("256x10", (256,) * 10), ("512, 64x2", (512, 64, 64)), ([32], (32,)),
])
def test_hidden_sizes(text, expected) -> None:
    assert config.resolve(options={"hidden": text}).train.network.hidden == expected


def test_seed_list_from_the_command_line() -> None:
    assert config.resolve(options={"seeds": "0,7,42"}).seeds == (0, 7, 42)


@pytest.mark.parametrize("options,message", [
    ({"epochs": 0}, "Invalid --epochs: must be at least 1; got 0."),
    ({"epochs": -3}, "Invalid --epochs: must be at least 1"),
    ({"lr": 0.0}, "Invalid --lr: must be a number greater than 0"),
    ({"dropout": 1.0}, "Invalid --dropout"),
    ({"hidden": "256,abc"}, "Invalid --hidden"),
    ({"seeds": "1,1"}, "Invalid --seeds/--seed-list"),
    ({"schemes": ["rule", "rule"]}, "names a scheme twice"),
    ({"schemes": ["xavier"]}, "Unknown scheme 'xavier'"),
])
def test_bad_options_name_the_option(options, message) -> None:
    with pytest.raises(InitbenchError, match=message.replace("(", r"\(").replace(".", r"\.")):
        config.resolve(options=options)


def test_bad_file_key_names_the_key_and_the_closest_one(tmp_path: Path) -> None:
    path = write(tmp_path, "epoch = 3\n")
    with pytest.raises(InitbenchError, match=r"Unknown setting 'epoch' in .*run.toml\. Did you mean 'epochs'\?"):
        config.resolve(path)


def test_bad_file_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(InitbenchError, match=r"Invalid 'batch_size' in .*: must be a whole number; got '100'"):
        config.resolve(write(tmp_path, 'batch_size = "100"\n'))


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(InitbenchError, match="does not exist"):
        config.resolve(tmp_path / "nope.toml")
    with pytest.raises(InitbenchError, match="is not valid TOML"):
        config.resolve(write(tmp_path, "epochs = = 2\n"))
    with pytest.raises(InitbenchError, match="is not a regular file"):
        config.resolve(tmp_path)  # a folder
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    with pytest.raises(InitbenchError, match="is not a regular file"):
        config.resolve(fifo)  # would block forever if opened
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(InitbenchError, match="is not text"):
        config.resolve(binary)


def test_a_byte_order_mark_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes("\ufeffepochs = 3\n".encode("utf-8"))
    assert config.resolve(path).train.optim.epochs == 3


def test_seeds_must_fit_a_generator() -> None:
    with pytest.raises(InitbenchError, match=r"--split-seed: must be at most 9223372036854775807"):
        config.resolve(None, {"split_seed": 2**70})
    assert config.resolve(None, {"split_seed": 2**63 - 1}).train.data.split_seed == 2**63 - 1


@pytest.mark.parametrize("name", ["lesson.toml", "smoke.toml", "deep-relu.toml", "deep-tanh.toml"])
def test_shipped_configs_resolve(name: str) -> None:
    c = config.resolve(ROOT / "configs" / name)
    assert "rule" in c.schemes
    assert c.train.network.hidden == ((256,) * 10 if name.startswith("deep") else (256, 128))


def test_to_dict_round_trips_through_resolve() -> None:
    c = config.resolve(options={"hidden": "64x2", "seeds": 2, "out": "x"})
    assert config.resolve(options=c.to_dict()) == c


def test_the_dataset_decides_classes_and_training_images() -> None:
    """What a value may be against the dataset is checked with the run's dataset; every class
    in order is the default (no classes chosen: the same data and keys)."""
    with pytest.raises(InitbenchError, match=r"--train-samples 48,001 is more than the 48,000 images"):
        config.resolve(options={"train_samples": 48_001})
    with pytest.raises(InitbenchError, match=r"Invalid --dataset: must be one of fashion-mnist"):
        config.resolve(options={"dataset": "mnist"})
    with pytest.raises(InitbenchError, match=r"Invalid --network: must be one of mlp, cnn, resmlp"):
        config.resolve(options={"network": "convnet"})
    assert config.resolve(options={"classes": "0,1,2,3,4,5,6,7,8,9"}).train == TrainSettings()
    assert config.resolve(options={"classes": "sandal,shirt"}).train.data.classes == (5, 6)
