"""Dropout masks for a group of models, each drawn from the model's own generator: both
engines draw training masks, and --lesson-eval's evaluation masks, through them, and give
them to the network's ``forward``."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.profiler import record_function

# The profiler scope of drawing a block of masks, where ``initbench bench --breakdown``
# finds its time (entered once per block: about a microsecond when no profiler runs).
DRAWING_SCOPE = "initbench.dropout_masks"
MASK_BLOCK = 16  # training steps of dropout masks drawn per generator call
EVAL_CHUNK = 2_000  # images per evaluation pass (both engines; --lesson-eval draws a mask per chunk)


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
            with record_function(DRAWING_SCOPE):
                self._draw(min(self.block, self.n_batches - step))
        return [block[:, t] for block in self.blocks]

    def _draw(self, steps: int) -> None:
        for i, generator in enumerate(self.generators):
            for block, bits in zip(self.blocks, self.bits):
                out = block[i, :steps]
                fields = bits.random_(generator=generator).view(torch.int16)[:out.numel()].view(out.shape)
                torch.ge(fields.bitwise_and_(0x7FFF), self.threshold, out=out).mul_(self.scale)

    @classmethod
    def for_evaluation(cls, p: float, hidden: tuple[int, ...], generators: list[torch.Generator],
                       device: torch.device) -> DropoutMasks:
        """Masks for evaluating with dropout left on (the lesson's way): ``at(0)`` draws a
        fresh mask of EVAL_CHUNK rows per call, so one is drawn for every chunk evaluated."""
        return cls(p, hidden, EVAL_CHUNK, 1, generators, device, block=1)
