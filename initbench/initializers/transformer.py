"""The initializations people use for transformers, per tensor role: per-layer schemes that
read the ``Layer`` record a gpt's layers carry (``part``: the tensor's role, ``block``,
``blocks``: L), so a user's own per-layer function can do what these do.

Most are a rule: the standard deviation of the normal a weight of a given role is drawn
from, in block l (0-based) of a network of L blocks and width d (cut at three standard
deviations where the source cuts it); biases start at 0 and norm gains at 1 (as a gpt is
built), except in those built on PyTorch's default (``zero_proj``, ``small_embedding``),
which keep its biases. T-Fixup and DeepNorm scale Xavier's draws; mimetic initialization
shapes each head's attention after drawing. Every docstring says where its formula comes
from; ``tests/test_transformer_schemes.py`` measures each, role by role. They fill the gpt
network only (``roles_only``): an MLP has no attention outputs to scale.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from initbench.initializers.layer import default_, xavier_normal_
from initbench.initializers.registry import InitContext, Layer, get, register

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

RESIDUAL_OUTPUTS = ("attention_output", "mlp_out")  # the weights whose outputs are added to the residual stream
CUT = 3.0  # a truncated normal's bounds, in standard deviations (OLMo's)
GPT2_STD = 0.02
# Mimetic initialization's (alpha, beta): W_q W_k^T ~ a1 Z + b1 I, and W_v W_o ~ a2 Z - b2 I (the paper's values).
MIMETIC = ((0.7, 0.7), (0.4, 0.4))
T_FIXUP_SCALED = ("token_embedding", "attention_value", "attention_output", "mlp_in", "mlp_out")
DEEPNORM_SCALED = ("attention_value", "attention_output", "mlp_in", "mlp_out")


def width(weight: Tensor, layer: Layer) -> int:
    """The model's width d, read from one of its weights: every weight [out, in] but the MLP's
    output (and the head's and embeddings' [tokens, d]) takes d inputs."""
    return weight.shape[0] if layer.part == "mlp_out" else weight.shape[1]


def _normal(weight: Tensor, bias: Tensor, generator: torch.Generator | None, std: float, cut: bool = False) -> None:
    """``weight`` from N(0, std) (cut at CUT stds when ``cut``; std 0: zeros), ``bias`` 0."""
    from torch.nn import init

    if std == 0:
        weight.zero_()
    elif cut:
        init.trunc_normal_(weight, 0.0, std, -CUT * std, CUT * std, generator=generator)
    else:
        weight.normal_(0.0, std, generator=generator)
    bias.zero_()


def gpt2_std(layer: Layer) -> float:
    return GPT2_STD / math.sqrt(2 * layer.blocks) if layer.part in RESIDUAL_OUTPUTS else GPT2_STD


@register("gpt2", "paper", roles_only=True)
def gpt2_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *, layer: Layer) -> None:
    """GPT-2's start, as nanoGPT writes it: small normals, residual projections scaled by depth.

    Formula: W ~ N(0, 0.02); attention and MLP output projections W ~ N(0, 0.02/sqrt(2L)); b = 0
    Reference: nanoGPT model.py (GPT._init_weights and the c_proj scaling), after Radford et al. 2019
    """
    _normal(weight, bias, generator, gpt2_std(layer))


@register("scaled_normal", "paper", roles_only=True)
def scaled_normal_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *, layer: Layer) -> None:
    """GPT-NeoX's name for gpt2's rule (the same numbers).

    Formula: W ~ N(0, 0.02); output projections W ~ N(0, 0.02/sqrt(2L)); b = 0
    Reference: GPT-NeoX megatron/model/init_functions.py (scaled_init_method_normal)
    """
    gpt2_(weight, bias, generator, layer=layer)


@register("megatron_normal", "paper")
def megatron_normal_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Megatron-LM's and GPT-NeoX's plain normal, every weight alike.

    Formula: W ~ N(0, 0.02) for every weight; b = 0
    Reference: GPT-NeoX megatron/model/init_functions.py (init_method_normal)
    """
    _normal(weight, bias, generator, GPT2_STD)


def small_std(weight: Tensor, layer: Layer) -> float:
    return math.sqrt(2 / (5 * width(weight, layer)))


