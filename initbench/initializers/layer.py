"""Per-layer schemes: plain in-place functions of one layer's weight and bias (a Linear
weight [out, in], or a convolution's kernel [out, in, k, k], its fans by torch's rules:
``registry.fan_in``), named like ``torch.nn.init``'s, each with its formula and reference
in its docstring (see registry.py). torch is imported inside the functions that need it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from initbench.errors import UsageError
from initbench.initializers.registry import (
    KERAS_TRUNCATED_STD,
    Layer,
    fan_in as _fan_in,
    fan_out as _fan_out,
    register,
)

if TYPE_CHECKING:
    import torch
    from torch import Tensor


def variance_scaling_(weight: Tensor, generator: torch.Generator | None, *, scale: float = 1.0,
                      mode: str = "fan_in", distribution: str = "truncated_normal") -> None:
    """Keras's VarianceScaling, in place on torch's [out, in] weight: variance scale/n with
    n = fan_in, fan_out or their mean (at least 1); "truncated_normal" draws a normal of std
    sqrt(scale/n)/0.8796... cut at 2 of those stds (so the result has the variance scale/n),
    "untruncated_normal" a plain normal, "uniform" U[-sqrt(3 scale/n), sqrt(3 scale/n)]."""
    fans = {"fan_in": _fan_in(weight), "fan_out": _fan_out(weight),
            "fan_avg": (_fan_in(weight) + _fan_out(weight)) / 2.0}
    n = max(1.0, fans[mode])
    if distribution == "truncated_normal":
        from torch.nn import init

        std = math.sqrt(scale / n) / KERAS_TRUNCATED_STD
        init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std, generator=generator)
    elif distribution == "untruncated_normal":
        weight.normal_(0.0, math.sqrt(scale / n), generator=generator)
    elif distribution == "uniform":
        limit = math.sqrt(3.0 * scale / n)
        weight.uniform_(-limit, limit, generator=generator)
    else:
        raise ValueError(f"distribution {distribution!r}: one of truncated_normal, untruncated_normal, uniform")


@register("zeros", "lesson")
def zeros_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Every weight 0: all units of a layer compute the same thing (the symmetry problem).

    Formula: W = 0; b = 0
    Reference: the lesson's constant_weight=0; torch.nn.init.zeros_; keras.initializers.Zeros
    """
    weight.zero_()
    bias.zero_()


@register("ones", "lesson")
def ones_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Every weight 1: symmetric like zeros, and the activations grow with every layer.

    Formula: W = 1; b = 0
    Reference: the lesson's constant_weight=1; torch.nn.init.ones_; keras.initializers.Ones
    """
    weight.fill_(1.0)
    bias.zero_()


@register("constant", "keras")
def constant_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *,
              value: float = 0.0) -> None:
    """Every weight the same value, 0 as Keras's Constant() by default; constant:0.5 sets it.

    Formula: W = value (default 0); b = 0
    Reference: keras.initializers.Constant (value=0.0); torch.nn.init.constant_
    """
    weight.fill_(value)
    bias.zero_()


@register("uniform", "lesson", uniform_width=lambda low, high: high - low)
def uniform_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *,
             low: float = 0.0, high: float = 1.0) -> None:
    """Uniform on [low, high), by default [0, 1): the lesson's all-positive baseline.

    Keras reads "uniform" as RandomUniform, U[-0.05, 0.05); here it keeps the
    lesson's meaning, and Keras's is random_uniform.

    Formula: W ~ U[low, high) (default U[0, 1)); b = 0
    Reference: the lesson's uniform baseline; torch.nn.init.uniform_ (Keras's "uniform" is random_uniform here)
    """
    weight.uniform_(low, high, generator=generator)
    bias.zero_()


@register("centered", "lesson")
def centered_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Uniform on [-0.5, 0.5): centred on zero, but its range ignores the layer's size.

    Formula: W ~ U[-0.5, 0.5); b = 0
    Reference: the lesson's centred uniform baseline
    """
    weight.uniform_(-0.5, 0.5, generator=generator)
    bias.zero_()


