"""Each scheme's weights and biases against its formula, and the registry's errors."""

import math

import pytest
import torch
from torch import nn

from initbench import schemes
from initbench.errors import InitbenchError

SHAPES = [(256, 784), (128, 256), (10, 128), (300, 20)]  # (fan_out, fan_in)


def init(name: str, shape: tuple[int, int], seed: int = 0, activation: str = "relu",
         bias: str = "scheme") -> tuple[torch.Tensor, torch.Tensor]:
    layer = nn.Linear(shape[1], shape[0])
    schemes.init_linear(layer, schemes.get(name), torch.Generator().manual_seed(seed), activation, bias)
    return layer.weight.detach(), layer.bias.detach()


def uniform(a: float, b: float) -> tuple[float, float, float, float]:
    return a, b, (a + b) / 2, (b - a) / math.sqrt(12)


TRUNC_STD = 0.8796  # std of a standard normal cut at +-2


# name -> (fan_in, fan_out) -> (low, high, mean, std) of the weights; None where unbounded
EXPECTED = {
    "uniform": lambda i, o: uniform(0.0, 1.0),
    "centered": lambda i, o: uniform(-0.5, 0.5),
    "rule": lambda i, o: uniform(-1 / math.sqrt(i), 1 / math.sqrt(i)),
    "normal": lambda i, o: (None, None, 0.0, 1 / math.sqrt(i)),
    "default": lambda i, o: uniform(-1 / math.sqrt(i), 1 / math.sqrt(i)),
    "xavier_uniform": lambda i, o: uniform(-math.sqrt(6 / (i + o)), math.sqrt(6 / (i + o))),
    "xavier_normal": lambda i, o: (None, None, 0.0, math.sqrt(2 / (i + o))),
    "xavier_normal:2": lambda i, o: (None, None, 0.0, 2 * math.sqrt(2 / (i + o))),
    "kaiming_uniform": lambda i, o: uniform(-math.sqrt(6 / i), math.sqrt(6 / i)),  # ReLU: gain sqrt(2)
    "kaiming_normal": lambda i, o: (None, None, 0.0, math.sqrt(2 / i)),
    "lecun_uniform": lambda i, o: uniform(-math.sqrt(3 / i), math.sqrt(3 / i)),
    "lecun_normal": lambda i, o: (None, None, 0.0, math.sqrt(1 / i)),
    "trunc_normal": lambda i, o: (-0.04, 0.04, 0.0, 0.02 * TRUNC_STD),
    "uniform:-0.1,0.1": lambda i, o: uniform(-0.1, 0.1),
    "normal:0.05": lambda i, o: (None, None, 0.0, 0.05),
    "random_uniform": lambda i, o: uniform(-0.05, 0.05),  # Keras defaults
    "random_normal": lambda i, o: (None, None, 0.0, 0.05),
    "he_normal": lambda i, o: (None, None, 0.0, math.sqrt(2 / i)),
    "glorot_uniform": lambda i, o: uniform(-math.sqrt(6 / (i + o)), math.sqrt(6 / (i + o))),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(EXPECTED))
def test_random_scheme_statistics_match_formula(name: str, shape: tuple[int, int]) -> None:
    w, _ = init(name, shape)
    low, high, mean, std = EXPECTED[name](shape[1], shape[0])
    count = w.numel()
    # Five standard errors: a correct scheme passes, a wrong scale (e.g. 1/n for 1/sqrt(n)) fails.
    assert abs(w.mean().item() - mean) < 5 * std / math.sqrt(count)
    assert abs(w.std().item() / std - 1) < 5 / math.sqrt(2 * count)
    if low is not None:
        assert w.min().item() >= low and w.max().item() < high
        span = high - low
        assert w.min().item() < low + 0.01 * span and w.max().item() > high - 0.01 * span


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name,value", [("zeros", 0.0), ("ones", 1.0)])
def test_constant_schemes(name: str, value: float, shape: tuple[int, int]) -> None:
    w, b = init(name, shape)
    assert torch.all(w == value) and torch.all(b == 0)


@pytest.mark.parametrize("name", [n for n in schemes.names() if n not in ("default", "constant")])
def test_schemes_zero_the_bias_and_bias_policies_override(name: str) -> None:
    assert torch.all(init(name, (256, 784))[1] == 0)
    assert torch.all(init(name, (256, 784), bias="zeros")[1] == 0)
    b = init(name, (256, 784), bias="default")[1]
    assert b.abs().max() <= 1 / 28 and b.std() > 0.5 / math.sqrt(3 * 784)


@pytest.mark.parametrize("activation,gain", [("relu", math.sqrt(2)), ("tanh", 5 / 3), ("selu", 0.75)])
def test_kaiming_and_orthogonal_follow_the_activation_gain(activation: str, gain: float) -> None:
    w, _ = init("kaiming_normal", (300, 400), activation=activation)
    assert abs(w.std().item() / (gain / math.sqrt(400)) - 1) < 0.03
    w, _ = init("xavier_normal", (300, 400), activation=activation)  # Glorot's gain is its own (1)
    assert abs(w.std().item() / math.sqrt(2 / 700) - 1) < 0.03
    for shape in ((128, 256), (256, 128)):
        w, _ = init("orthogonal", shape, activation=activation)
        small = w @ w.T if shape[0] <= shape[1] else w.T @ w
        torch.testing.assert_close(small, gain**2 * torch.eye(min(shape)), atol=1e-4, rtol=0)