@register("small_init", "paper", roles_only=True)
def small_init_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *, layer: Layer) -> None:
    """Nguyen and Salazar's small init: every weight's std set by the model's width.

    Formula: W ~ N(0, sqrt(2/(5d))) for every weight (d: the model's width); b = 0
    Reference: Nguyen & Salazar 2019, Transformers without Tears; GPT-NeoX small_init_init_method
    """
    _normal(weight, bias, generator, small_std(weight, layer))


@register("wang_init", "paper", roles_only=True)
def wang_init_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *, layer: Layer) -> None:
    """small_init, with the residual projections scaled by depth and width.

    Formula: W ~ N(0, sqrt(2/(5d))); output projections W ~ N(0, 2/(L sqrt(d))); b = 0
    Reference: GPT-NeoX init_functions.py wang_init_method (after Ben Wang's Mesh Transformer JAX)
    """
    std = (2 / (layer.blocks * math.sqrt(width(weight, layer))) if layer.part in RESIDUAL_OUTPUTS
           else small_std(weight, layer))
    _normal(weight, bias, generator, std)


@register("mitchell", "paper", roles_only=True)
def mitchell_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *, layer: Layer) -> None:
    """OLMo's mitchell init: 1/sqrt(d), the residual projections scaled by their block.

    Formula: W ~ N(0, 1/sqrt(d)) cut at 3 stds; attention output std 1/sqrt(2d(l+1)), MLP output 1/sqrt(2 d_ff (l+1)) in block l; b = 0
    Reference: OLMo olmo/model.py (InitFnType.mitchell, after Mitchell Wortsman)
    """
    if layer.part in RESIDUAL_OUTPUTS:  # fan-in: d for the attention output, d_ff for the MLP's
        std = 1 / math.sqrt(2 * weight.shape[1] * ((layer.block or 0) + 1))
    else:
        std = 1 / math.sqrt(width(weight, layer))
    _normal(weight, bias, generator, std, cut=True)


@register("full_megatron", "paper", roles_only=True)
def full_megatron_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *,
                   layer: Layer) -> None:
    """OLMo's full_megatron: Megatron's normal, cut, with a scaled head.

    Formula: W ~ N(0, 0.02) cut at 3 stds; output projections std 0.02/sqrt(2L); the head d^-1/2; b = 0
    Reference: OLMo olmo/model.py (InitFnType.full_megatron)
    """
    std = width(weight, layer) ** -0.5 if layer.part == "head" else gpt2_std(layer)
    _normal(weight, bias, generator, std, cut=True)


@register("zero_proj", "paper", roles_only=True)
def zero_proj_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *, layer: Layer) -> None:
    """PyTorch's default with every residual branch's output projection and the head at zero: each block starts as the identity, and the first prediction is uniform.

    Formula: PyTorch's default (W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), embeddings N(0, 1)); attention and MLP output projections and the head W = 0
    Reference: modded-nanogpt train_gpt.py (c_proj and lm_head zero-initialized)
    """
    default_(weight, bias, generator, layer=layer)
    if layer.part in (*RESIDUAL_OUTPUTS, "head"):
        weight.zero_()


@register("small_embedding", "paper", roles_only=True)
def small_embedding_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *,
                     layer: Layer) -> None:
    """PyTorch's default with a tiny token embedding (SmallInitEmb).

    Formula: PyTorch's default (W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), embeddings N(0, 1)); the token embedding W ~ U(-1e-4, 1e-4)
    Reference: Peng et al. 2023, RWKV: Reinventing RNNs for the Transformer Era (SmallInitEmb)
    """
    if layer.part == "token_embedding":
        weight.uniform_(-1e-4, 1e-4, generator=generator)
    else:
        default_(weight, bias, generator, layer=layer)


def t_fixup_scale(blocks: int) -> float:
    """T-Fixup's factor for a decoder of ``blocks`` layers with self-attention only: (6L)^-1/4."""
    return (6 * blocks) ** -0.25


def deepnorm_beta(blocks: int) -> float:
    """DeepNet's beta for a decoder of ``blocks`` layers: (8L)^-1/4."""
    return (8 * blocks) ** -0.25


