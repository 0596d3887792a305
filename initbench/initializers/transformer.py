"""The initializations people use for transformers, per parameter role (``models.gpt.roles``).

Most are a rule: for a weight of a given role, in block l (0-based) of a network of L
blocks and width d, the standard deviation of the normal it is drawn from (0: zeros; None:
left as PyTorch built it), cut at three standard deviations where the source cuts it. A
scheme of its own draws starts biases at zero and norm gains at one; one built on PyTorch's
default (``default``, ``zero_proj``, ``small_embedding``) leaves them as built. T-Fixup,
DeepNorm and mimetic initialization draw first and then scale or shape what they drew. Each
record says where its formula comes from.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from initbench.models.gpt import GPT, Role, roles

RESIDUAL_OUTPUTS = ("attention_output", "mlp_out")  # the weights whose outputs are added to the residual stream
MATRICES = ("token_embedding", "position_embedding", "attention_query", "attention_key", "attention_value",
            "attention_output", "mlp_in", "mlp_out", "head")
CUT = 3.0  # a truncated normal's bounds, in standard deviations (OLMo's)
# Mimetic initialization's (alpha, beta): W_q W_k^T ~ a1 Z + b1 I, and W_v W_o ~ a2 Z - b2 I (the paper's values).
MIMETIC = ((0.7, 0.7), (0.4, 0.4))

Std = Callable[[Role, Tensor, GPT], float | None]  # a weight's std from its role, the tensor and the network


@dataclass(frozen=True)
class TransformerScheme:
    """A transformer's start: its name, how it fills a GPT (``fill(model, generator)``), its
    formula and its reference."""

    name: str
    fill: Callable[[GPT, torch.Generator], None]
    formula: str
    reference: str
    on_default: bool = False  # built on PyTorch's default: biases and norms left as built


def _rule(std: Std, cut: bool = False, on_default: bool = False,
          embedding: Callable[[Tensor, torch.Generator], None] | None = None) -> Callable[[GPT, torch.Generator], None]:
    """A scheme that draws each weight from N(0, std) (cut at CUT stds when ``cut``), in the
    state dict's order; ``embedding``: the token embedding drawn otherwise."""
    def fill(model: GPT, generator: torch.Generator) -> None:
        tensors = dict(model.named_parameters())
        with torch.no_grad():
            for role in roles(model):
                tensor = tensors[role.name]
                if role.part == "bias" or role.role in ("norm_gain", "norm_bias"):
                    if not on_default:
                        tensor.fill_(1.0 if role.role == "norm_gain" else 0.0)
                elif role.role == "token_embedding" and embedding is not None:
                    embedding(tensor, generator)
                else:
                    drawn = std(role, tensor, model)
                    if drawn == 0.0:
                        tensor.zero_()
                    elif drawn is not None and cut:
                        nn.init.trunc_normal_(tensor, 0.0, drawn, -CUT * drawn, CUT * drawn, generator=generator)
                    elif drawn is not None:
                        tensor.normal_(0.0, drawn, generator=generator)
    return fill


def _width(model: GPT) -> int:
    return model.shape.width


def _gpt2(role: Role, tensor: Tensor, model: GPT) -> float:
    return 0.02 / math.sqrt(2 * model.shape.depth) if role.role in RESIDUAL_OUTPUTS else 0.02


def _small(role: Role, tensor: Tensor, model: GPT) -> float:
    return math.sqrt(2 / (5 * _width(model)))


def _wang(role: Role, tensor: Tensor, model: GPT) -> float:
    if role.role in RESIDUAL_OUTPUTS:
        return 2 / (model.shape.depth * math.sqrt(_width(model)))
    return _small(role, tensor, model)


def _mitchell(role: Role, tensor: Tensor, model: GPT) -> float:
    """OLMo's: 1/sqrt(d) throughout, the attention output 1/sqrt(2 d (l+1)), the MLP's output
    1/sqrt(2 d_ff (l+1)) (its fan-in, the MLP's hidden width)."""
    if role.role in RESIDUAL_OUTPUTS:
        return 1 / math.sqrt(2 * tensor.shape[1] * (role.block + 1))  # type: ignore[operator]  (a block's)
    return 1 / math.sqrt(_width(model))


