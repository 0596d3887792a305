"""The cnn network end to end on real FashionMNIST: schemes on convolution kernels by torch's
fan rules, the engine chosen by the network (and said), weights files evaluated back, layer
statistics, LSUV, users' schemes' checks, and pretrained convolutions reused on another task."""

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from typer.testing import CliRunner

from initbench import config, data, initializers, models
from initbench.cli import app
from initbench.data import Splits
from initbench.errors import UsageError
from initbench.initializers.registry import fan_in, fan_out
from initbench.jobs import Job
from initbench.models.cnn import CNN
from initbench.settings import TrainSettings
from initbench.training import streams

runner = CliRunner()
SMALL = ("--model", "cnn",  # --model: the alias of --network
          "--epochs", "1", "--train-samples", "1000", "--seeds", "1")


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One small cnn run (kaiming_normal, lsuv) on three classes, its weights and statistics kept."""
    out = tmp_path_factory.mktemp("cnn") / "run"
    result = invoke("compare", "kaiming_normal", "lsuv", *SMALL, "--classes", "0,1,2", "--track-stats", "--save-init",
                    "--data-dir", str(data_dir), "--out", str(out))
    assert result.exit_code == 0, result.output
    return out, result.output


def test_every_scheme_fills_a_kernel_by_torch_fan_rules() -> None:
    kernel = torch.empty(32, 16, 5, 5)
    assert (fan_in(kernel), fan_out(kernel)) == nn.init._calculate_fan_in_and_fan_out(kernel)
    torch.manual_seed(7)
    torch_default = nn.Conv2d(16, 32, 5)
    ours = nn.Conv2d(16, 32, 5)
    initializers.get("default").init_layer(ours, torch.Generator().manual_seed(7))
    assert torch.equal(ours.weight, torch_default.weight) and torch.equal(ours.bias, torch_default.bias)
    inputs = 16 * 25
    for name, std in {"kaiming_normal": math.sqrt(2 / inputs), "lecun_uniform": math.sqrt(1 / inputs),
                      "xavier_normal": math.sqrt(2 / (inputs + 32 * 25)), "rule": 1 / math.sqrt(3 * inputs)}.items():
        initializers.get(name).init_layer(ours, torch.Generator().manual_seed(0), bias="default")
        assert ours.weight.std().item() == pytest.approx(std, rel=0.05), name
        assert ours.bias.abs().max() <= 1 / math.sqrt(inputs)
    initializers.get("orthogonal").init_layer(ours, torch.Generator().manual_seed(0))
    rows = ours.weight.flatten(1)
    assert torch.allclose(rows @ rows.T, torch.eye(32), atol=1e-5)
    with pytest.raises(UsageError, match="not a convolution's kernel"):
        initializers.get("sparse").init_layer(ours, torch.Generator())


def test_settings_a_cnn_cannot_take_are_refused_in_words() -> None:
    with pytest.raises(UsageError, match="'sparse' fills matrices .* cnn network's lowest layers are convolutions"):
        config.resolve(None, {"network": "cnn", "schemes": "default,sparse"})
    fashion = data.get("fashion-mnist")
    colour = data.Dataset("colour", "Colour", fashion.class_names, 3 * 32 * 32, 10, 10, {}, fashion.read)
    with pytest.raises(UsageError, match="square single-channel images .* 3,072 values"):
        models.square_images(colour)
    cnn = config.resolve(None, {"network": "cnn"})
    assert cnn.train.network.hidden == (128,) and models.depth(cnn.train.network) == 4
    assert cnn.placement.engine == "sequential"
    assert config.resolve(None, {}).placement.engine == "batched"  # the mlp's engine as before
    refused = invoke("compare", "default", *SMALL, "--engine", "batched")
    assert refused.exit_code == 2 and "--engine sequential" in " ".join(refused.output.split())


def test_square_images_of_any_side_pool_down() -> None:
    for side, pooled in ((28, 7), (8, 2)):
        model = CNN(side, (128,), "relu", 10)
        assert model.layers[2].in_features == 32 * pooled * pooled
        assert model(torch.rand(3, side * side)).shape == (3, 10)


def test_compare_picks_the_sequential_engine_says_so_and_evaluate_reproduces_it(run, data_dir: Path) -> None:
    out, output = run
    assert "cnn trains with the sequential engine (the batched engine is exact for mlp" in " ".join(output.split())
    state = load_file(out / "weights" / "kaiming_normal-seed0.safetensors")
    assert [tuple(state[f"layers.{i}.weight"].shape) for i in range(4)] == [
        (16, 1, 5, 5), (32, 16, 5, 5), (128, 32 * 7 * 7), (3, 128)]  # three classes
    result = invoke("evaluate", str(out), "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert "2 of 2 files scored exactly what was recorded in training" in " ".join(result.output.split())
    stats = (out / "layer_stats.csv").read_text().splitlines()
    assert [line.split(",")[4] for line in stats[1:5]] == ["16", "32", "128", "3"]  # units, epoch 0


def test_lsuv_gives_each_layer_of_a_cnn_unit_variance(small: Splits) -> None:
    settings = config.resolve(None, {"network": "cnn"}).train
    model, _ = streams.start(Job("lsuv", 0, settings), small.x_train)
    outputs = []
    for layer in model.layers:
        layer.register_forward_hook(lambda module, inputs, output: outputs.append(output))
    with torch.no_grad():
        model(small.x_train[:500])
    assert [round(out.var().item(), 1) for out in outputs] == pytest.approx([1.0] * 4, abs=0.11)


def test_a_users_scheme_that_leaves_a_kernel_unfilled_is_refused(tmp_path: Path, small: Splits) -> None:
    code = tmp_path / "mine.py"
    code.write_text("def lazy_(weight, bias, generator):\n    if weight.dim() == 2:\n        weight.zero_()\n"
                    "    bias.zero_()\n")
    settings = config.resolve(None, {"network": "cnn"}).train
    with pytest.raises(Exception, match=r"weight of layers.0 \(1 -> 16 channels, 5x5 kernel\) with NaN"):
        streams.start(Job(f"{code}:lazy_", 0, settings), small.x_train)


def test_pretrained_convolutions_start_another_task_frozen(run, data_dir: Path, tmp_path: Path) -> None:
    """transfer's start: a cnn of three classes loaded into a cnn for two, three layers frozen, a new head."""
    source = run[0] / "weights" / "kaiming_normal-seed0.safetensors"
    out = tmp_path / "b"
    result = invoke("compare", f"pretrained:{source}", *SMALL, "--classes", "sandal,shirt", "--freeze", "3",
                    "--data-dir", str(data_dir), "--out", str(out))
    assert result.exit_code == 0, result.output
    before, after = load_file(source), load_file(next((out / "weights").glob("*.safetensors")))
    assert all(torch.equal(before[f"layers.{i}.{p}"], after[f"layers.{i}.{p}"]) for i in range(3)
               for p in ("weight", "bias"))
    assert after["layers.3.weight"].shape == (2, 128)
    assert models.depth(TrainSettings.of(network="cnn", hidden=(128,)).network) == 4
