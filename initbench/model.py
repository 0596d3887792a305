"""The lesson's network: an MLP of Linear layers with an activation (ReLU by default)
and dropout between them, and the dropout masks each model draws from its own generator."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

N_INPUTS = 28 * 28
N_CLASSES = 10  # FashionMNIST's; a model for a subset of them (--classes) has fewer outputs
MASK_BLOCK = 16  # training steps of dropout masks drawn per generator call
EVAL_CHUNK = 2_000  # images per evaluation pass (both engines; --lesson-eval draws a mask per chunk)
ACTIVATION_FNS = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu, "selu": F.selu}


class MLP(nn.Module):
    """784 -> hidden... -> classes, the activation after each hidden layer, then dropout.
    Its state dict's keys are ``layers.<i>.weight`` ([out, in]) and ``layers.<i>.bias``."""

    def __init__(self, hidden: tuple[int, ...], activation: str = "relu", n_classes: int = N_CLASSES) -> None:
        super().__init__()
        sizes = (N_INPUTS, *hidden, n_classes)
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


class DropoutMasks:
    """Dropout masks for a group of models, drawn from each model's own generator.

    Every MASK_BLOCK steps, each model refills its block of masks ([steps, batch,
    units] per hidden layer, layer after layer) from its generator, so a model's
    masks depend on nothing but its generator and settings: the same in either
    engine and whatever models share its group. Values are 0 or 1/(1-p), like
    F.dropout's. Random draws are the cost here, so each 64-bit draw makes four
    masks from four 15-bit fields (random_() fills 63 bits): a unit is dropped
    when its field is below round(p * 2^15), so p is honoured to within 2^-16.
    """

    def __init__(self, p: float, hidden: tuple[int, ...], batch_size: int, n_batches: int,
                 generators: list[torch.Generator], device: torch.device, block: int = MASK_BLOCK) -> None:
        self.n_batches, self.generators, self.block = n_batches, generators, block
        self.threshold, self.scale = round(p * 2**15), 1.0 / (1.0 - p)
        self.blocks = [torch.empty(len(generators), block, batch_size, units, device=device) for units in hidden]
        self.bits = [torch.empty(-(-block[0].numel() // 4), dtype=torch.int64, device=device) for block in self.blocks]

    def at(self, step: int) -> list[Tensor]:
        """The masks of batch ``step`` of an epoch: per hidden layer, [models, batch, units]."""
        t = step % self.block
        if t == 0:
            steps = min(self.block, self.n_batches - step)
            for i, generator in enumerate(self.generators):
                for block, bits in zip(self.blocks, self.bits):
                    out = block[i, :steps]
                    fields = bits.random_(generator=generator).view(torch.int16)[:out.numel()].view(out.shape)
                    torch.ge(fields.bitwise_and_(0x7FFF), self.threshold, out=out).mul_(self.scale)
        return [block[:, t] for block in self.blocks]

    @classmethod
    def for_evaluation(cls, p: float, hidden: tuple[int, ...], generators: list[torch.Generator],
                       device: torch.device) -> DropoutMasks:
        """Masks for evaluating with dropout left on (the lesson's way): ``at(0)`` draws a
        fresh mask of EVAL_CHUNK rows per call, so one is drawn for every chunk evaluated."""
        return cls(p, hidden, EVAL_CHUNK, 1, generators, device, block=1)
