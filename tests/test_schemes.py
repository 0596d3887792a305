"""Each scheme's weights and biases against its formula, and the registry's errors."""

import math

import pytest
import torch
from torch import nn

from initbench import schemes
from initbench.errors import InitbenchError

SHAPES = [(256, 784), (128, 256), (10, 128), (300, 20)]  # (fan_out, fan_in)


def init(name: str, shape: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    layer = nn.Linear(shape[1], shape[0])
    schemes.init_linear(layer, schemes.get(name), torch.Generator().manual_seed(seed))
    return layer.weight.detach(), layer.bias.detach()


# name -> fan_in -> (low, high, mean, std) of the weights; None where unbounded
EXPECTED = {
    "uniform": lambda n: (0.0, 1.0, 0.5, math.sqrt(1 / 12)),
    "centered": lambda n: (-0.5, 0.5, 0.0, math.sqrt(1 / 12)),
    "rule": lambda n: (-1 / math.sqrt(n), 1 / math.sqrt(n), 0.0, 1 / math.sqrt(3 * n)),
    "normal": lambda n: (None, None, 0.0, 1 / math.sqrt(n)),
    "default": lambda n: (-1 / math.sqrt(n), 1 / math.sqrt(n), 0.0, 1 / math.sqrt(3 * n)),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(EXPECTED))
def test_random_scheme_statistics_match_formula(name: str, shape: tuple[int, int]) -> None:
    w, _ = init(name, shape)
    low, high, mean, std = EXPECTED[name](shape[1])
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


@pytest.mark.parametrize("name", ["uniform", "centered", "rule", "normal"])
def test_lesson_schemes_zero_the_bias(name: str) -> None:
    _, b = init(name, (256, 784))
    assert torch.all(b == 0)


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
    assert set(schemes.names()) >= {"zeros", "ones", "uniform", "centered", "rule", "normal", "default"}
    for name in schemes.names():
        s = schemes.get(name)
        assert s.summary and "W" in s.formula and s.reference


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
