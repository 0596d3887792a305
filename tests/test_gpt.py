"""The decoder-only transformer (initbench.models.gpt): causal, every parameter's role known
once, tied embeddings shared, its shapes checked in words."""

import math

import pytest
import torch

from initbench.errors import UsageError
from initbench.models import gpt

SMALL = gpt.Shape(vocab=30, context=16, width=32, depth=3, heads=4)


def test_logits_depend_on_earlier_tokens_only() -> None:
    torch.manual_seed(0)
    model = gpt.GPT(SMALL).eval()
    tokens = torch.randint(30, (2, 16))
    changed = tokens.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 30
    a, b = model(tokens), model(changed)
    assert a.shape == (2, 16, 30)
    assert torch.equal(a[:, :10], b[:, :10]) and not torch.allclose(a[:, 10:], b[:, 10:])


@pytest.mark.parametrize("shape", [SMALL, gpt.Shape(vocab=30, context=16, width=32, depth=2, heads=2, tied=True,
                                                     placement="post", norm="rmsnorm")])
def test_every_parameter_has_one_role(shape: gpt.Shape) -> None:
    model = gpt.GPT(shape)
    found = gpt.roles(model)
    assert len(found) == len(list(model.parameters())) and {r.role for r in found} <= set(gpt.ROLES)
    by_role = {}
    for r in found:
        by_role.setdefault(r.role, []).append(r)
    weights = {role: sum(r.part == "weight" for r in rs) for role, rs in by_role.items()}
    assert weights["attention_query"] == weights["mlp_out"] == shape.depth
    assert ("head" in weights) == (not shape.tied)  # a tied head is the token embedding
    assert all(r.block is None for r in by_role["token_embedding"] + by_role["position_embedding"])
    assert sorted({r.block for r in by_role["attention_output"]}) == list(range(shape.depth))
    if shape.tied:
        assert model.head.weight is model.token_embedding.weight


def test_a_model_that_knows_nothing_starts_near_ln_v() -> None:
    """With its head's weights at zero every token is equally likely: the loss is ln V."""
    model = gpt.GPT(SMALL)
    torch.nn.init.zeros_(model.head.weight)
    tokens = torch.randint(30, (4, 16))
    assert math.isclose(float(model.loss(tokens, tokens).detach()), math.log(30), rel_tol=1e-6)
    assert math.isclose(gpt.bits_per_character(math.log(2)), 1.0)


def test_heads_that_do_not_divide_the_width_are_refused() -> None:
    with pytest.raises(UsageError, match=r"--heads 3 does not divide the width 32: .* \(e.g. 4\)"):
        gpt.GPT(gpt.Shape(vocab=30, width=32, heads=3))
    with pytest.raises(ValueError, match="17 tokens are more than the context of 16"):
        gpt.GPT(SMALL)(torch.zeros(1, 17, dtype=torch.long))
