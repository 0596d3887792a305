"""The initializations people use for transformers, per parameter role (``models.gpt.roles``).

Each scheme is a rule: for a weight of a given role, at a block of a network of depth L and
width d, the standard deviation of the normal it is drawn from (0: zeros; None: left as
PyTorch built it), or another draw (``small_embedding``'s uniform). A scheme of its own
draws starts biases at zero and norm gains at one; one built on PyTorch's default
(``default``, ``zero_proj``, ``small_embedding``) leaves them as built. Each record says
where its formula comes from.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from initbench.models.gpt import GPT, roles

RESIDUAL_OUTPUTS = ("attention_output", "mlp_out")  # the weights whose outputs are added to the residual stream
MATRICES = ("token_embedding", "position_embedding", "attention_query", "attention_key", "attention_value",
            "attention_output", "mlp_in", "mlp_out", "head")


@dataclass(frozen=True)
class TransformerScheme:
    """A transformer's start: its name, ``std(role, L, d)`` for each weight (0: zeros, None:
    as PyTorch built it), its formula and its reference."""

    name: str
    std: Callable[[str, int, int], float | None]
    formula: str
    reference: str
    draw: Callable[[torch.Tensor, torch.Generator], None] | None = None  # token embedding drawn otherwise
    on_default: bool = False  # built on PyTorch's default: biases and norms left as built


def _gpt2(role: str, depth: int, width: int) -> float | None:
    return 0.02 / math.sqrt(2 * depth) if role in RESIDUAL_OUTPUTS else 0.02


def _small(role: str, depth: int, width: int) -> float | None:
    return math.sqrt(2 / (5 * width))


def _wang(role: str, depth: int, width: int) -> float | None:
    return 2 / (depth * math.sqrt(width)) if role in RESIDUAL_OUTPUTS else _small(role, depth, width)


def _zero_proj(role: str, depth: int, width: int) -> float | None:
    return 0.0 if role in RESIDUAL_OUTPUTS else None


def _small_embedding_draw(weight: torch.Tensor, generator: torch.Generator) -> None:
    weight.uniform_(-1e-4, 1e-4, generator=generator)


SCHEMES = {s.name: s for s in (
    TransformerScheme("default", lambda role, depth, width: None, "as PyTorch builds the modules: Linear "
                      "U(-1/sqrt(fan_in), 1/sqrt(fan_in)), Embedding N(0, 1), norm gain 1",
                      "torch.nn's reset_parameters", on_default=True),
    TransformerScheme("gpt2", _gpt2, "N(0, 0.02); attention and MLP output projections N(0, 0.02/sqrt(2L)); biases 0",
                      "nanoGPT model.py (GPT._init_weights and the c_proj scaling), after GPT-2 (Radford et al. 2019)"),
    TransformerScheme("megatron_normal", lambda role, depth, width: 0.02, "N(0, 0.02) for every weight; biases 0",
                      "Megatron-LM / GPT-NeoX init_functions.py init_method_normal"),
    TransformerScheme("small_init", _small, "N(0, sqrt(2/(5d))) for every weight; biases 0",
                      "Nguyen & Salazar 2019, Transformers without Tears; GPT-NeoX small_init_init_method"),
    TransformerScheme("wang_init", _wang, "small_init, and output projections N(0, 2/(L sqrt(d))); biases 0",
                      "GPT-NeoX init_functions.py wang_init_method (after Ben Wang's Mesh Transformer JAX)"),
    TransformerScheme("zero_proj", _zero_proj, "PyTorch's default, and attention and MLP output projections 0",
                      "modded-nanogpt (output projections zero-initialized)", on_default=True),
    TransformerScheme("small_embedding", lambda role, depth, width: None,
                      "PyTorch's default, and the token embedding U(-1e-4, 1e-4)",
                      "Peng et al. 2023, RWKV (SmallInitEmb)", draw=_small_embedding_draw, on_default=True),
)}
SCHEMES["scaled_normal"] = SCHEMES["gpt2"]  # GPT-NeoX's name for the same rule (scaled_init_method_normal)


def initialize_(model: GPT, scheme: str, generator: torch.Generator) -> None:
    """Fill ``model`` by ``scheme`` from ``generator``, role by role, in the state dict's order."""
    rule, (depth, width) = SCHEMES[scheme], (model.shape.depth, model.shape.width)
    tensors = dict(model.named_parameters())
    with torch.no_grad():
        for role in roles(model):
            tensor = tensors[role.name]
            if role.part == "bias" or role.role in ("norm_gain", "norm_bias"):
                if not rule.on_default:
                    tensor.fill_(1.0 if role.role == "norm_gain" else 0.0)
            elif role.role == "token_embedding" and rule.draw is not None:
                rule.draw(tensor, generator)
            else:
                std = rule.std(role.role, depth, width)
                if std == 0.0:
                    tensor.zero_()
                elif std is not None:
                    tensor.normal_(0.0, std, generator=generator)

