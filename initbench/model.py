"""The lesson's network: an MLP of Linear layers with ReLU and dropout between them."""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from initbench.schemes import Scheme, init_linear

N_INPUTS = 28 * 28
N_CLASSES = 10


def dropout(x: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    """Inverted dropout like ``F.dropout``, but with masks from the model's own generator
    (``F.dropout`` only draws from the global one, which every model would share)."""
    keep = 1.0 - p
    return x * torch.empty_like(x).bernoulli_(keep, generator=generator).div_(keep)


class MLP(nn.Module):
    """784 -> hidden... -> 10, ReLU after each hidden layer, then dropout."""

    def __init__(self, hidden: tuple[int, ...], p_dropout: float) -> None:
        super().__init__()
        sizes = (N_INPUTS, *hidden, N_CLASSES)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.p_dropout = p_dropout

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        *hidden, last = self.layers
        for layer in hidden:
            x = F.relu(layer(x))
            if self.training and self.p_dropout > 0:
                x = dropout(x, self.p_dropout, generator)
        return last(x)


def build(hidden: tuple[int, ...], p_dropout: float, scheme: Scheme, generator: torch.Generator) -> MLP:
    """A fresh model on the CPU, every layer initialized by ``scheme`` from ``generator``
    (drawn on the CPU, so the initial weights are the same whatever the training device)."""
    model = MLP(hidden, p_dropout)
    for layer in model.layers:
        init_linear(layer, scheme, generator)
    return model
