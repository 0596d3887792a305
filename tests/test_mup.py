"""μP (--parametrization mup, parametrization.py): SP's numbers at the base width, each model's
own numbers in a group, the engines agreeing, Table 3's per-layer learning rates and output
variance, stored keys of SP unchanged, bad values refused."""

import math

import pytest
import torch
from typer.testing import CliRunner

from initbench import config, data
from initbench.cli import app
from initbench.errors import UsageError
from initbench.jobs import Job, Keep
from initbench.settings import NetworkSettings, TrainSettings
from initbench.storage import store
from initbench.training import engines, parametrization
from initbench.training.engines import batched, sequential
from initbench.training.streams import initial_model, start

CPU = torch.device("cpu")
WIDE = TrainSettings.of(epochs=1, hidden=(128, 128), parametrization="mup", dropout=0.0)  # twice the base's 64
SCHEMES = ("kaiming_normal", "default", "lsuv")


def identical(a, b) -> bool:
    return torch.equal(a.losses, b.losses) and a.val_acc == b.val_acc and a.test_acc == b.test_acc


@pytest.mark.parametrize("name", engines.ENGINES)
def test_at_the_base_width_mup_is_sp_bit_for_bit(tiny, name: str) -> None:
    """Every factor is exactly 1 at the base width: the same losses, accuracies and weights."""
    sp = TrainSettings.of(epochs=1, hidden=(64, 64))
    jobs = [Job(scheme, 0, s) for s in (sp, sp.replace(parametrization="mup")) for scheme in ("rule", "lsuv")]
    a, b, c, d = engines.train(jobs, tiny, CPU, name, keep=Keep(weights=True))
    for sp_result, mup_result in ((a, c), (b, d)):
        assert identical(sp_result, mup_result)
        assert all(torch.equal(sp_result.weights[k], mup_result.weights[k]) for k in sp_result.weights)


@pytest.mark.exactness
@pytest.mark.parametrize("settings", [WIDE, WIDE.replace(epochs=2, freeze=1, unfreeze_after=1),
                                      WIDE.replace(optimizer="sgd", lr=0.02)], ids=["adam", "unfrozen", "sgd"])
def test_batched_alone_is_batched_grouped_and_agrees_with_sequential(tiny, settings: TrainSettings) -> None:
    """At twice the base width: each model's numbers alone are those it gets in its group, bit for
    bit, and the sequential engine's param groups agree to rounding over every batch."""
    jobs = [Job(scheme, seed, settings) for seed in (0, 1) for scheme in SCHEMES]
    together = engines.train(jobs, tiny, CPU, "batched")
    for job, result in zip(jobs, together):
        assert identical(engines.train([job], tiny, CPU, "batched")[0], result), job
    for b, s in zip(together[:3], engines.train(jobs[:3], tiny, CPU, "sequential")):
        torch.testing.assert_close(b.losses, s.losses, rtol=1e-4, atol=0)
    sp = engines.train([Job(SCHEMES[0], 0, settings.replace(parametrization="sp"))], tiny, CPU, "batched")[0]
    assert not torch.equal(sp.losses, together[0].losses)  # μP did change something


def rates_by_tensor(population: batched.Population) -> dict[str, float]:
    """Each parameter's learning rate in the batched engine's optimizer groups, by state-dict name."""
    n = len(population.weights)
    names = [f"layers.{i}.weight" for i in range(n)] + [f"layers.{i}.bias" for i in range(n)]
    where = {p[0].data_ptr(): name for p, name in zip(population.parameters(), names)}
    return {where[t.data_ptr()]: group.lr for group in population._groups for t in group.lists[0]
            if t.data_ptr() in where}


def sequential_rates(model, groups) -> dict[str, float]:
    names = {id(p): name for name, p in model.named_parameters()}
    return {names[id(p)]: group["lr"] for group in groups for p in group["params"]}