def deepnorm_alpha(blocks: int) -> float:
    """DeepNet's alpha for a decoder (the network's --residual-scale): (2L)^1/4."""
    return (2 * blocks) ** 0.25


def _xavier_scaled(weight: Tensor, bias: Tensor, generator: torch.Generator | None, layer: Layer,
                   factor: float) -> None:
    """Xavier's normal (an embedding N(0, d^-1/2)), times ``factor``; biases 0."""
    if layer.kind == "embedding":
        _normal(weight, bias, generator, width(weight, layer) ** -0.5)
    else:
        xavier_normal_(weight, bias, generator)
    weight.mul_(factor)


@register("t_fixup", "paper", roles_only=True)
def t_fixup_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *, layer: Layer) -> None:
    """T-Fixup: Xavier, with the embedding, values, attention outputs and MLP scaled by depth (no warmup, no norm needed).

    Formula: W ~ N(0, 2/(fan_in + fan_out)) (Xavier), embeddings N(0, d^-1/2); token embedding, value, attention output and MLP weights times (6L)^-1/4; b = 0
    Reference: Huang et al. 2020, Improving Transformer Optimization Through Better Initialization (fairseq scale_init, self-attention only)
    """
    _xavier_scaled(weight, bias, generator, layer, t_fixup_scale(layer.blocks) if layer.part in T_FIXUP_SCALED else 1)


@register("deepnorm", "paper", roles_only=True)
def deepnorm_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *, layer: Layer) -> None:
    """DeepNorm's start: Xavier, with the values, attention outputs and MLP scaled by beta (with --residual-scale alpha, post-LN).

    Formula: W ~ N(0, 2/(fan_in + fan_out)) (Xavier), embeddings N(0, d^-1/2); value, attention output and MLP weights times beta = (8L)^-1/4 (the network's alpha: (2L)^1/4); b = 0
    Reference: Wang et al. 2022, DeepNet: Scaling Transformers to 1,000 Layers (decoder-only)
    """
    _xavier_scaled(weight, bias, generator, layer, deepnorm_beta(layer.blocks) if layer.part in DEEPNORM_SCALED else 1)


@register("mimetic", "paper", whole_model=True, roles_only=True)
def mimetic(model: nn.Module, context: InitContext) -> list[str]:
    """Mimetic initialization: gpt2's draws, then each head's attention shaped like a trained one's.

    Per head W_q W_k^T = a1 Z + b1 I and W_v W_o = a2 Z - b2 I, with Z drawn N(0, 1/d_head) from the
    seed's stream (each product factored by its SVD, half the singular values each side).

    Formula: gpt2, then per head W_q W_k^T = 0.7 Z + 0.7 I and W_v W_o = 0.4 Z - 0.4 I, Z ~ N(0, 1/d_head)
    Reference: Trockman & Kolter 2023, Mimetic Initialization of Self-Attention Layers
    """
    import torch

    get("gpt2").initialize(model, context)  # every layer from its own stream, as gpt2 fills a gpt
    heads, (a1, b1), (a2, b2) = model.shape.heads, *MIMETIC
    with torch.no_grad():
        for block in model.blocks:
            q, k = _factor(a1, b1, model.shape.width, heads, context.generator)
            block.query.weight.copy_(q.T)  # Linear computes x W^T: the query's map is W^T
            block.key.weight.copy_(k.T)
            v, o = _factor(a2, -b2, model.shape.width, heads, context.generator)
            block.value.weight.copy_(v.T)
            block.attention_output.weight.copy_(o)
    return ["initialized by mimetic"] * len(model.layers)


def _factor(alpha: float, beta: float, size: int, heads: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A, B [size, size], block by head (A's columns, B's rows), with A_h B_h^T = alpha Z + beta I."""
    import torch

    part_size = size // heads
    first, second = torch.zeros(size, size), torch.zeros(size, size)
    for h in range(heads):
        target = (alpha * torch.randn(part_size, part_size, generator=generator) / math.sqrt(part_size)
                  + beta * torch.eye(part_size))
        u, s, vh = torch.linalg.svd(target)
        part = slice(h * part_size, (h + 1) * part_size)
        first[part, part] = u * s.sqrt()
        second[part, part] = vh.T * s.sqrt()
    return first, second