def test_sparse_zeroes_a_fixed_share_of_each_column() -> None:
    w, _ = init("sparse", (300, 200))
    assert torch.all((w == 0).sum(0) == 30)  # ceil(0.1 * 300) in every column
    assert abs(w[w != 0].std().item() / 0.01 - 1) < 0.03
    assert torch.all((init("sparse:0.5", (300, 200))[0] == 0).sum(0) == 150)


def test_constant_takes_its_value() -> None:
    w, b = init("constant:0.5", (64, 32))
    assert torch.all(w == 0.5) and torch.all(b == 0)


@pytest.mark.parametrize("name", [n for n in schemes.names() if n != "constant"] + ["constant:2"])
def test_every_scheme_draws_only_from_its_generator(name: str) -> None:
    torch.manual_seed(1)
    first = init(name, (64, 96), seed=5)
    torch.manual_seed(2)
    assert all(torch.equal(a, b) for a, b in zip(first, init(name, (64, 96), seed=5)))


@pytest.mark.parametrize("spec,message", [
    ("constant", "write constant:VALUE"), ("uniform:a", "write uniform[:LOW,HIGH]"),
    ("uniform:1,2,3", "write uniform[:LOW,HIGH]"), ("rule:1", "takes no parameters"),
    ("he_norml", "Did you mean 'he_normal'?"),
])
def test_bad_names_and_parameters(spec: str, message: str) -> None:
    with pytest.raises(InitbenchError, match=message.replace("[", r"\[").replace("?", r"\?")):
        schemes.get(spec)


@pytest.mark.parametrize("shape", SHAPES)
def test_default_is_pytorchs_reset_parameters_bit_for_bit(shape: tuple[int, int]) -> None:
    w, b = init("default", shape, seed=7)
    torch.manual_seed(7)
    reference = nn.Linear(shape[1], shape[0])  # calls reset_parameters() on the global generator
    assert torch.equal(w, reference.weight.detach()) and torch.equal(b, reference.bias.detach())
    bound = 1 / math.sqrt(shape[1])
    assert b.abs().max() <= bound and b.abs().max() > 0.5 * bound  # unlike `rule`, a random bias


def test_same_generator_seed_same_weights_and_only_from_that_generator() -> None:
    torch.manual_seed(1)
    first, _ = init("normal", (128, 256), seed=3)
    torch.manual_seed(2)  # the global generator must not matter
    again, _ = init("normal", (128, 256), seed=3)
    other, _ = init("normal", (128, 256), seed=4)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_every_scheme_has_summary_formula_and_reference() -> None:
    assert set(schemes.names()) >= {"zeros", "ones", "uniform", "centered", "rule", "normal", "default",
                                     "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
                                     "lecun_uniform", "lecun_normal", "orthogonal", "trunc_normal", "sparse", "lsuv"}
    for row in schemes.catalogue():
        assert row["summary"] and "W" in row["formula"] and row["reference"]
    listed_aliases = {a.split()[0] for row in schemes.catalogue() for a in row["aliases"]}
    assert listed_aliases == set(schemes.ALIASES)


def test_unknown_scheme_names_closest_match_and_valid_choices() -> None:
    with pytest.raises(InitbenchError) as err:
        schemes.get("rul")
    message = str(err.value)
    assert "Unknown scheme 'rul'" in message and "Did you mean 'rule'?" in message
    assert all(name in message for name in schemes.names())


def test_register_demands_formula_and_reference_in_docstring() -> None:
    def half_(weight, bias, generator=None):
        """Half: but no formula line."""

    with pytest.raises(ValueError, match="Formula"):
        schemes.register("half")(half_)
    assert "half" not in schemes.names()


def test_lsuv_gives_unit_variance_outputs_on_real_data(small) -> None:
    from initbench.jobs import Job, TrainSettings, initial_model

    for activation in ("relu", "tanh"):
        model = initial_model(Job("lsuv", 0, TrainSettings(hidden=(128,) * 5, activation=activation)),
                              small.x_train)
        x = small.x_val[:500]
        for i, layer in enumerate(model.layers):
            out = layer(x)
            assert abs(out.var().item() - 1) < 0.2, (activation, i)  # fitted on other images, to 0.1
            x = model.activation(out)


def test_aliases_give_the_same_models_as_their_names(small) -> None:
    from initbench.jobs import Job, TrainSettings, initial_model

    for alias, name in (("he_normal", "kaiming_normal"), ("random_normal", "normal:0.05")):
        a, b = (initial_model(Job(n, 3, TrainSettings()), small.x_train) for n in (alias, name))
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
