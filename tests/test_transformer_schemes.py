"""Each transformer scheme against its formula, role by role: the measured mean and std of
every weight at several depths and widths (initbench.initializers.transformer), through the
registry as a run starts a gpt (``streams.start``'s streams)."""

import math

import pytest
import torch

from initbench import initializers
from initbench.initializers import InitContext, transformer
from initbench.models import gpt
from initbench.training import streams

SCHEMES = ("default", "gpt2", "scaled_normal", "megatron_normal", "small_init", "wang_init", "mitchell",
           "full_megatron", "zero_proj", "small_embedding", "t_fixup", "deepnorm", "mimetic")
ON_DEFAULT = ("default", "zero_proj", "small_embedding")  # PyTorch's biases kept
MATRICES = ("token_embedding", "position_embedding", "attention_query", "attention_key", "attention_value",
            "attention_output", "mlp_in", "mlp_out", "head")


def filled(model: gpt.GPT, scheme: str, seed: int = 0) -> None:
    """``model`` filled by ``scheme`` from ``seed``'s streams, as a run fills it."""
    context = InitContext(streams.generator(seed, "init"), layer_streams=streams.layer_streams(seed))
    initializers.get(scheme).initialize(model, context)

SHAPES = [(depth, width) for depth in (2, 6) for width in (64, 128)]


def cut(std: float) -> float:
    """The std of N(0, std) cut at 3 stds."""
    phi, inside = math.exp(-4.5) / math.sqrt(2 * math.pi), math.erf(3 / math.sqrt(2))
    return std * math.sqrt(1 - 2 * 3 * phi / inside)


def expected_std(scheme: str, role: gpt.Role, depth: int, width: int, shape: tuple[int, ...]) -> float:
    """The formula each record states, written out again here."""
    name, fan_in = role.role, shape[-1]
    outputs = name in ("attention_output", "mlp_out")
    default = 1.0 if name.endswith("embedding") else 1 / math.sqrt(3 * fan_in)  # N(0, 1); U(+-1/sqrt(fan_in))
    xavier = width ** -0.5 if name.endswith("embedding") else math.sqrt(2 / (shape[0] + shape[1]))
    t_fixup = (6 * depth) ** -0.25 if name in ("token_embedding", "attention_value", "attention_output", "mlp_in",
                                               "mlp_out") else 1.0
    beta = (8 * depth) ** -0.25 if name in ("attention_value", "attention_output", "mlp_in", "mlp_out") else 1.0
    if name == "attention_output" and scheme == "mitchell":
        mitchell = 1 / math.sqrt(2 * width * (role.block + 1))
    elif name == "mlp_out" and scheme == "mitchell":
        mitchell = 1 / math.sqrt(2 * 4 * width * (role.block + 1))
    else:
        mitchell = 1 / math.sqrt(width)
    return {
        "default": default,
        "gpt2": 0.02 / math.sqrt(2 * depth) if outputs else 0.02,
        "scaled_normal": 0.02 / math.sqrt(2 * depth) if outputs else 0.02,
        "megatron_normal": 0.02,
        "small_init": math.sqrt(2 / (5 * width)),
        "wang_init": 2 / (depth * math.sqrt(width)) if outputs else math.sqrt(2 / (5 * width)),
        "zero_proj": 0.0 if outputs or name == "head" else default,
        "small_embedding": 1e-4 / math.sqrt(3) if name == "token_embedding" else default,
        "mitchell": cut(mitchell),
        "full_megatron": cut(0.02 / math.sqrt(2 * depth) if outputs else width ** -0.5 if name == "head" else 0.02),
        "t_fixup": xavier * t_fixup,
        "deepnorm": xavier * beta,
        "mimetic": 0.02 / math.sqrt(2 * depth) if outputs else 0.02,
    }[scheme]