@register("rule", "lesson")
def rule_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """The lesson's general rule: a uniform range that shrinks as the fan-in grows.

    Formula: W ~ U[-y, y), y = 1/sqrt(fan_in); b = 0
    Reference: the lesson's general rule; LeCun et al. 1998, "Efficient BackProp"
    """
    y = 1.0 / math.sqrt(_fan_in(weight))
    weight.uniform_(-y, y, generator=generator)
    bias.zero_()


@register("normal", "lesson")
def normal_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *,
            std: float | None = None) -> None:
    """Normal with the general rule's scale as its standard deviation, or a given one (normal:0.05).

    Keras reads "normal" as RandomNormal, N(0, 0.05^2); here it keeps the
    lesson's meaning, and Keras's is random_normal.

    Formula: W ~ N(0, std^2), std = 1/sqrt(fan_in) unless given; b = 0
    Reference: the lesson's normal distribution; torch.nn.init.normal_ (Keras's "normal" is random_normal here)
    """
    weight.normal_(0.0, 1.0 / math.sqrt(_fan_in(weight)) if std is None else std, generator=generator)
    bias.zero_()


@register("default", "torch")
def default_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *,
             layer: Layer | None = None) -> None:
    """PyTorch's own nn.Linear.reset_parameters(), drawn from the given generator.

    kaiming_uniform_ with a = sqrt(5) gives bound sqrt(6 / ((1 + a^2) fan_in)) =
    1/sqrt(fan_in); unlike ``rule`` the bias is random too. An embedding (a gpt's) is
    drawn as nn.Embedding.reset_parameters draws it.

    Formula: W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); an embedding N(0, 1)
    Reference: torch.nn.Linear.reset_parameters (kaiming_uniform_ with a=sqrt(5)); nn.Embedding's
    """
    from torch.nn import init

    if layer is not None and layer.kind == "embedding":
        init.normal_(weight, generator=generator)
        return

    init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(_fan_in(weight))
    init.uniform_(bias, -bound, bound, generator=generator)


@register("xavier_uniform", "torch", uniform_width=lambda gain: 2 * gain * math.sqrt(3))  # fan_in, fan_out >= 1
def xavier_uniform_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *,
                    gain: float = 1.0) -> None:
    """Glorot/Xavier uniform: keeps the variance of activations and gradients alike across layers.

    The paper derives it for activations linear around 0 (tanh), hence gain 1 by
    default; xavier_uniform:1.41 sets another gain. With gain 1 it is Keras's
    GlorotUniform (VarianceScaling(1.0, "fan_avg", "uniform")), hence the aliases.

    Formula: W ~ U[-a, a], a = gain * sqrt(6/(fan_in + fan_out)) (var = gain^2 * 2/(fan_in + fan_out)); b = 0
    Reference: Glorot & Bengio 2010, "Understanding the difficulty of training deep feedforward neural networks"; torch.nn.init.xavier_uniform_; keras.initializers.GlorotUniform (gain 1)
    """
    a = gain * math.sqrt(6.0 / (_fan_in(weight) + _fan_out(weight)))
    weight.uniform_(-a, a, generator=generator)
    bias.zero_()


@register("xavier_normal", "torch")
def xavier_normal_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *,
                   gain: float = 1.0) -> None:
    """Glorot/Xavier normal: the same variance as xavier_uniform, from a normal distribution.

    Formula: W ~ N(0, std^2), std = gain * sqrt(2/(fan_in + fan_out)); b = 0
    Reference: Glorot & Bengio 2010; torch.nn.init.xavier_normal_ (Keras's glorot_normal truncates: see glorot_normal)
    """
    weight.normal_(0.0, gain * math.sqrt(2.0 / (_fan_in(weight) + _fan_out(weight))), generator=generator)
    bias.zero_()