@pytest.mark.parametrize(("optimizer", "expected"), [
    # Table 3, relative to base width 64: hidden and output weights' Adam lr x base/fan_in; input weights, biases x 1.
    ("adam", {"layers.0.weight": 1, "layers.1.weight": 64 / 256, "layers.2.weight": 64 / 128,
              "layers.0.bias": 1, "layers.1.bias": 1, "layers.2.bias": 1}),
    # SGD: input weights and biases x fan_out/base, output weights x base/fan_in, hidden weights by their ratio.
    ("sgd", {"layers.0.weight": 256 / 64, "layers.1.weight": (128 / 64) / (256 / 64), "layers.2.weight": 64 / 128,
             "layers.0.bias": 256 / 64, "layers.1.bias": 128 / 64, "layers.2.bias": 1}),
])
def test_per_layer_learning_rates_follow_table_3(tiny, optimizer: str, expected: dict[str, float]) -> None:
    """Read from both engines' optimizers, from the start and for layers unfrozen later."""
    s = TrainSettings.of(hidden=(256, 128), parametrization="mup", optimizer=optimizer, lr=0.01, epochs=2)
    jobs = [Job("rule", 0, s), Job("rule", 1, s)]
    population = batched.Population(jobs, [initial_model(job, tiny.x_train) for job in jobs], CPU)
    assert rates_by_tensor(population) == pytest.approx({k: 0.01 * v for k, v in expected.items()}, rel=1e-12)
    model = initial_model(jobs[0], tiny.x_train)
    opt = sequential.optimizer(sequential.param_groups(model, range(3), 0.01, s), s.optim)
    assert sequential_rates(model, opt.param_groups) == rates_by_tensor(population)
    assert len(opt.param_groups) == len(set(expected.values())) == len(population._groups)

    frozen = s.replace(freeze=2, unfreeze_after=1, unfreeze_lr=0.003)
    population = batched.Population([Job("rule", 0, frozen)], [model], CPU)
    population.start_epoch(1)
    unfrozen = {k: 0.003 * v for k, v in expected.items() if k[7] in "01"}
    assert rates_by_tensor(population) == pytest.approx({k: 0.01 * v for k, v in expected.items() if k[7] == "2"}
                                                        | unfrozen, rel=1e-12)
    groups = sequential.param_groups(model, range(2), 0.003, frozen)
    assert sequential_rates(model, groups) == pytest.approx(unfrozen, rel=1e-12)


def test_output_layer_variance_is_scaled_and_said(tiny) -> None:
    """kaiming_normal draws variance 2/fan_in; μP scales the output layer's weights by
    sqrt(base/fan_in), to 2/fan_in x 64/1024 (checked on its 10,240 weights), and says so; the
    other layers and every bias are the scheme's, bit for bit."""
    s = TrainSettings.of(hidden=(1024, 1024))
    sp, sp_sources = start(Job("kaiming_normal", 0, s), tiny.x_train)
    mup, sources = start(Job("kaiming_normal", 0, s.replace(parametrization="mup")), tiny.x_train)
    head = mup.layers[2].weight.detach()
    assert torch.equal(head, sp.layers[2].weight.detach() * 0.25)  # sqrt(64/1024), a power of two: exact
    assert head.var().item() == pytest.approx(2 / 1024 * 64 / 1024, rel=0.05)
    for a, b in zip(sp.parameters(), list(mup.parameters())):
        assert a is sp.layers[2].weight or torch.equal(a, b)
    assert sources[:2] == sp_sources[:2] and "× 0.25 (μP output layer, base width 64)" in sources[2]


def test_sp_keys_and_records_are_unchanged() -> None:
    """sp and the default base width are not stored (settings.ADDED): the pinned key of the default job
    holds; μP, and its base width, are part of a key."""
    default = Job("rule", 0, TrainSettings())
    assert store.key(default) == "3d3f045181f92e02af6255b0e860660e15c455146b9a9620710d7583552caf95"
    assert data.stored(TrainSettings.of(parametrization="sp", base_width=64)) == data.stored(TrainSettings())
    mup = TrainSettings.of(parametrization="mup")
    keys = {store.key(Job("rule", 0, s)) for s in (TrainSettings(), mup, mup.replace(base_width=32))}
    assert len(keys) == 3
    narrower = mup.replace(base_width=32)
    assert TrainSettings.from_plain(data.stored(narrower)).network == narrower.network