SHAPED = {"mimetic": ("attention_query", "attention_key", "attention_value", "attention_output")}  # not a std


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("depth, width", SHAPES)
def test_each_weight_has_its_formulas_std(scheme: str, depth: int, width: int) -> None:
    model = gpt.GPT(gpt.Shape(vocab=65, context=64, width=width, depth=depth, heads=4))
    filled(model, scheme)
    tensors = dict(model.named_parameters())
    for role in gpt.roles(model):
        tensor = tensors[role.name].detach()
        if role.role in SHAPED.get(scheme, ()):
            continue  # test_mimetic_attention_starts_near_the_identity
        if role.role in MATRICES and role.part == "weight":
            std = expected_std(scheme, role, depth, width, tuple(tensor.shape))
            if std == 0:
                assert not tensor.any(), role
            else:
                assert abs(float(tensor.std()) / std - 1) < 0.06 and abs(float(tensor.mean())) < 4 * std / math.sqrt(
                    tensor.numel()) + 1e-9, (role, float(tensor.std()), std)
        elif scheme not in ON_DEFAULT:  # biases 0, norm gains 1
            start = torch.ones_like(tensor) if role.role == "norm_gain" else torch.zeros_like(tensor)
            assert torch.equal(tensor, start), role


def test_every_scheme_says_where_its_formula_comes_from() -> None:
    for name in SCHEMES:
        scheme = initializers.get(name)
        assert scheme.formula and scheme.reference, name
        assert scheme.roles_only == (name not in ("default", "megatron_normal")), name


def test_a_seed_gives_the_same_start_and_schemes_of_a_seed_share_their_draws() -> None:
    """Common random numbers: gpt2 and megatron_normal differ by their rule alone (the
    residual projections' 1/sqrt(2L)), every other weight drawn the same."""
    shape = gpt.Shape(vocab=65, width=64, depth=2, heads=4)
    first, again, other = gpt.GPT(shape), gpt.GPT(shape), gpt.GPT(shape)
    for model, scheme in ((first, "gpt2"), (again, "gpt2"), (other, "megatron_normal")):
        filled(model, scheme, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    for (name, a), b in zip(first.state_dict().items(), other.state_dict().values()):
        if name.endswith(("attention_output.weight", "mlp_out.weight")):
            assert torch.allclose(a * math.sqrt(2 * 2), b), name
        else:
            assert torch.equal(a, b), name


@pytest.mark.parametrize("depth, width", SHAPES)
def test_mimetic_attention_starts_near_the_identity(depth: int, width: int) -> None:
    """Per head, W_q W_k^T = 0.7 Z + 0.7 I and W_v W_o = 0.4 Z - 0.4 I (in the paper's x W
    convention: torch's Linear weights are the transposes)."""
    heads = 4
    model = gpt.GPT(gpt.Shape(vocab=65, context=64, width=width, depth=depth, heads=heads))
    filled(model, "mimetic")
    size = width // heads
    for block in model.blocks:
        scores = block.query.weight.T @ block.key.weight  # W_q W_k^T
        mixing = block.value.weight.T @ block.attention_output.weight.T  # W_v W_o
        for h in range(heads):
            part = slice(h * size, (h + 1) * size)
            for product, (alpha, beta) in ((scores, (0.7, 0.7)), (mixing, (0.4, -0.4))):
                head = product[part, part].detach()
                assert abs(float(head.diagonal().mean()) - beta) < 4 * alpha / size
                off = head - torch.diag(head.diagonal())
                assert abs(float(off.std()) - alpha / math.sqrt(size)) < 0.25 * alpha / math.sqrt(size)
        outside = scores.detach().clone()
        for h in range(heads):
            outside[h * size:(h + 1) * size, h * size:(h + 1) * size] = 0
        assert not outside.any()  # heads do not mix


def test_the_network_residual_alpha_deepnorm_names() -> None:
    assert transformer.deepnorm_alpha(6) == pytest.approx(12 ** 0.25)
    assert transformer.deepnorm_beta(6) == pytest.approx(48 ** -0.25)
    assert transformer.t_fixup_scale(6) == pytest.approx(36 ** -0.25)