@register("glorot_normal", "keras")
def glorot_normal_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Keras's Glorot normal: xavier_normal's variance from a normal cut at 2 std.

    Formula: W ~ N(0, s^2) cut to [-2s, 2s], s = sqrt(2/(fan_in + fan_out)) / 0.8796 (var = 2/(fan_in + fan_out)); b = 0
    Reference: keras.initializers.GlorotNormal = VarianceScaling(1.0, "fan_avg", "truncated_normal"); Glorot & Bengio 2010
    """
    variance_scaling_(weight, generator, scale=1.0, mode="fan_avg", distribution="truncated_normal")
    bias.zero_()


@register("kaiming_uniform", "torch")
def kaiming_uniform_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *,
                     activation_gain: float) -> None:
    """He/Kaiming uniform: the variance that keeps ReLU activations from shrinking layer by layer.

    Formula: W ~ U[-a, a], a = gain * sqrt(3/fan_in) (var = gain^2/fan_in = 2/fan_in for ReLU; gain from --activation); b = 0
    Reference: He et al. 2015, "Delving Deep into Rectifiers"; torch.nn.init.kaiming_uniform_
    """
    a = activation_gain * math.sqrt(3.0 / _fan_in(weight))
    weight.uniform_(-a, a, generator=generator)
    bias.zero_()


@register("kaiming_normal", "torch")
def kaiming_normal_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *,
                    activation_gain: float) -> None:
    """He/Kaiming normal: the same variance as kaiming_uniform, from a normal distribution.

    Formula: W ~ N(0, std^2), std = gain/sqrt(fan_in) (= sqrt(2/fan_in) for ReLU; gain from --activation); b = 0
    Reference: He et al. 2015; torch.nn.init.kaiming_normal_ (Keras's he_normal truncates and ignores the activation: see he_normal)
    """
    weight.normal_(0.0, activation_gain / math.sqrt(_fan_in(weight)), generator=generator)
    bias.zero_()


@register("he_uniform", "keras")
def he_uniform_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Keras's He uniform: variance 2/fan_in whatever the activation (kaiming_uniform follows it).

    Formula: W ~ U[-a, a], a = sqrt(6/fan_in) (var = 2/fan_in; --activation ignored); b = 0
    Reference: keras.initializers.HeUniform = VarianceScaling(2.0, "fan_in", "uniform"); He et al. 2015
    """
    variance_scaling_(weight, generator, scale=2.0, mode="fan_in", distribution="uniform")
    bias.zero_()


@register("he_normal", "keras")
def he_normal_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Keras's He normal: variance 2/fan_in whatever the activation, from a normal cut at 2 std.

    Formula: W ~ N(0, s^2) cut to [-2s, 2s], s = sqrt(2/fan_in) / 0.8796 (var = 2/fan_in; --activation ignored); b = 0
    Reference: keras.initializers.HeNormal = VarianceScaling(2.0, "fan_in", "truncated_normal"); He et al. 2015
    """
    variance_scaling_(weight, generator, scale=2.0, mode="fan_in", distribution="truncated_normal")
    bias.zero_()


@register("lecun_uniform", "keras")
def lecun_uniform_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """LeCun uniform: unit-variance pre-activations for unit-variance inputs (SELU's choice).

    Formula: W ~ U[-a, a], a = sqrt(3/fan_in) (var = 1/fan_in); b = 0
    Reference: keras.initializers.LecunUniform = VarianceScaling(1.0, "fan_in", "uniform"); LeCun et al. 1998, "Efficient BackProp"; Klambauer et al. 2017 (SELU)
    """
    variance_scaling_(weight, generator, scale=1.0, mode="fan_in", distribution="uniform")
    bias.zero_()


@register("lecun_normal", "keras")
def lecun_normal_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Keras's LeCun normal: lecun_uniform's variance from a normal cut at 2 std.

    Formula: W ~ N(0, s^2) cut to [-2s, 2s], s = sqrt(1/fan_in) / 0.8796 (var = 1/fan_in); b = 0
    Reference: keras.initializers.LecunNormal = VarianceScaling(1.0, "fan_in", "truncated_normal"); LeCun et al. 1998; Klambauer et al. 2017 (SELU)
    """
    variance_scaling_(weight, generator, scale=1.0, mode="fan_in", distribution="truncated_normal")
    bias.zero_()


@register("orthogonal", "torch")
def orthogonal_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *,
                gain: float = 1.0) -> None:
    """A (semi-)orthogonal matrix, every singular value equal to gain (1 unless given: orthogonal:1.41).

    Gain 1 by default, as torch.nn.init.orthogonal_ and Keras's Orthogonal both
    define it (the activation's gain is not applied; write it, e.g. orthogonal:1.41
    for ReLU). The two draw the same distribution of matrices.

    Formula: W = gain * Q, gain = 1 unless given, Q from the QR decomposition of a standard normal matrix (Q Q^T = I or Q^T Q = I); b = 0
    Reference: Saxe et al. 2014, "Exact solutions to the nonlinear dynamics of learning in deep linear networks"; torch.nn.init.orthogonal_; keras.initializers.Orthogonal (gain=1.0)
    """
    from torch.nn import init

    init.orthogonal_(weight, gain=gain, generator=generator)
    bias.zero_()


@register("trunc_normal", "paper")
def trunc_normal_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *,
                  std: float = 0.02) -> None:
    """Normal with a small fixed std, cut at 2 std, as vision transformers are initialized.

    timm's own trunc_normal_ cuts at +-2 absolute, which at std 0.02 cuts nothing;
    here the cut is at 2 std, so the std that results is about 0.88 * std. With
    std 0.05 it is Keras's TruncatedNormal() (stddev 0.05, cut at 2 stddev, not
    rescaled), hence the aliases truncated_normal = trunc_normal:0.05.

    Formula: W ~ N(0, std^2) truncated to [-2 std, 2 std], std = 0.02; b = 0
    Reference: Dosovitskiy et al. 2021 (ViT); timm layers/weight_init.py trunc_normal_; keras.initializers.TruncatedNormal (std 0.05)
    """
    from torch.nn import init

    init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std, generator=generator)
    bias.zero_()


