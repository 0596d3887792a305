"""The scheme registry: a name -> a function that initializes one Linear layer.

Every scheme is a plain in-place function ``fn(weight, bias, generator)``
(named like ``torch.nn.init``'s functions, with a trailing underscore) whose
docstring states its formula and a reference on lines that begin with
``Formula:`` and ``Reference:``; ``register`` reads them from there, so the
docstring is the one place they are written. Adding a scheme is one decorated
function.

All randomness comes from the ``generator`` argument, never from torch's
global generator, so a model's initial weights depend only on its own seed.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from initbench.errors import InitbenchError

InitFn = Callable[[Tensor, Tensor, torch.Generator | None], None]


@dataclass(frozen=True)
class Scheme:
    name: str
    init: InitFn
    summary: str
    formula: str
    reference: str


_REGISTRY: dict[str, Scheme] = {}


def register(name: str) -> Callable[[InitFn], InitFn]:
    """Add ``fn`` to the registry under ``name``, with its docstring's formula and reference."""

    def add(fn: InitFn) -> InitFn:
        doc = inspect.getdoc(fn) or ""
        fields = {
            key: line.split(":", 1)[1].strip()
            for line in doc.splitlines()
            for key in ("Formula", "Reference")
            if line.startswith(key + ":")
        }
        if name in _REGISTRY or set(fields) != {"Formula", "Reference"}:
            raise ValueError(f"scheme {name!r}: duplicate name or docstring without Formula:/Reference:")
        _REGISTRY[name] = Scheme(name, fn, doc.splitlines()[0], fields["Formula"], fields["Reference"])
        return fn

    return add


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> Scheme:
    """The scheme called ``name``; an unknown name names the closest match and every valid one."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, _REGISTRY, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise InitbenchError(f"Unknown scheme {name!r}.{hint} Valid schemes: {', '.join(_REGISTRY)}.")


@torch.no_grad()
def init_linear(layer: nn.Linear, scheme: Scheme, generator: torch.Generator | None) -> None:
    scheme.init(layer.weight, layer.bias, generator)


def _fan_in(weight: Tensor) -> int:
    return weight[0].numel()


@register("zeros")
def zeros_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Every weight 0: all units of a layer compute the same thing (the symmetry problem).

    Formula: W = 0; b = 0
    Reference: the lesson's constant_weight=0; torch.nn.init.zeros_
    """
    weight.zero_()
    bias.zero_()


@register("ones")
def ones_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Every weight 1: symmetric like zeros, and the activations grow with every layer.

    Formula: W = 1; b = 0
    Reference: the lesson's constant_weight=1; torch.nn.init.ones_
    """
    weight.fill_(1.0)
    bias.zero_()


@register("uniform")
def uniform_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Uniform on [0, 1): random, but all positive and far too large for wide layers.

    Formula: W ~ U[0, 1); b = 0
    Reference: the lesson's uniform baseline; torch.nn.init.uniform_
    """
    weight.uniform_(0.0, 1.0, generator=generator)
    bias.zero_()


@register("centered")
def centered_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Uniform on [-0.5, 0.5): centred on zero, but its range ignores the layer's size.

    Formula: W ~ U[-0.5, 0.5); b = 0
    Reference: the lesson's centred uniform baseline
    """
    weight.uniform_(-0.5, 0.5, generator=generator)
    bias.zero_()


@register("rule")
def rule_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """The lesson's general rule: a uniform range that shrinks as the fan-in grows.

    Formula: W ~ U[-y, y), y = 1/sqrt(fan_in); b = 0
    Reference: the lesson's general rule; LeCun et al. 1998, "Efficient BackProp"
    """
    y = 1.0 / math.sqrt(_fan_in(weight))
    weight.uniform_(-y, y, generator=generator)
    bias.zero_()


@register("normal")
def normal_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """Normal with the general rule's scale as its standard deviation.

    Formula: W ~ N(0, std = 1/sqrt(fan_in)); b = 0
    Reference: the lesson's normal distribution; torch.nn.init.normal_
    """
    weight.normal_(0.0, 1.0 / math.sqrt(_fan_in(weight)), generator=generator)
    bias.zero_()


@register("default")
def default_(weight: Tensor, bias: Tensor, generator: torch.Generator | None = None) -> None:
    """PyTorch's own nn.Linear.reset_parameters(), drawn from the given generator.

    kaiming_uniform_ with a = sqrt(5) gives bound sqrt(6 / ((1 + a^2) fan_in)) =
    1/sqrt(fan_in); unlike ``rule`` the bias is random too.

    Formula: W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    Reference: torch.nn.Linear.reset_parameters (kaiming_uniform_ with a=sqrt(5))
    """
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(_fan_in(weight))
    nn.init.uniform_(bias, -bound, bound, generator=generator)
