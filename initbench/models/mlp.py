"""The lesson's network: an MLP of Linear layers with an activation (ReLU by default)
and dropout between them (masks given to ``forward``: see ``dropout.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from initbench.jobs import NetworkSettings

ACTIVATION_FNS = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu, "selu": F.selu}


class MLP(nn.Module):
    """inputs -> hidden... -> classes, the activation after each hidden layer, then dropout.
    Its state dict's keys are ``layers.<i>.weight`` ([out, in]) and ``layers.<i>.bias``."""

    def __init__(self, inputs: int, hidden: tuple[int, ...], activation: str, classes: int) -> None:
        super().__init__()
        sizes = (inputs, *hidden, classes)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.activation = ACTIVATION_FNS[activation]

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
        """``masks``: one dropout mask per hidden layer (values 0 or 1/(1-p)), or None."""
        *hidden, last = self.layers
        for i, layer in enumerate(hidden):
            x = self.activation(layer(x))
            if masks is not None:
                x = x * masks[i][..., :len(x), :]
        return last(x)


def build(settings: NetworkSettings, inputs: int, classes: int) -> MLP:
    return MLP(inputs, settings.hidden, settings.activation, classes)
