"""A residual MLP without normalization: an input layer to the stream's width, blocks
``x + W2 φ(W1 x)``, and an output layer.

One block per ``hidden`` size, that size the block's inner width (W1's outputs), the
stream as wide as the first size (``--hidden 64x20``: width 64, 20 blocks of inner width
64; ``models.residual_widths``). Its layers are one chain of Linear layers, input
first: input, W1 and W2 of each block, output; so it is the MLP (the same state dict
keys, ``layers.<i>``, weights files and ``pretrained``) wired otherwise: the input layer
activated, each block's W1 activated and then masked by the block's dropout mask (mask i
of block i: ``dropout.py`` draws one per ``hidden`` size, as wide as the block's inner
width; dropout inside the block, as in wide residual networks, and none on the stream),
each W2 adding the block's input. The residual schemes (``fixup``, ``skipinit``) find the
blocks by ``wiring``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from initbench.models import residual_widths
from initbench.models.mlp import MLP, Wiring

if TYPE_CHECKING:
    from initbench.settings import NetworkSettings


class ResMLP(MLP):
    """inputs -> width -> blocks x + W2 φ(W1 x) -> classes (layers: input, W1, W2, ..., output)."""

    @property
    def wiring(self) -> tuple[Wiring, ...]:
        blocks = (len(self.layers) - 2) // 2
        inner = (wiring for k in range(blocks) for wiring in (Wiring(activated=True, mask=k), Wiring(skip=1 + 2 * k)))
        return Wiring(activated=True), *inner, Wiring()


def build(settings: NetworkSettings, inputs: int, classes: int) -> ResMLP:
    return ResMLP(inputs, residual_widths(settings), settings.activation, classes)