@pytest.mark.parametrize(("args", "fragment"), [
    (["--parametrization", "mu"], "'mu' is not one of 'sp', 'mup'"),
    (["--base-width", "0"], "Invalid --base-width: must be at least 1"),
    (["--parametrization", "mup", "--optimizer", "sgd", "--base-width", "x"], "Invalid value for '--base-width'"),
])
def test_bad_values_are_refused_with_exit_2(tmp_path, args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(app, ["compare", "rule", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert fragment in " ".join(result.output.split()), result.output
    with pytest.raises(UsageError, match="Invalid 'parametrization'"):
        config.resolve_sweep({"parametrization": "MUP", "grid": {"lr": [0.1]}})


def test_mup_is_refused_for_a_network_it_is_not_written_for() -> None:
    with pytest.raises(UsageError, match="mlp, resmlp, gpt networks only, not 'cnn'.*--parametrization sp") as e:
        parametrization.check(NetworkSettings(network="cnn", parametrization="mup"))
    assert e.value.exit_code == 2
    for name in ("mlp", "cnn"):
        with pytest.raises(UsageError, match=f"resmlp, gpt networks only, not '{name}': it scales each residual branch"):
            parametrization.check(NetworkSettings(network=name, parametrization="completep"))
    with pytest.raises(UsageError, match="written for Adam"):
        parametrization.check(NetworkSettings(network="resmlp", parametrization="depth-mup"), "sgd")
    parametrization.check(NetworkSettings(network="cnn"))  # sp: any network
    resolved = config.resolve(options={"parametrization": "mup", "base_width": 32, "hidden": "128x2"})
    assert resolved.train.network == NetworkSettings(hidden=(128, 128), parametrization="mup", base_width=32)
    assert math.isclose(parametrization.scales(resolved.train)[-1].init, math.sqrt(32 / 128))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_gpts_rates_are_the_mup_packages_by_role(optimizer: str) -> None:
    """Every parameter of a gpt at 4x its base width (embeddings, each block's matrices, biases and
    norms) takes the rate mup.MuAdam or mup.MuSGD gives it after set_base_shapes; the head, by
    design in Table 3's form (no output multiplier), takes theirs over the width ratio under
    Adam, over its square under SGD (MuReadout divides its input by the ratio instead)."""
    import mup

    from initbench.models.gpt import GPT
    from initbench.models.gpt_shape import Shape
    from initbench.training.engines import sequential

    def reference(width: int) -> GPT:
        model = GPT(Shape(65, 16, width, 2, 4, base_width=32))
        model.head = mup.MuReadout(width, 65, bias=False)
        return model

    s = TrainSettings.of(dataset="shakespeare", network="gpt", hidden=(128, 128), context=16, parametrization="mup",
                         base_width=32, optimizer=optimizer, lr=0.01)
    theirs = reference(128)
    mup.set_base_shapes(theirs, reference(32), delta=reference(64))
    kind = mup.MuAdam if optimizer == "adam" else mup.MuSGD
    expected = sequential_rates(theirs, kind(theirs.parameters(), lr=0.01).param_groups)
    ours = GPT(Shape(65, 16, 128, 2, 4, base_width=32))
    found = sequential_rates(ours, sequential.param_groups(ours, range(len(ours.layers)), 0.01, s, others=True))
    assert found.keys() == expected.keys() and len(found) == 2 + 2 * 16 + 2 + 1
    head = found.pop("head.weight") * (4 if optimizer == "adam" else 16)
    assert head == pytest.approx(expected.pop("head.weight"), rel=1e-12)
    assert found == pytest.approx(expected, rel=1e-12)
    assert len(set(found.values())) == 2  # μP's two rates: the vectors' and the matrices' (x 1/4)


def test_a_gpt_at_its_base_width_is_sp_but_for_its_zero_query_and_readout(tmp_path) -> None:
    """At the base width every rate factor is 1 and the attention's scale is sp's 1/sqrt(d_head);
    what differs is μP's start: each query's weights and the head at zero (their provenance says
    so), every other tensor the scheme's, bit for bit. Wider, the attention is q·k/d_head times
    the base's sqrt(d_head)."""
    path = tmp_path / "rhyme.txt"
    path.write_text("the cat sat on the mat\n" * 50)
    s = TrainSettings.of(dataset=f"text:{path}", network="gpt", hidden=(64, 64), context=16)
    tokens = data.load(tmp_path, s.data).x_train
    sp, _ = start(Job("gpt2", 0, s), tokens)
    mup, sources = start(Job("gpt2", 0, s.replace(parametrization="mup")), tokens)
    zeroed = {"head.weight", *(f"blocks.{k}.query.weight" for k in range(2))}
    for (name, a), b in zip(sp.state_dict().items(), mup.state_dict().values()):
        assert torch.equal(b, torch.zeros_like(a)) if name in zeroed else torch.equal(a, b), name
    assert sum("μP starts the query and the readout at zero" in source for source in sources) == 3
    assert mup.shape.attention_scale == 1 / math.sqrt(16) and sp.shape.attention_scale is None
    groups = sequential.param_groups(mup, range(len(mup.layers)), 0.01, s.replace(parametrization="mup"), others=True)
    assert [g["lr"] for g in groups] == [0.01] and len(groups[0]["params"]) == len(list(mup.parameters()))
    wide = start(Job("gpt2", 0, s.replace(parametrization="mup", hidden=(256, 256))), tokens)[0]
    assert wide.shape.attention_scale == pytest.approx(4 / 64)  # sqrt(64 / 4) / (256 / 4)