def _full_megatron(role: Role, tensor: Tensor, model: GPT) -> float:
    if role.role in RESIDUAL_OUTPUTS:
        return 0.02 / math.sqrt(2 * model.shape.depth)
    return _width(model) ** -0.5 if role.role == "head" else 0.02


def _xavier(role: Role, tensor: Tensor, model: GPT) -> float:
    """Xavier's normal std for a Linear weight [out, in]; an embedding's N(0, d^-1/2)."""
    if role.role.endswith("embedding"):
        return _width(model) ** -0.5
    return math.sqrt(2 / (tensor.shape[0] + tensor.shape[1]))


def _zero_proj(role: Role, tensor: Tensor, model: GPT) -> float | None:
    return 0.0 if role.role in RESIDUAL_OUTPUTS else None


def _small_embedding(tensor: Tensor, generator: torch.Generator) -> None:
    tensor.uniform_(-1e-4, 1e-4, generator=generator)


def t_fixup_scale(depth: int) -> float:
    """T-Fixup's factor for a decoder of ``depth`` layers with self-attention only: (6L)^-1/4."""
    return (6 * depth) ** -0.25


def deepnorm_beta(depth: int) -> float:
    """DeepNet's beta for a decoder of ``depth`` layers: (8L)^-1/4 (its alpha, on the network: (2L)^1/4)."""
    return (8 * depth) ** -0.25


def deepnorm_alpha(depth: int) -> float:
    return (2 * depth) ** 0.25


def _scaled(std: Std, roles_scaled: tuple[str, ...], factor: Callable[[int], float]) -> Std:
    """``std``, times ``factor(L)`` for the weights of ``roles_scaled``."""
    def scaled(role: Role, tensor: Tensor, model: GPT) -> float | None:
        drawn = std(role, tensor, model)
        return drawn * factor(model.shape.depth) if drawn and role.role in roles_scaled else drawn
    return scaled


T_FIXUP_SCALED = ("token_embedding", "attention_value", "attention_output", "mlp_in", "mlp_out")
DEEPNORM_SCALED = ("attention_value", "attention_output", "mlp_in", "mlp_out")


def _mimetic(model: GPT, generator: torch.Generator) -> None:
    """gpt2's draws, then each block's query and key shaped so that, head by head,
    W_q W_k^T = a1 Z + b1 I, and its value and output so that W_v W_o ~ a2 Z - b2 I, with Z
    drawn N(0, 1/d_head) (each product factored by its SVD, half the singular values each side)."""
    _rule(_gpt2)(model, generator)
    heads = model.shape.heads
    with torch.no_grad():
        for block in model.blocks:
            (a1, b1), (a2, b2) = MIMETIC
            q, k = _factor(a1, b1, model.shape.width, heads, generator)
            block.query.weight.copy_(q.T)  # Linear computes x W^T: the query's map is W^T
            block.key.weight.copy_(k.T)
            v, o = _factor(a2, -b2, model.shape.width, heads, generator)
            block.value.weight.copy_(v.T)
            block.attention_output.weight.copy_(o)


