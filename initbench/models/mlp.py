"""The lesson's network: an MLP of Linear layers with an activation (ReLU by default)
and dropout between them (masks given to ``forward``: see ``dropout.py``). Its ``wiring``
says how each layer's output is passed on; a network of the same chain of Linear layers
wired otherwise (``resmlp.py``: residual blocks) is a subclass that changes only that, and
both engines follow it (the batched one reads it to write out its forward and backward)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from initbench.settings import NetworkSettings


def identity(x: Tensor) -> Tensor:
    """The linear activation (deep linear networks: Saxe et al. 2014)."""
    return x


ACTIVATION_FNS = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu, "selu": F.selu,
                  "linear": identity}


class Wiring(NamedTuple):
    """How one layer's output is passed on, in this order: through the activation, times
    one of ``forward``'s dropout masks (its index), plus the input of an earlier layer
    (``skip``: the layer closes a residual branch that began there; such a layer is
    neither activated nor masked, so its output's gradient is the branch's and the skip's alike)."""

    activated: bool = False
    mask: int | None = None
    skip: int | None = None


class MLP(nn.Module):
    """inputs -> hidden... -> classes, the activation after each hidden layer, then dropout.
    Its state dict's keys are ``layers.<i>.weight`` ([out, in]) and ``layers.<i>.bias``."""

    def __init__(self, inputs: int, hidden: tuple[int, ...], activation: str, classes: int) -> None:
        super().__init__()
        sizes = (inputs, *hidden, classes)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.activation = ACTIVATION_FNS[activation]

    @property
    def wiring(self) -> tuple[Wiring, ...]:
        """Per layer: each hidden layer's output activated, then masked (mask i after hidden
        layer i); the output layer's passed on as it is (the logits)."""
        return (*(Wiring(activated=True, mask=i) for i in range(len(self.layers) - 1)), Wiring())

    @property
    def sizes(self) -> tuple[int, ...]:
        """The layer sizes, inputs first: (784, 256, 128, 10)."""
        return (self.layers[0].in_features, *(layer.out_features for layer in self.layers))

    @torch.no_grad()
    def load_layers_(self, layers: Sequence[tuple[Tensor, Tensor]]) -> None:
        """Copy (weight, bias) pairs into the lowest ``len(layers)`` layers, bit for bit."""
        for layer, (weight, bias) in zip(self.layers, layers):
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)

    def forward(self, x: Tensor, masks: list[Tensor] | None = None) -> Tensor:
        """``masks``: the dropout masks ``wiring`` names (values 0 or 1/(1-p)), or None."""
        inputs = []
        for layer, wiring in zip(self.layers, self.wiring):
            inputs.append(x)
            x = layer(x)
            if wiring.activated:
                x = self.activation(x)
            if masks is not None and wiring.mask is not None:
                x = x * masks[wiring.mask][..., :len(x), :]
            if wiring.skip is not None:
                x = inputs[wiring.skip] + x
        return x


def build(settings: NetworkSettings, inputs: int, classes: int) -> MLP:
    return MLP(inputs, settings.hidden, settings.activation, classes)

