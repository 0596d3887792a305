"""The coordinate check (initbench coordcheck, issue 35): on the real data, under the standard
parametrization the output layer's change grows with width and under μP no layer's does; its
files, its picture and its refusals."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import initbench as ib
from initbench.cli import app

runner = CliRunner()


def test_sp_grows_the_output_layer_with_width_and_mup_grows_none(data_dir: Path, tmp_path: Path) -> None:
    found = ib.coordcheck("default", widths=(32, 64, 128, 256, 512), seeds=4, train_samples=2000,
                          data_dir=data_dir, out=tmp_path / "cc", progress=False)
    assert 3 in found.growing["sp"] and found.growing["mup"] == []
    coords = pd.read_csv(tmp_path / "cc" / "coords.csv")
    assert len(coords) == 2 * 5 * 4 * 3 * 3  # parametrizations x widths x seeds x steps x layers
    assert (coords[coords["step"] == 0]["change"] == 0).all()  # the start: nothing has moved yet
    # At the base width (64) μP is the standard parametrization, bit for bit.
    at_base = coords[coords["width"] == 64].pivot_table(index=["seed", "step", "layer"], columns="parametrization",
                                                         values="coord")
    assert (at_base["sp"] == at_base["mup"]).all()
    assert {"coordcheck_sp.png", "coordcheck_mup.png"} <= {p.name for p in (tmp_path / "cc").iterdir()}
    info = json.loads((tmp_path / "cc" / "coordcheck.json").read_text())
    assert info["config"]["widths"] == [32, 64, 128, 256, 512] and info["growing"] == found.growing
    reopened = ib.open(tmp_path / "cc")
    assert isinstance(reopened, ib.CoordCheck) and "no layer grows" in str(reopened)


def test_a_gpts_layers_grow_with_width_under_sp_and_none_under_mup(data_dir: Path, tmp_path: Path) -> None:
    """The transformer on Shakespeare: under sp every block's matrices, the head and the attention
    logits move more the wider the gpt is; under μP (q·k/d_head, zero query and readout, the
    rates by role) no layer does. The table names each layer's role and block."""
    found = ib.coordcheck("default", widths=(32, 64, 128, 256), seeds=3, dataset="shakespeare", network="gpt",
                          hidden="32x2", context=16, base_width=32, data_dir=data_dir, out=tmp_path / "cc",
                          progress=False)
    coords = pd.read_csv(tmp_path / "cc" / "coords.csv")
    roles = coords.drop_duplicates("layer").set_index("layer")["role"]
    assert len(roles) == 2 + 6 * 2 + 1 + 2 and roles[15] == "head" and roles[16] == "attention_logits"
    assert {3, 6, 8, 15, 16, 17} <= set(found.growing["sp"]) and found.growing["mup"] == []
    zero = coords[(coords["parametrization"] == "mup") & (coords["step"] == 0) & (coords["role"] == "head")]
    assert (zero["coord"] == 0).all()  # μP's readout starts at zero
    shown = str(found)
    assert "15 head" in shown and "16 attn logits 1" in shown and "Under mup, no layer grows" in shown


@pytest.mark.parametrize(("args", "words"), [
    (["--widths", "64"], "give two widths or more, rising"),
    (["--widths", "128,64"], "give two widths or more, rising"),
    (["--widths", "0,64"], "give two widths or more, rising"),
    (["--parametrization", "sp,muP"], "name each of sp, mup, depth-mup, completep at most once"),
    (["--coord-steps", "1"], "give 2 to 100 steps"),
    (["--network", "cnn"], "--parametrization mup is written for mlp, resmlp, gpt networks only"),
    # a gpt: a width below the base width's head count; a base width its heads do not split; a tied head
    (["--dataset", "shakespeare", "--network", "gpt", "--widths", "2,64"], "--heads 4 does not divide the width 2"),
    (["--dataset", "shakespeare", "--network", "gpt", "--base-width", "30"],
     "--base-width 30 is not split evenly by --heads 4"),
    (["--dataset", "shakespeare", "--network", "gpt", "--tied"], "--tied with μP"),
])
def test_bad_input_is_one_paragraph_and_exit_2(args: list[str], words: str, data_dir: Path) -> None:
    result = runner.invoke(app, ["coordcheck", "--data-dir", str(data_dir), *args])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert words in " ".join(result.output.split()), result.output