def _factor(alpha: float, beta: float, width: int, heads: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A, B [width, width], block by head (A's columns, B's rows), with A_h B_h^T = alpha Z + beta I."""
    size = width // heads
    first, second = torch.zeros(width, width), torch.zeros(width, width)
    for h in range(heads):
        target = alpha * torch.randn(size, size, generator=generator) / math.sqrt(size) + beta * torch.eye(size)
        u, s, vh = torch.linalg.svd(target)
        part = slice(h * size, (h + 1) * size)
        first[part, part] = u * s.sqrt()
        second[part, part] = vh.T * s.sqrt()
    return first, second


SCHEMES = {s.name: s for s in (
    TransformerScheme("default", lambda model, generator: None, "as PyTorch builds the modules: Linear "
                      "U(-1/sqrt(fan_in), 1/sqrt(fan_in)), Embedding N(0, 1), norm gain 1",
                      "torch.nn's reset_parameters", on_default=True),
    TransformerScheme("gpt2", _rule(_gpt2), "N(0, 0.02); attention and MLP output projections N(0, 0.02/sqrt(2L)); "
                      "biases 0", "nanoGPT model.py (GPT._init_weights and the c_proj scaling), after GPT-2"),
    TransformerScheme("megatron_normal", _rule(lambda role, tensor, model: 0.02),
                      "N(0, 0.02) for every weight; biases 0", "Megatron-LM / GPT-NeoX init_functions.py "
                      "init_method_normal"),
    TransformerScheme("small_init", _rule(_small), "N(0, sqrt(2/(5d))) for every weight; biases 0",
                      "Nguyen & Salazar 2019, Transformers without Tears; GPT-NeoX small_init_init_method"),
    TransformerScheme("wang_init", _rule(_wang), "small_init, and output projections N(0, 2/(L sqrt(d))); biases 0",
                      "GPT-NeoX init_functions.py wang_init_method (after Ben Wang's Mesh Transformer JAX)"),
    TransformerScheme("mitchell", _rule(_mitchell, cut=True), "N(0, 1/sqrt(d)) cut at 3 stds; attention output "
                      "1/sqrt(2d(l+1)), MLP output 1/sqrt(2 d_ff (l+1)) in block l; biases 0",
                      "OLMo model.py (InitFnType.mitchell, after Mitchell Wortsman)"),
    TransformerScheme("full_megatron", _rule(_full_megatron, cut=True), "N(0, 0.02) cut at 3 stds; output "
                      "projections 0.02/sqrt(2L); the head d^-1/2; biases 0",
                      "OLMo model.py (InitFnType.full_megatron)"),
    TransformerScheme("zero_proj", _rule(_zero_proj, on_default=True),
                      "PyTorch's default, and attention and MLP output projections 0",
                      "modded-nanogpt (output projections zero-initialized)", on_default=True),
    TransformerScheme("small_embedding", _rule(lambda role, tensor, model: None, on_default=True,
                                               embedding=_small_embedding),
                      "PyTorch's default, and the token embedding U(-1e-4, 1e-4)",
                      "Peng et al. 2023, RWKV (SmallInitEmb)", on_default=True),
    TransformerScheme("t_fixup", _rule(_scaled(_xavier, T_FIXUP_SCALED, t_fixup_scale)),
                      "Xavier normal, embeddings N(0, d^-1/2); token embedding, value, attention output and MLP "
                      "weights times (6L)^-1/4 (a decoder with self-attention only); biases 0",
                      "Huang et al. 2020, Improving Transformer Optimization Through Better Initialization "
                      "(the authors' fairseq scale_init: (3 x attentions x L)^-1/4)"),
    TransformerScheme("deepnorm", _rule(_scaled(_xavier, DEEPNORM_SCALED, deepnorm_beta)),
                      "Xavier normal; value, attention output and MLP weights times beta = (8L)^-1/4, the network's "
                      "residual alpha (2L)^1/4 (post-LN); biases 0",
                      "Wang et al. 2022, DeepNet: Scaling Transformers to 1,000 Layers (decoder-only)"),
    TransformerScheme("mimetic", _mimetic, "gpt2, then per head W_q W_k^T = 0.7 Z + 0.7 I and W_v W_o = "
                      "0.4 Z - 0.4 I, Z ~ N(0, 1/d_head)",
                      "Trockman & Kolter 2023, Mimetic Initialization of Self-Attention Layers"),
)}
SCHEMES["scaled_normal"] = SCHEMES["gpt2"]  # GPT-NeoX's name for the same rule (scaled_init_method_normal)


def initialize_(model: GPT, scheme: str, generator: torch.Generator) -> None:
    """Fill ``model`` by ``scheme`` from ``generator``, in the state dict's order."""
    SCHEMES[scheme].fill(model, generator)
