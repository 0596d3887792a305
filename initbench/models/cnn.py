"""A small convolutional network for square single-channel images (FashionMNIST's 28x28,
8x8 digits): two 5x5 convolutions, each followed by the activation and a 2x2 max-pool,
then fully connected hidden layers (``hidden``: 128 by default) and the output layer.

Images arrive as flat rows (``[N, side * side]``, as every dataset is loaded) and are
reshaped here. The convolutions pad to keep the image's side ("same"), so each pooling
halves it: 28 -> 14 -> 7, 8 -> 4 -> 2. Dropout masks (``dropout.py``, one per ``hidden``
width) apply after each fully connected hidden layer's activation, as in the MLP; the
convolutions take none (a mask per pixel and channel would be another kind of dropout).
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor, nn

from initbench.models import CNN_CHANNELS
from initbench.models.mlp import ACTIVATION_FNS, MLP

if TYPE_CHECKING:
    from initbench.settings import NetworkSettings

KERNEL = 5
POOL = 2


class CNN(nn.Module):
    """[N, side*side] -> conv 5x5 (16) -> pool -> conv 5x5 (32) -> pool -> hidden... -> classes.
    Its state dict's keys are ``layers.<i>.weight`` and ``layers.<i>.bias``: kernels
    [out, in, 5, 5] for the two convolutions, [out, in] for the fully connected layers."""

    def __init__(self, side: int, hidden: tuple[int, ...], activation: str, classes: int) -> None:
        super().__init__()
        self.side = side
        channels = (1, *CNN_CHANNELS)
        convolutions = [nn.Conv2d(a, b, KERNEL, padding="same") for a, b in pairwise(channels)]
        pooled = side
        for _ in convolutions:
            pooled //= POOL
        sizes = (channels[-1] * pooled * pooled, *hidden, classes)
        self.layers = nn.ModuleList([*convolutions, *(nn.Linear(a, b) for a, b in pairwise(sizes))])
        self.convolutions = len(convolutions)
        self.activation = ACTIVATION_FNS[activation]

    # Copies (weight, bias) pairs into the lowest layers, bit for bit: the MLP's, which reads only ``layers``.
    load_layers_ = MLP.load_layers_

    def forward(self, x: Tensor, masks: list[Tensor] | None = None) -> Tensor:
        """``masks``: one dropout mask per fully connected hidden layer (values 0 or 1/(1-p)), or None."""
        x = x.view(len(x), 1, self.side, self.side)
        for layer in self.layers[:self.convolutions]:
            x = F.max_pool2d(self.activation(layer(x)), POOL)
        x = x.flatten(1)
        *hidden, last = self.layers[self.convolutions:]
        for i, layer in enumerate(hidden):
            x = self.activation(layer(x))
            if masks is not None:
                x = x * masks[i][..., :len(x), :]
        return last(x)


def build(settings: NetworkSettings, inputs: int, classes: int) -> CNN:
    side = math.isqrt(inputs)
    if side * side != inputs:  # config refuses such a dataset in words first (models.square_images)
        raise ValueError(f"cnn takes square images, not rows of {inputs} values")
    return CNN(side, settings.hidden, settings.activation, classes)
