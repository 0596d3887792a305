"""The residual MLP (resmlp) and the residual schemes (fixup, skipinit): the network's
layers and keys, the schemes' starts, their refusal of a network without residual
branches, and the commands around a run (weights, evaluate, inspect, pretrained, freeze)."""

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import initbench as ib
from initbench import models
from initbench.cli import app
from initbench.jobs import Job
from initbench.settings import TrainSettings
from initbench.training.streams import start

runner = CliRunner()
RESMLP = TrainSettings.of(network="resmlp", hidden=(8, 4, 8))  # width 8; blocks of inner width 8, 4, 8


def test_resmlp_is_a_chain_of_linear_layers_keyed_as_the_mlps() -> None:
    model = models.build(RESMLP)
    assert model.sizes == (784, 8, 8, 8, 4, 8, 8, 8, 10)  # input, (W1, W2) per block, output
    assert len(model.layers) == models.depth(RESMLP.network) == 8
    assert list(model.state_dict()) == [f"layers.{i}.{p}" for i in range(8) for p in ("weight", "bias")]
    assert [w.skip for w in model.wiring] == [None, None, 1, None, 3, None, 5, None]


@pytest.mark.parametrize("scheme", ["fixup", "skipinit"])
def test_residual_schemes_start_every_block_as_the_identity(scheme: str) -> None:
    x = torch.rand(64, 784)
    model, sources = start(Job(scheme, 0, RESMLP), x)
    branch_ends = [2, 4, 6]
    assert all(not model.layers[i].weight.any() for i in branch_ends)
    assert all("residual branch's last layer" in sources[i] for i in branch_ends)
    first = model.activation(model.layers[0](x))
    assert torch.equal(model(x), model.layers[-1](first))  # each block adds exactly 0 to the stream
    head = model.layers[-1].weight
    if scheme == "fixup":  # W1 of each block: He x L^(-1/2), L = 3 blocks; the output layer zero
        assert not head.any()
        w1 = torch.cat([model.layers[i].weight.flatten() for i in (1, 3, 5)])
        assert w1.std().item() == pytest.approx(math.sqrt(2 / 8) / math.sqrt(3), rel=0.25)
    else:
        assert head.std().item() == pytest.approx(math.sqrt(2 / 8), rel=0.25)


def test_residual_schemes_refuse_a_network_without_blocks(data_dir: Path, tmp_path: Path) -> None:
    # Refused before any model trains, even with the sequential engine and another scheme first.
    result = runner.invoke(app, ["compare", "default", "skipinit", "--engine", "sequential", "--epochs", "1",
                                 "--train-samples", "200", "--seeds", "1",
                                 "--data-dir", str(data_dir), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "--network resmlp" in " ".join(result.output.split())
    assert not (tmp_path / "run").exists()


def test_resmlp_weights_evaluate_inspect_and_pretrained(data_dir: Path, tmp_path: Path) -> None:
    """A batched resmlp run's weights are scored again to the same numbers, inspected, and
    loaded as a pretrained start with the input layer and first block frozen."""
    common = ["--network", "resmlp", "--hidden", "16x2", "--epochs", "1", "--train-samples", "300", "--seeds", "1",
              "--data-dir", str(data_dir), "--quiet"]
    run = tmp_path / "run"
    result = runner.invoke(app, ["compare", "fixup", "skipinit", *common, "--track-stats", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "run.json").read_text())["config"]["engine"] in ("auto", "batched")
    weights = sorted((run / "weights").glob("*.safetensors"))
    result = runner.invoke(app, ["evaluate", *map(str, weights), "--data-dir", str(data_dir)])
    assert result.exit_code == 0 and result.output.count("reproduced") == 2, result.output

    inspection = ib.inspect(["fixup", "default"], network="resmlp", hidden="16x2", data_dir=data_dir,
                            out=tmp_path / "inspect", progress=False)
    assert len(inspection.table) == 2 * 6  # each scheme's six layers

    fixup = next(w for w in weights if w.name.startswith("fixup"))
    result = runner.invoke(app, ["compare", f"pretrained:{fixup}", *common, "--freeze", "3", "--save-init",
                                 "--out", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    start, final = load_file(fixup), load_file(next((tmp_path / "again" / "weights").glob("*seed0.safetensors")))
    assert [torch.equal(start[f"layers.{i}.weight"], final[f"layers.{i}.weight"]) for i in range(6)] == [
        True, True, True, False, False, False]  # the input layer and the first block frozen
