"""Each transformer scheme against its formula, role by role: the measured mean and std of
every weight at several depths and widths (initbench.initializers.transformer)."""

import math

import pytest
import torch

from initbench.initializers import transformer
from initbench.models import gpt

SHAPES = [(depth, width) for depth in (2, 6) for width in (64, 128)]


def expected_std(scheme: str, role: str, depth: int, width: int, fan_in: int) -> float:
    """The formula each record states, written out again here."""
    outputs = role in ("attention_output", "mlp_out")
    default = 1.0 if role.endswith("embedding") else 1 / math.sqrt(3 * fan_in)  # N(0, 1); U(+-1/sqrt(fan_in))
    return {
        "default": default,
        "gpt2": 0.02 / math.sqrt(2 * depth) if outputs else 0.02,
        "scaled_normal": 0.02 / math.sqrt(2 * depth) if outputs else 0.02,
        "megatron_normal": 0.02,
        "small_init": math.sqrt(2 / (5 * width)),
        "wang_init": 2 / (depth * math.sqrt(width)) if outputs else math.sqrt(2 / (5 * width)),
        "zero_proj": 0.0 if outputs else default,
        "small_embedding": 1e-4 / math.sqrt(3) if role == "token_embedding" else default,
    }[scheme]


@pytest.mark.parametrize("scheme", sorted(transformer.SCHEMES))
@pytest.mark.parametrize("depth, width", SHAPES)
def test_each_weight_has_its_formulas_std(scheme: str, depth: int, width: int) -> None:
    model = gpt.GPT(gpt.Shape(vocab=65, context=64, width=width, depth=depth, heads=4))
    transformer.initialize_(model, scheme, torch.Generator().manual_seed(0))
    tensors = dict(model.named_parameters())
    for role in gpt.roles(model):
        tensor = tensors[role.name].detach()
        if role.role in transformer.MATRICES and role.part == "weight":
            std = expected_std(scheme, role.role, depth, width, tensor.shape[-1])
            if std == 0:
                assert not tensor.any(), role
            else:
                assert abs(float(tensor.std()) / std - 1) < 0.06 and abs(float(tensor.mean())) < 4 * std / math.sqrt(
                    tensor.numel()) + 1e-9, (role, float(tensor.std()), std)
        elif not transformer.SCHEMES[scheme].on_default:  # biases 0, norm gains 1
            start = torch.ones_like(tensor) if role.role == "norm_gain" else torch.zeros_like(tensor)
            assert torch.equal(tensor, start), role


def test_every_scheme_says_where_its_formula_comes_from() -> None:
    for scheme in transformer.SCHEMES.values():
        assert scheme.formula and scheme.reference


def test_a_seed_gives_the_same_start() -> None:
    shape = gpt.Shape(vocab=65, width=64, depth=2, heads=4)
    first, again = gpt.GPT(shape), gpt.GPT(shape)
    for model in (first, again):
        transformer.initialize_(model, "gpt2", torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
