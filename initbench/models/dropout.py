"""Dropout masks for a group of models, each drawn from its seed's generator: both engines
draw training masks, and --lesson-eval's evaluation masks, through them, and give them to
the network's ``forward``."""

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
    """Dropout masks for a group of models, drawn from their seeds' generators.

    Every MASK_BLOCK steps, each generator refills a block of masks ([steps, batch,
    units] per hidden layer, layer after layer), so a model's masks depend on nothing
    but its generator and settings: the same in either engine and whatever models share
    its group. Models of one seed share its generator (``rows``: each model's generator),
    so its masks are drawn once and copied to the others: every scheme of a seed drops
    the same units at the same step. Values are 0 or 1/(1-p), like
    F.dropout's. Random draws are the cost here, so each 64-bit draw makes four
    masks from four 15-bit fields (random_() fills 63 bits): a unit is dropped
    when its field is below round(p * 2^15), so p is honoured to within 2^-16.
    """

    def __init__(self, p: float, hidden: tuple[int, ...], batch_size: int, n_batches: int,
                 generators: list[torch.Generator], device: torch.device, block: int = MASK_BLOCK,
                 rows: list[int] | None = None) -> None:
        self.n_batches, self.generators, self.block = n_batches, generators, block
        rows = list(range(len(generators))) if rows is None else rows
        # Each generator draws into its first model's row; the other models of its seed copy that row.
        self.first = [rows.index(g) for g in range(len(generators))]
        copies = [(i, self.first[g]) for i, g in enumerate(rows) if i != self.first[g]]
        self.copies = [torch.tensor(c, dtype=torch.long, device=device) for c in zip(*copies)] if copies else None
        self.threshold, self.scale = round(p * 2**15), 1.0 / (1.0 - p)
        self.blocks = [torch.empty(len(rows), block, batch_size, units, device=device) for units in hidden]
        self.bits = [torch.empty(-(-block[0].numel() // 4), dtype=torch.int64, device=device) for block in self.blocks]

    def at(self, step: int) -> list[Tensor]:
        """The masks of batch ``step`` of an epoch: per hidden layer, [models, batch, units]."""
        t = step % self.block
        if t == 0:
            with record_function(DRAWING_SCOPE):
                self._draw(min(self.block, self.n_batches - step))
        return [block[:, t] for block in self.blocks]

    def _draw(self, steps: int) -> None:
        for i, generator in zip(self.first, self.generators):
            for block, bits in zip(self.blocks, self.bits):
                out = block[i, :steps]
                fields = bits.random_(generator=generator).view(torch.int16)[:out.numel()].view(out.shape)
                torch.ge(fields.bitwise_and_(0x7FFF), self.threshold, out=out).mul_(self.scale)
        if self.copies is not None:
            to, source = self.copies
            for block in self.blocks:
                block[to, :steps] = block[source, :steps]

    @classmethod
    def for_evaluation(cls, p: float, hidden: tuple[int, ...], generators: list[torch.Generator],
                       device: torch.device, rows: list[int] | None = None) -> DropoutMasks:
        """Masks for evaluating with dropout left on (the lesson's way): ``at(0)`` draws a
        fresh mask of EVAL_CHUNK rows per call, so one is drawn for every chunk evaluated."""
        return cls(p, hidden, EVAL_CHUNK, 1, generators, device, block=1, rows=rows)