@pytest.mark.parametrize("network", ["mlp", "resmlp"])
def test_mup_agrees_with_the_mup_package(data_dir: Path, network: str) -> None:
    """The reference no one here wrote: the same MLPs (and residual MLPs of 2 blocks), initial weights and batch through the
    ``mup`` package's MuReadout, set_base_shapes, MuAdam and get_coord_data give each layer's
    coordinates (its output's mean absolute value) as initbench's coordinate check does, step by
    step, at every width, to a relative 1e-4 (the two differ by design only in where the output
    layer's factor sits: initbench scales its initial weights, Tensor Programs V's Table 3;
    MuReadout divides its input by the width ratio, with its weights scaled up to match, which
    rounds otherwise and differs in Adam's eps)."""
    import mup  # the test extra's: a missing reference fails, not skips
    from mup.coord_check import get_coord_data
    import torch
    from torch import nn

    from initbench import data
    from initbench.settings import DataSettings, TrainSettings
    from initbench.training import coordcheck, streams
    from initbench.jobs import Job

    splits = data.load(data_dir, DataSettings(train_samples=2000))
    batch = coordcheck.measured_batch(splits, TrainSettings())
    widths, base, steps = (64, 128, 256), 64, 3

    residual = network == "resmlp"
    inner = 4 if residual else 1  # hidden Linear layers: two blocks of two, or one

    class MuMLP(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(784, width), *(nn.Linear(width, width) for _ in range(inner)),
                                         mup.MuReadout(width, 10, readout_zero_init=False)])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.layers[0](x))
            if residual:  # blocks x + W2 relu(W1 x)
                for k in range(2):
                    x = x + self.layers[2 + 2 * k](torch.relu(self.layers[1 + 2 * k](x)))
            else:
                x = torch.relu(self.layers[1](x))
            return self.layers[-1](x)

    for width in widths:
        settings = TrainSettings.of(network=network, hidden=(width, width), parametrization="mup", dropout=0.0,
                                    base_width=base)
        ours = coordcheck.coordinates(settings, "default", [0], steps, splits, batch)

        def lazy() -> nn.Module:
            model = MuMLP(width)
            mup.set_base_shapes(model, MuMLP(base), delta=MuMLP(2 * base))
            started = streams.initial_model(Job("default", 0, settings), splits.x_train)
            with torch.no_grad():
                for mine, theirs in zip(model.layers, started.layers):
                    mine.weight.copy_(theirs.weight)
                    mine.bias.copy_(theirs.bias)
                model.layers[-1].weight.mul_(width / base)  # MuReadout divides its input by the width ratio
            return model

        found = get_coord_data({width: lazy}, [batch], optimizer="adam", lr=1e-3, nsteps=steps, cuda=False,
                                   nseeds=1, show_progress=False,
                                   filter_module_by_name=lambda name: name.startswith("layers."))
        assert len(ours) == steps * (inner + 2)
        for row in ours:
            theirs = found[(found["module"] == f"layers.{row['layer'] - 1}") & (found["t"] == row["step"] + 1)]
            assert float(theirs["l1"].iloc[0]) == pytest.approx(row["coord"], rel=1e-4), (width, row)


def test_a_gpts_mup_agrees_with_the_mup_package(data_dir: Path) -> None:
    """The transformer's μP against the reference: the same gpts (2 blocks, widths 32 to 128 over
    a base of 32), started from initbench's weights (query and readout at zero) and trained on
    the same Shakespeare windows by the ``mup`` package's MuReadout, set_base_shapes (from base
    and delta models), MuAdam (every role's rate: embeddings, norms and biases as vectors,
    the blocks' matrices by their width) and get_coord_data, give every layer's coordinates as
    initbench's check does, step by step, to a relative 1e-4. The attention is the model's:
    μP's q·k/d_head (times the base's sqrt(d_head)), mup's convention, checked here by value."""
    import mup
    from mup.coord_check import get_coord_data

    from initbench import data
    from initbench.jobs import Job
    from initbench.models.gpt import GPT
    from initbench.models.gpt_shape import Shape
    from initbench.settings import DataSettings, TrainSettings
    from initbench.training import coordcheck, streams

    splits = data.load(data_dir, DataSettings(dataset="shakespeare"))
    vocab, base, heads, context, steps = len(data.get("shakespeare").class_names), 32, 4, 16, 3

    def reference(width: int) -> GPT:
        model = GPT(Shape(vocab, context, width, 2, heads, base_width=base))
        model.head = mup.MuReadout(width, vocab, bias=False, readout_zero_init=True)
        return model

    for width in (32, 64, 128):
        settings = TrainSettings.of(dataset="shakespeare", network="gpt", hidden=(width, width), heads=heads,
                                    context=context, dropout=0.0, parametrization="mup", base_width=base)
        x, y = batch = coordcheck.measured_batch(splits, settings)
        ours = coordcheck.coordinates(settings, "default", [0], steps, splits, batch)
        model = reference(width)
        assert model.shape.attention_scale == pytest.approx((base / heads) ** 0.5 / (width / heads), rel=1e-15)

        def lazy() -> GPT:
            mup.set_base_shapes(model, reference(base), delta=reference(2 * base))
            model.load_state_dict(streams.initial_model(Job("default", 0, settings), splits.x_train).state_dict())
            return model

        found = get_coord_data({width: lazy}, [(x, y.reshape(-1))], optimizer="adam", lr=settings.optim.lr,
                               nsteps=steps, cuda=False, nseeds=1, show_progress=False, flatten_output=True)
        names = {id(module): name for name, module in model.named_modules()}
        weighted = [row for row in ours if row["role"] != "attention_logits"]
        assert len(weighted) == steps * len(model.layers) and {row["step"] for row in ours} == {0, 1, 2}
        for row in weighted:
            module = names[id(model.layers[row["layer"] - 1])]
            theirs = found[(found["module"] == module) & (found["t"] == row["step"] + 1)]
            assert float(theirs["l1"].iloc[0]) == pytest.approx(row["coord"], rel=1e-4, abs=1e-12), (width, row)
