"""The scheme registry: a name -> a function that initializes one Linear layer.

Every scheme is a plain in-place function ``fn(weight, bias, generator, ...)``
(named like ``torch.nn.init``'s functions, with a trailing underscore) whose
docstring states its formula and a reference on lines that begin with
``Formula:`` and ``Reference:``; ``register`` reads them from there, so the
docstring is the one place they are written. Adding a scheme is one decorated
function.

Keyword parameters after ``generator`` are the scheme's own, set from its name:
``uniform:-0.1,0.1`` calls ``uniform_(..., low=-0.1, high=0.1)``. A parameter
called ``activation_gain`` is not set that way: it receives the gain of the
network's activation (``torch.nn.init.calculate_gain``; GELU, which it does not
know, gets ReLU's).

Every name follows one convention (``Scheme.convention``): "lesson" (the
lesson's own baselines), "torch" (``torch.nn.init``'s definition), "keras"
(``keras.initializers``' definition, whatever the activation, with Dense's zero
bias) or "paper" (no framework defines it). A Keras name means Keras's
initializer: ``he_normal``, ``glorot_normal`` and ``lecun_normal`` are their own
schemes (truncated normals, through ``variance_scaling_``, as Keras's
VarianceScaling); where Keras's initializer equals a scheme already here
(``glorot_uniform`` is ``xavier_uniform``), its names are ``ALIASES``.

All randomness comes from the ``generator`` argument, never from torch's
global generator, so a model's initial weights depend only on its own seed.

torch is imported inside the few functions that call it, not at the top: the
command line names and checks schemes before any work, and importing torch
would make every typo cost two seconds.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from initbench.errors import UsageError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

InitFn = Callable[..., None]
GAIN = {"relu": math.sqrt(2.0), "tanh": 5.0 / 3, "sigmoid": 1.0, "gelu": math.sqrt(2.0), "selu": 0.75}
BIAS_POLICIES = ("scheme", "zeros", "default")
CONVENTIONS = ("lesson", "torch", "keras", "paper")
# Keras's names (keras/src/initializers/__init__.py: class names, their snake_case
# and its own aliases) for schemes registered here that equal Keras's initializer
# with its defaults. Every alias follows the "keras" convention. Keras's "uniform"
# and "normal" (RandomUniform, RandomNormal) are not here: those names keep the
# lesson's meaning. An alias takes its scheme's parameters: Constant:0.5.
ALIASES = {
    "zero": "zeros", "Zeros": "zeros",
    "one": "ones", "Ones": "ones",
    "Constant": "constant",
    "random_uniform": "uniform:-0.05,0.05", "RandomUniform": "uniform:-0.05,0.05",  # minval, maxval defaults
    "random_normal": "normal:0.05", "RandomNormal": "normal:0.05",  # stddev default
    "truncated_normal": "trunc_normal:0.05", "TruncatedNormal": "trunc_normal:0.05",  # cut at 2 stddev
    "glorot_uniform": "xavier_uniform", "GlorotUniform": "xavier_uniform",
    "GlorotNormal": "glorot_normal",
    "HeUniform": "he_uniform",
    "HeNormal": "he_normal",
    "LecunUniform": "lecun_uniform",
    "LecunNormal": "lecun_normal",
    "Orthogonal": "orthogonal", "OrthogonalInitializer": "orthogonal", "orthogonal_initializer": "orthogonal",
}
ALIAS_CONVENTION = "keras"
FLOAT32_MAX = 3.4028234663852886e38  # weights are float32: a larger "finite" value would be inf
# Each scheme parameter: the values it may take, what it means and its range in words.
_FLOAT32 = "a finite float32 number (at most 3.4e38 in size)"
PARAMETERS: dict[str, tuple[Callable[[float], bool], str, str]] = {
    "value": (lambda v: abs(v) <= FLOAT32_MAX, "the weight every unit gets", _FLOAT32),
    "low": (lambda v: abs(v) <= FLOAT32_MAX, "the lower end of the range", _FLOAT32),
    "high": (lambda v: abs(v) <= FLOAT32_MAX, "the upper end of the range", _FLOAT32),
    "std": (lambda v: 0 < v <= FLOAT32_MAX, "the standard deviation", "a finite number above 0"),
    "gain": (lambda v: 0 < v <= FLOAT32_MAX, "the factor the weights are scaled by", "a finite number above 0"),
    "sparsity": (lambda v: 0 <= v < 1, "the fraction of each column's weights set to 0",
                 "from 0 up to (not including) 1"),
}
KERAS_TRUNCATED_STD = 0.87962566103423978  # std of a standard normal cut at +-2, as Keras writes it


@dataclass(frozen=True)
class Scheme:
    name: str  # as it is keyed: "uniform", or with its parameters, "uniform:-0.1,0.1"
    init: InitFn  # fn(weight, bias, generator, activation_gain) with the scheme's own parameters bound
    summary: str
    formula: str
    reference: str
    params: tuple[str, ...] = ()  # the scheme's own parameters, in the order a name gives them
    data_dependent: bool = False  # rescaled on a batch of real data after init (LSUV)
    convention: str = "paper"  # whose definition the name follows: one of CONVENTIONS


_REGISTRY: dict[str, Scheme] = {}
_FUNCTIONS: dict[str, InitFn] = {}  # name -> the registered function, to bind parameters from a name


def register(name: str, convention: str = "paper", data_dependent: bool = False) -> Callable[[InitFn], InitFn]:
    """Add ``fn`` to the registry under ``name``, with its docstring's formula and reference
    and the convention (one of CONVENTIONS) whose definition it follows."""

    def add(fn: InitFn) -> InitFn:
        doc = inspect.getdoc(fn) or ""
        fields = {
            key: line.split(":", 1)[1].strip()
            for line in doc.splitlines()
            for key in ("Formula", "Reference")
            if line.startswith(key + ":")
        }
        if name in _REGISTRY or name in ALIASES or set(fields) != {"Formula", "Reference"}:
            raise ValueError(f"scheme {name!r}: duplicate name or docstring without Formula:/Reference:")
        if convention not in CONVENTIONS:
            raise ValueError(f"scheme {name!r}: convention must be one of {', '.join(CONVENTIONS)}")
        params = tuple(p for p in list(inspect.signature(fn).parameters)[3:] if p != "activation_gain")
        _FUNCTIONS[name] = fn
        _REGISTRY[name] = Scheme(name, _with_gain(fn), doc.splitlines()[0], fields["Formula"], fields["Reference"],
                                 params, data_dependent, convention)
        return fn

    return add


def _with_gain(fn: InitFn, **params: float) -> InitFn:
    """fn as (weight, bias, generator, activation_gain), whether or not it uses the gain."""
    if "activation_gain" in inspect.signature(fn).parameters:
        return lambda weight, bias, generator, activation_gain: fn(
            weight, bias, generator, activation_gain=activation_gain, **params)
    return lambda weight, bias, generator, activation_gain: fn(weight, bias, generator, **params)


def names() -> list[str]:
    return list(_REGISTRY)


def catalogue() -> list[dict]:
    """Every scheme with how to write it, its convention, its aliases (each with the
    name it equals and its convention), summary, formula and reference."""
    aliases: dict[str, list[dict]] = {}
    for alias, target in ALIASES.items():
        aliases.setdefault(target.partition(":")[0], []).append(
            {"name": alias, "equals": target, "convention": ALIAS_CONVENTION})
    return [{"name": s.name, "usage": usage(s), "convention": s.convention, "aliases": aliases.get(s.name, []),
             "summary": s.summary, "formula": s.formula, "reference": s.reference, "data_dependent": s.data_dependent}
            for s in _REGISTRY.values()]


def _required(name: str) -> list[str]:
    return [p.name for p in inspect.signature(_FUNCTIONS[name]).parameters.values()
            if p.kind == p.KEYWORD_ONLY and p.default is p.empty and p.name != "activation_gain"]


def usage(scheme: Scheme) -> str:
    """How a scheme is written with its parameters: "uniform[:LOW,HIGH]", "constant:VALUE"."""
    name = scheme.name.partition(":")[0]
    if not scheme.params:
        return name
    params = ",".join(p.upper() for p in scheme.params)
    return f"{name}:{params}" if _required(name) else f"{name}[:{params}]"


def get(spec: str) -> Scheme:
    """The scheme a name stands for: a registered name, ``name:p1,p2`` to set its
    parameters, or an alias (``Constant:0.5`` sets the parameters of the scheme it names).
    An unknown name names the closest match and the valid ones."""
    given = spec
    name, _, args = spec.partition(":")
    if name in ALIASES:
        target = ALIASES[name]
        spec = f"{target.partition(':')[0]}:{args}" if args else target
        name, _, args = spec.partition(":")
    if name not in _REGISTRY:
        known = [*_REGISTRY, *ALIASES]
        lower = {k.lower(): k for k in reversed(known)}  # HENORMAL -> HeNormal; zeros before Zeros
        close = (difflib.get_close_matches(name, known, n=1, cutoff=0.5)
                 or [lower[k] for k in difflib.get_close_matches(name.lower(), lower, n=1, cutoff=0.5)])
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"Unknown scheme {name!r}.{hint} Valid schemes: {', '.join(_REGISTRY)}. "
                             f"Keras's names are accepted too: {', '.join(ALIASES)}. "
                             "`initbench schemes` lists them all with their formulas.")
    scheme = _REGISTRY[name]
    required = _required(name)
    if not args and not required:
        return scheme
    try:
        values = [float(a) for a in args.split(",")] if args else []
    except ValueError:
        values = []
    if not scheme.params:
        raise UsageError(f"Scheme {name!r} takes no parameters (got {given!r}).")
    if not len(required) <= len(values) <= len(scheme.params) or not values:
        raise UsageError(f"Bad parameters in scheme {given!r}: write {usage(scheme)}, with numbers.")
    params = dict(zip(scheme.params, values))
    _check_parameters(given, params)
    bound = _with_gain(_FUNCTIONS[name], **params)
    return Scheme(spec, bound, scheme.summary, scheme.formula, scheme.reference, scheme.params, scheme.data_dependent,
                  scheme.convention)


def _check_parameters(spec: str, params: dict[str, float]) -> None:
    """Refuse, when the name is parsed, a parameter outside its range (before any training)."""
    for param, value in params.items():
        valid, meaning, allowed = PARAMETERS[param]
        if not valid(value):
            raise UsageError(f"Bad parameter in scheme {spec!r}: {param} ({meaning}) must be {allowed}; "
                                 f"got {value:g}.")
    if "low" in params and "high" in params and not params["low"] < params["high"]:
        raise UsageError(f"Bad parameters in scheme {spec!r}: low must be below high "
                             f"(got low {params['low']:g}, high {params['high']:g}).")


def _fan_in(weight: Tensor) -> int:
    return weight[0].numel()


def _fan_out(weight: Tensor) -> int:
    return weight.shape[0] * weight[0, 0].numel()


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


@register("uniform", "lesson")
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
def default_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """PyTorch's own nn.Linear.reset_parameters(), drawn from the given generator.

    kaiming_uniform_ with a = sqrt(5) gives bound sqrt(6 / ((1 + a^2) fan_in)) =
    1/sqrt(fan_in); unlike ``rule`` the bias is random too.

    Formula: W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    Reference: torch.nn.Linear.reset_parameters (kaiming_uniform_ with a=sqrt(5))
    """
    from torch.nn import init

    init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(_fan_in(weight))
    init.uniform_(bias, -bound, bound, generator=generator)


@register("xavier_uniform", "torch")
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


@register("sparse", "torch")
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

    # As torch.nn.init.sparse_, whose choice of zeros ignores `generator` (torch 2.14).
    weight.normal_(0.0, 0.01, generator=generator)
    n_zeros = math.ceil(sparsity * weight.shape[0])
    rows = torch.rand(weight.shape, generator=generator).argsort(0)[:n_zeros]
    weight.scatter_(0, rows, 0.0)
    bias.zero_()


@register("lsuv", "paper", data_dependent=True)
def lsuv_orthogonal_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Layer-sequential unit variance: orthogonal, then each layer rescaled on a real batch.

    The only data-dependent scheme: after this orthogonal start, each layer's
    weights are divided by the std of its output on 500 training images until
    that variance is 1 +- 0.1 (at most 10 times), first layer first.

    Formula: W = Q (orthogonal), then W <- W / sqrt(Var(W x + b)) layer by layer on a batch; b = 0
    Reference: Mishkin & Matas 2016, "All you need is a good init"
    """
    from torch.nn import init

    init.orthogonal_(weight, generator=generator)
    bias.zero_()