@register("sparse", "torch", matrices_only=True)
def sparse_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None, *,
            sparsity: float = 0.1) -> None:
    """Small normals, and in each column of W (one input's weights to every unit) a fraction set to zero.

    W is [out, in], so a column holds one input's outgoing weights: as in
    torch.nn.init.sparse_, every input reaches all but ceil(sparsity * out)
    units, and a unit's incoming weights hold a varying number of zeros
    (Martens fixes instead the count of each unit's nonzero incoming weights).

    Formula: W ~ N(0, 0.01^2), then in every column (one input's weights to all units) ceil(sparsity * fan_out) set to 0 (sparsity 0.1); b = 0
    Reference: torch.nn.init.sparse_; after Martens 2010, "Deep learning via Hessian-free optimization"
    """
    import torch

    if weight.dim() != 2:  # torch.nn.init.sparse_ too fills matrices only; config refuses such a network first
        raise UsageError(f"The scheme sparse fills matrices (Linear layers), not a convolution's kernel "
                         f"{list(weight.shape)}: give the convolutional network another scheme.")
    # As torch.nn.init.sparse_, whose choice of zeros ignores `generator` (torch 2.14).
    weight.normal_(0.0, 0.01, generator=generator)
    n_zeros = math.ceil(sparsity * weight.shape[0])
    rows = torch.rand(weight.shape, generator=generator).argsort(0)[:n_zeros]
    weight.scatter_(0, rows, 0.0)
    bias.zero_()
